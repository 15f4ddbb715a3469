"""The demo clip the box shows out of the box: real decay footage cut from the credited data.

`humus run --sim` (and a box with no `[show] footage`) shows this clip beside the generated images,
the juxtaposition the installation is about. It is a short H.264 file made from the banana series
(each banana photographed ~20 times over 21 days, green to black) and the melon time-lapse, with
the credits of both in a NOTICE beside it. The studio replaces it with its own footage folder.

Size matters twice: the file must stay small for git (at most 8 MB), and the box decodes the whole
loop into memory, so the clip is short and square (384 px) rather than long and large.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from .footage import center_square

MAX_BYTES = 8 * 2**20

NOTICE = """\
demo_decay.mp4: real decay footage cut from two public data sets (no generated frames).

- Bananas {bananas} photographed over 21 days, green to black, in time order.
  MIT License, (c) 2022 Peter Solymos (repository psolymos/bananas).
- A decaying melon rind, time-lapse Oct 7 - Nov 13 2023 (upscaled from 128 px).
  CC-BY-4.0, Chen Liu and Tobias Ritschel, "Neural Differential Appearance Equations"
  (SIGGRAPH Asia 2024), repository ryushinn/ode-appearance.

Made by `humus-export demo-clip` (export/democlip.py): {frames} frames, {side}x{side}, {fps} fps, H.264.
"""


def banana_frames(folder: Path, ids: list[str], side: int, hold: int) -> list[np.ndarray]:
    """Each chosen banana's photographs in date order (the name sorts by date), each held ``hold`` frames."""
    frames = []
    for bid in ids:
        shots = sorted(p for p in folder.glob(f"{bid}_*.jpg"))
        if not shots:
            raise FileNotFoundError(f"{folder}: no photographs of banana {bid}")
        for p in shots:
            with Image.open(p) as im:
                frames += [center_square(im, side)] * hold
    return frames


def melon_frames(path: Path, side: int) -> list[np.ndarray]:
    with Image.open(path) as im:
        return [center_square(f.copy(), side) for f in ImageSequence.Iterator(im)]


def build_demo_clip(decay_root: str | Path, out: str | Path, bananas=("11", "21", "25"), side: int = 384,
                    fps: int = 8, hold: int = 2, crf: int = 20) -> dict:
    """Write the clip and its NOTICE; returns what was written. Refuses a clip over 8 MB."""
    import av

    root, out = Path(decay_root), Path(out)
    frames = banana_frames(root / "bananas", list(bananas), side, hold)
    frames += melon_frames(root / "melon" / "decaying_melon.webp", side)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "slow"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    size = tmp.stat().st_size
    if size > MAX_BYTES:
        tmp.unlink()
        raise ValueError(f"{out}: clip would be {size / 2**20:.1f} MB, over the 8 MB limit; lower side or fps")
    tmp.replace(out)
    (out.parent / "NOTICE").write_text(NOTICE.format(bananas=", ".join(bananas), frames=len(frames), side=side,
                                                     fps=fps))
    return {"path": str(out), "bytes": size, "frames": len(frames), "seconds": len(frames) / fps}
