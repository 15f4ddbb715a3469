"""Idle footage: a folder of images (played in name order) or a video file, looped at a set rate.

Frames are decoded once into memory at a modest size (an idle loop is short), so playback is a lookup.
With no footage configured the idle shows the model's own drift instead.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger("humus.footage")

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
# Real decay footage shipped with the package (credits in data/footage/NOTICE): what the idle shows
# when the config names no footage of the studio's own, so a fresh box shows real decay.
DEMO_CLIP = Path(__file__).resolve().parents[1] / "data" / "footage" / "demo_decay.mp4"
VIDEO_EXT = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".gif", ".webp"}


class FootageError(Exception):
    pass


def _load_image(path: Path, max_side: int) -> list[np.ndarray]:
    from PIL import Image, ImageSequence
    with Image.open(path) as im:
        frames = []
        for f in ImageSequence.Iterator(im):
            rgb = f.convert("RGB")
            rgb.thumbnail((max_side, max_side))
            frames.append(np.asarray(rgb, dtype=np.uint8).copy())
        return frames


def _load_video(path: Path, max_side: int, max_frames: int) -> list[np.ndarray]:
    import av
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            img = frame.to_ndarray(format="rgb24")
            h, w = img.shape[:2]
            s = max_side / max(h, w)
            if s < 1:
                from firmware.render.noise import resize
                img = resize(img, int(w * s), int(h * s))
            frames.append(img)
            if len(frames) >= max_frames:
                break
    return frames


def footage_path(configured: Path | None) -> Path | None:
    """The footage the idle plays: the configured folder or file, else the shipped demo clip."""
    if configured is not None:
        return configured
    return DEMO_CLIP if DEMO_CLIP.is_file() else None


_decoded: dict[tuple, list[np.ndarray]] = {}


def load_footage(path: Path, max_side: int = 640, max_frames: int = 2000) -> list[np.ndarray]:
    """Decode footage into RGB uint8 frames. Raises FootageError naming the path.

    The shipped demo clip is decoded once per process and shared (frames are only read): a box
    restarted in-process, the soak and the tests would otherwise decode it again each time."""
    path = Path(path)
    if path == DEMO_CLIP:
        key = (path, max_side, max_frames)
        if key not in _decoded:
            _decoded[key] = _load_any(path, max_side, max_frames)
        return _decoded[key]
    return _load_any(path, max_side, max_frames)


def _load_any(path: Path, max_side: int, max_frames: int) -> list[np.ndarray]:
    if not path.exists():
        raise FootageError(f"{path}: footage not found")
    try:
        if path.is_dir():
            frames: list[np.ndarray] = []
            for p in sorted(path.rglob("*")):
                if p.suffix.lower() in IMAGE_EXT and p.is_file():
                    frames.extend(_load_image(p, max_side))
                if len(frames) >= max_frames:
                    break
        elif path.suffix.lower() in (".webp", ".gif"):
            frames = _load_image(path, max_side)
        else:
            frames = _load_video(path, max_side, max_frames)
    except (OSError, ValueError) as exc:
        raise FootageError(f"{path}: cannot decode footage: {exc}") from None
    if not frames:
        raise FootageError(f"{path}: no frames found")
    return frames


class FootagePlayer:
    """Loops frames at `fps`; `frame_at(t)` is a pure lookup."""

    def __init__(self, frames: list[np.ndarray], fps: float) -> None:
        self.frames = frames
        self.fps = fps

    def index_at(self, t: float) -> int:
        return int(t * self.fps) % len(self.frames)

    def frame_at(self, t: float) -> np.ndarray:
        return self.frames[self.index_at(t)]
