"""RIFE frame interpolation: the IFNet of Practical-RIFE v4.25, written for this engine so that its `flownet.pkl`
loads with `load_state_dict(strict=True)`.

Layer layout follows hzwer/Practical-RIFE `train_log/IFNet_HDv3.py` (the release whose `train_log/RIFE_HDv3.py`
declares `version = 4.25`): a feature `Head` (`encode.cnn0..cnn3`, 16 channels at full resolution), five `IFBlock`s
(`block0..block4`, widths 192/128/96/64/32) run coarse to fine at scales 16/8/4/2/1, each `conv0` (two stride-2
convs) → `convblock` (8 residual convs with a learnt per-channel `beta`) → `lastconv` (transposed conv to 4*13
channels and PixelShuffle(2): 4 flow + 1 mask + 8 feature channels). Only the inference path (fastmode, no ensemble)
is implemented; the training-only `teacher`/`caltime` modules are commented out upstream and absent here, and keys
under those names in a checkpoint are ignored (every other missing or extra key is an error). Backward warping
follows upstream's `model/warplayer.py` (grid_sample, bilinear, border padding, align_corners=True).

Frames are zero-padded on the right and bottom to a multiple of 128, as upstream's inference_video.py does at
scale 1, and the results cropped back. Inference runs in float32 on the given device (CPU or CUDA).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

VERSION = "4.25"
PAD = 128  # upstream inference_video.py pads to max(128, 128 / scale); scale 1 here
SCALES = (16, 8, 4, 2, 1)
# Upstream's training-only submodules (commented out in its IFNet); ignored if a checkpoint still carries them.
TRAINING_ONLY = ("teacher.", "caltime.")


class CheckpointError(Exception):
    """The file is not a loadable Practical-RIFE v4.25 IFNet state dict."""


def _conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding, bias=True), nn.LeakyReLU(0.2, True))


class Head(nn.Module):
    """Per-frame features: stride-2 conv, two convs, transposed conv back to full resolution, 16 channels."""

    def __init__(self):
        super().__init__()
        self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
        self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, 16, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.cnn0(x))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


class ResConv(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones((1, c, 1, 1)))
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    def __init__(self, in_planes: int, c: int):
        super().__init__()
        self.conv0 = nn.Sequential(_conv(in_planes, c // 2, 3, 2, 1), _conv(c // 2, c, 3, 2, 1))
        self.convblock = nn.Sequential(*(ResConv(c) for _ in range(8)))
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * 13, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float):
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        out = self.lastconv(self.convblock(self.conv0(x)))
        out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
        return out[:, :4] * scale, out[:, 4:5], out[:, 5:]


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp of `image` (b, c, h, w) by `flow` (b, 2, h, w) in pixels."""
    b, _, h, w = flow.shape
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
    norm = torch.cat((flow[:, 0:1] / ((image.shape[3] - 1.0) / 2.0), flow[:, 1:2] / ((image.shape[2] - 1.0) / 2.0)), 1)
    grid = (torch.cat((xs, ys), 1) + norm).permute(0, 2, 3, 1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


class IFNet(nn.Module):
    """Practical-RIFE v4.25 IFNet (inference path). Parameter names match upstream's, minus `module.`."""

    def __init__(self):
        super().__init__()
        self.block0 = IFBlock(7 + 32, c=192)
        self.block1 = IFBlock(8 + 4 + 8 + 32, c=128)
        self.block2 = IFBlock(8 + 4 + 8 + 32, c=96)
        self.block3 = IFBlock(8 + 4 + 8 + 32, c=64)
        self.block4 = IFBlock(8 + 4 + 8 + 32, c=32)
        self.encode = Head()

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep: float | torch.Tensor = 0.5,
                scales: Sequence[float] = SCALES) -> torch.Tensor:
        """img0, img1: (b, 3, h, w) in [0, 1], h and w multiples of PAD → the frame at `timestep` (not clamped)."""
        t = img0[:, :1] * 0 + timestep if not torch.is_tensor(timestep) else \
            timestep.to(img0).view(-1, 1, 1, 1).expand(img0.shape[0], 1, *img0.shape[2:])
        f0 = self.encode(img0)
        f1 = self.encode(img1)
        blocks = (self.block0, self.block1, self.block2, self.block3, self.block4)
        flow = mask = feat = None
        warped0, warped1 = img0, img1
        for block, scale in zip(blocks, scales, strict=False):
            if flow is None:
                flow, mask, feat = block(torch.cat((img0, img1, f0, f1, t), 1), None, scale)
            else:
                wf0 = warp(f0, flow[:, :2])
                wf1 = warp(f1, flow[:, 2:4])
                delta, mask, feat = block(torch.cat((warped0, warped1, wf0, wf1, t, mask, feat), 1), flow, scale)
                flow = flow + delta
            warped0 = warp(img0, flow[:, :2])
            warped1 = warp(img1, flow[:, 2:4])
        mask = torch.sigmoid(mask)
        return warped0 * mask + warped1 * (1 - mask)


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors with DataParallel's `module.` prefix stripped and training-only modules dropped."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if isinstance(raw, dict) and "state_dict" in raw and isinstance(raw["state_dict"], dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    state = {}
    for key, value in raw.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if not key.startswith(TRAINING_ONLY):
            state[key] = value
    return state


def load(path: str) -> IFNet:
    """Builds the IFNet on the CPU in float32 and loads `path` strictly; CheckpointError says what did not fit."""
    state = read_state_dict(path)
    net = IFNet()
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} key(s): {', '.join(keys[:5])}{', …' if len(keys) > 5 else ''}")
        raise CheckpointError(f"{path} is not a Practical-RIFE v{VERSION} IFNet state dict: {'; '.join(parts)}")
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return net.eval().requires_grad_(False)


_cache: dict[tuple, IFNet] = {}


def cached(path: str, device: torch.device) -> IFNet:
    """`load(path)` on `device`, kept across jobs while the file is unchanged (one network at a time)."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_mtime_ns, st.st_size, str(device))
    net = _cache.get(key)
    if net is None:
        cpu_key = (*key[:3], "cpu")
        net = _cache.get(cpu_key) or load(path)
        net = net.to(device)
        _cache.clear()
        _cache[key] = net
    return net


def _padded(frame: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    h, w, _ = frame.shape
    x = torch.from_numpy(np.ascontiguousarray(frame)).to(device).permute(2, 0, 1).unsqueeze(0).to(dtype) / 255.0
    ph, pw = -(-h // PAD) * PAD, -(-w // PAD) * PAD
    return F.pad(x, (0, pw - w, 0, ph - h))


@torch.inference_mode()
def interpolate(net: IFNet, frames: np.ndarray, factor: int, device: torch.device,
                check: Callable[[], None] = lambda: None) -> np.ndarray:
    """uint8 RGB (n, h, w, 3) → (n-1)*factor+1 frames: the sources at every factor-th position, between them the
    IFNet's frames at timesteps 1/factor … (factor-1)/factor. `check()` runs before each interval."""
    n, h, w, _ = frames.shape
    dtype = torch.float32
    out = np.empty(((n - 1) * factor + 1, h, w, 3), dtype=np.uint8)
    out[::factor] = frames
    steps = torch.tensor([r / factor for r in range(1, factor)], device=device, dtype=dtype)
    nxt = _padded(frames[0], device, dtype)
    for i in range(n - 1):
        check()
        cur, nxt = nxt, _padded(frames[i + 1], device, dtype)
        b = factor - 1
        mid = net(cur.expand(b, -1, -1, -1), nxt.expand(b, -1, -1, -1), steps)
        mid = (mid[:, :, :h, :w].float().clamp(0, 1) * 255.0).round().to(torch.uint8)
        out[i * factor + 1:(i + 1) * factor] = mid.permute(0, 2, 3, 1).cpu().numpy()
    return out
