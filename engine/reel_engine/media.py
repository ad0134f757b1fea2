"""Writing a job's frames: an H.264 MP4 with PyAV, and optionally one PNG per frame.

Everything is written under a temporary name in the job directory and renamed once complete, so a reader never
sees a partial file under a final name.
"""

from __future__ import annotations

import os
import shutil
from fractions import Fraction

import numpy as np

VIDEO_NAME = "video.mp4"
FRAMES_DIR = "frames"
CRF = 18
PRESET = "medium"


def write_video(frames: np.ndarray, out_dir: str, fps: int) -> str:
    """Encodes uint8 RGB frames (n, height, width, 3) as H.264/yuv420p at `fps`; returns the final path."""
    import av

    _, height, width, channels = frames.shape
    if channels != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB frames, got {frames.dtype} with {channels} channels")
    if width % 2 or height % 2:
        raise ValueError(f"yuv420p needs even dimensions, got {width}x{height}")
    final = os.path.join(out_dir, VIDEO_NAME)
    tmp = os.path.join(out_dir, f".{VIDEO_NAME}.tmp")
    try:
        with av.open(tmp, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps, 1))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": str(CRF), "preset": PRESET}
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
    return final


def write_png_frames(frames: np.ndarray, out_dir: str) -> str:
    """Writes frames/000001.png …; the folder appears under its final name only when every frame is written."""
    from PIL import Image

    final = os.path.join(out_dir, FRAMES_DIR)
    tmp = os.path.join(out_dir, f".{FRAMES_DIR}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.makedirs(tmp)
        for i, frame in enumerate(frames, start=1):
            # compress_level 1: PNG writing is otherwise the slowest part of encoding a long video.
            Image.fromarray(frame).save(os.path.join(tmp, f"{i:06d}.png"), compress_level=1)
        if os.path.isdir(final):
            shutil.rmtree(final)  # a rerun of the same job directory replaces the old frames
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _remove(path: str) -> None:
    """Removes a temporary file if it is there; never raises, so the error that made it useless propagates."""
    try:
        os.remove(path)
    except OSError:
        pass
