"""Parallel groups (`reel serve --placement parallel:K`): K worker processes run each job together.

Reel starts one worker per rank with `--rank R --world-size K --dist-init URL` and sends every rank the same
`generate`. Each rank joins a torch.distributed process group before loading the model (gloo on CPU, NCCL on CUDA),
and the group checks that K divides the transformer's attention heads.

- On CUDA the transformer(s) get diffusers' context parallelism (`enable_parallelism` with a
  `ContextParallelConfig`, Ulysses by default, ring with REEL_CONTEXT_PARALLEL=ring): each rank denoises a share of
  the video's tokens and the attention exchanges the rest. This is the GPU-only path (`_shard`): diffusers 0.42
  needs an accelerator for it, and NCCL refuses two ranks on one GPU, so it runs only on machines with 2+ GPUs.
- On CPU nothing is sharded: every rank computes the whole job. The ranks still join gloo and, after every job,
  exchange a fingerprint of the request and a checksum of the frames with a real collective, so a group that is not
  working on the same job (or not computing the same video) fails loudly. This is what the CPU tests exercise:
  group start-up, the per-job exchange, and Reel's restart of the whole group when one rank dies.

Only rank 0 writes the job's files. Other ranks work in a scratch directory of their own, never save checkpoints,
and answer with a `result` whose paths are empty.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from datetime import timedelta

log = logging.getLogger("reel_engine.distributed")

DEFAULT_TIMEOUT_SECONDS = 1800.0  # joining waits for every rank to start; Reel's startup timeout ends it sooner


class GroupError(Exception):
    """A parallel group cannot run this model or was started wrongly; the message names the flag to change."""


@dataclass
class Group:
    rank: int
    world_size: int
    backend: str
    device: str
    scratch: str
    sharded: bool = False
    method: str = "none"  # "ulysses" or "ring" once the transformer is sharded
    staggered: bool = False  # rank 0 loads first (a tiny model is created by its first load)

    @property
    def writes_outputs(self) -> bool:
        return self.rank == 0

    def ready_fields(self) -> dict:
        return {"group": {"rank": self.rank, "world_size": self.world_size, "backend": self.backend,
                          "sharded": self.sharded, "context_parallel": self.method}}


_current: Group | None = None


def current() -> Group | None:
    """The group this worker belongs to, or None for a worker of its own."""
    return _current


def check_arguments(rank: int | None, world_size: int | None, init_method: str | None) -> None:
    if world_size is None and rank is None and init_method is None:
        return
    if world_size is None or rank is None or init_method is None:
        raise GroupError("--rank, --world-size and --dist-init go together")
    if world_size < 2:
        raise GroupError(f"--world-size must be 2 or more, not {world_size}")
    if not 0 <= rank < world_size:
        raise GroupError(f"--rank must be between 0 and {world_size - 1}, not {rank}")


def join(rank: int, world_size: int, init_method: str, device: str, model: str = "") -> Group:
    """Joins the process group (blocking until every rank has) and proves it works with one all-reduce.

    A tiny model is created in the data directory by its first load, so for those rank 0 loads first: the other
    ranks wait here until it has (`attach` releases them). Real models load on every rank at once."""
    global _current
    import torch
    import torch.distributed as dist

    check_arguments(rank, world_size, init_method)
    cuda = device.startswith("cuda")
    backend = "nccl" if cuda else "gloo"
    if not cuda:
        # Every rank is on this host: keep gloo on the loopback interface instead of whatever the host name
        # resolves to (which, in containers, may be an address no socket can bind).
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    else:
        torch.cuda.set_device(torch.device(device))
    timeout = timedelta(seconds=float(os.environ.get("REEL_DIST_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)))
    log.info("rank %d of %d joining %s over %s", rank, world_size, init_method, backend)
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size, timeout=timeout)
    check = torch.tensor([rank + 1], dtype=torch.int64, device=device if cuda else "cpu")
    dist.all_reduce(check)
    expected = world_size * (world_size + 1) // 2
    if int(check.item()) != expected:
        raise GroupError(f"the group's first all-reduce gave {int(check.item())}, expected {expected}")
    scratch = tempfile.mkdtemp(prefix=f"reel-rank{rank}-")
    _current = Group(rank=rank, world_size=world_size, backend=backend, device=device, scratch=scratch,
                     staggered=model.startswith("tiny"))
    log.info("rank %d of %d joined the group", rank, world_size)
    if _current.staggered and rank > 0:
        dist.barrier()  # until rank 0 has loaded (and so created) the model
    return _current


def attention_heads(model) -> int:
    pipe = model.pipe
    transformer = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
    return int(transformer.config.num_attention_heads)


def valid_group_sizes(heads: int, up_to: int = 8) -> list[int]:
    return [k for k in range(2, max(up_to, 2) + 1) if heads % k == 0]


def check_heads(heads: int, world_size: int) -> None:
    if heads % world_size:
        sizes = ", ".join(map(str, valid_group_sizes(heads, max(8, world_size)))) or "none"
        raise GroupError(f"--world-size {world_size} does not divide the model's {heads} attention heads; "
                         f"valid group sizes are {sizes}")


def attach(model, group: Group) -> None:
    """Checks the model against the group and, on CUDA, shards its transformer(s)."""
    if group.staggered and group.rank == 0:
        import torch.distributed as dist

        dist.barrier()  # the other ranks may load now
    check_heads(attention_heads(model), group.world_size)
    if model.device.type == "cuda":
        _shard(model, group)
    else:
        log.info("rank %d: CPU group, the transformer is not sharded; every rank computes the whole job",
                 group.rank)


def _shard(model, group: Group) -> None:  # pragma: no cover - needs 2+ GPUs (see the module docstring)
    """GPU ONLY: diffusers' context parallelism over the group's NCCL ranks."""
    from diffusers import ContextParallelConfig

    method = os.environ.get("REEL_CONTEXT_PARALLEL", "ulysses")
    if method not in ("ulysses", "ring"):
        raise GroupError(f"REEL_CONTEXT_PARALLEL must be ulysses or ring, not {method!r}")
    degree = {f"{method}_degree": group.world_size}
    pipe = model.pipe
    for transformer in (pipe.transformer, getattr(pipe, "transformer_2", None)):
        if transformer is not None:
            transformer.enable_parallelism(config=ContextParallelConfig(**degree))
    group.sharded, group.method = True, method
    log.info("rank %d: transformer sharded with %s context parallelism over %d GPUs", group.rank, method,
             group.world_size)


def request_for_rank(request, group: Group | None = None):
    """Rank 0 runs the request as sent. Other ranks compute in a scratch directory of their own and save no
    checkpoints, so the job's directory only ever holds rank 0's files. `group` defaults to this worker's."""
    group = group if group is not None else _current
    if group is None or group.writes_outputs:
        return request
    out_dir = os.path.join(group.scratch, os.path.basename(request.out_dir.rstrip("/")) or "job")
    shutil.rmtree(out_dir, ignore_errors=True)
    return dataclasses.replace(request, out_dir=out_dir, checkpoint_every=None)


def fingerprint(request) -> int:
    """What every rank must agree on: the job and everything that decides its frames."""
    fields = (request.job, request.prompt, request.negative_prompt, request.width, request.height, request.frames,
              request.steps, request.guidance, request.guidance_2, request.seed, request.image, request.last_image,
              request.fit, request.loras, request.sampler)
    return int.from_bytes(hashlib.sha256(repr(fields).encode()).digest()[:7], "big")


def after_frames(request, frames, fps: int, seconds: dict) -> dict | None:
    """Called by every rank with the job's decoded frames. The ranks exchange the request's fingerprint and a
    checksum of their frames (an all-gather) and fail the job if they disagree. Returns the final event for a rank
    that writes nothing (rank > 0), None for rank 0, which goes on to write the files."""
    group = _current
    if group is None:
        return None
    import numpy as np
    import torch
    import torch.distributed as dist

    mine = torch.tensor([fingerprint(request), zlib.crc32(np.ascontiguousarray(frames).tobytes())],
                        dtype=torch.int64, device=group.device if group.backend == "nccl" else "cpu")
    gathered = [torch.zeros_like(mine) for _ in range(group.world_size)]
    dist.all_gather(gathered, mine)
    values = [tuple(int(v) for v in t.tolist()) for t in gathered]
    if any(v[0] != values[0][0] for v in values):
        raise GroupError(f"the ranks of the group ran different jobs (fingerprints {[v[0] for v in values]})")
    if any(v[1] != values[0][1] for v in values):
        raise GroupError(f"the ranks of the group computed different frames (checksums {[v[1] for v in values]})")
    log.info("job %s: %d ranks agree on the job and its frames", request.job, group.world_size)
    if group.writes_outputs:
        return None
    return follower_result(request, frames.shape, fps, seconds)


def follower_result(request, shape, fps: int, seconds: dict) -> dict:
    """The `result` of a rank > 0, which writes nothing: its paths are empty strings."""
    from . import protocol

    n, height, width = (int(x) for x in shape[:3])
    outputs = {"dir": request.out_dir, "video": "", "metadata": "", "frames_dir": None, "frame_count": n,
               "width": width, "height": height, "fps": fps}
    seconds = {k: round(v, 4) for k, v in seconds.items()}
    seconds.setdefault("encoding", 0.0)
    seconds.setdefault("total", sum(seconds.values()))
    return protocol.result_event(request.job, outputs, seconds, 0)
