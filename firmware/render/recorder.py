"""Record projector frames to an H.264 MP4 with PyAV (imported lazily: only the recorder needs it)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


class Recorder:
    def __init__(self, path: str | Path, width: int, height: int, fps: float, scale: float = 1.0) -> None:
        import av
        self.path = Path(path)
        # H.264 wants even dimensions.
        self.w = max(2, int(width * scale) // 2 * 2)
        self.h = max(2, int(height * scale) // 2 * 2)
        self.container = av.open(str(self.path), mode="w")
        self.stream = self.container.add_stream("libx264", rate=Fraction(round(fps * 1000), 1000))
        self.stream.width, self.stream.height = self.w, self.h
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"preset": "veryfast", "crf": "23"}
        self.frames = 0
        self._closed = False

    def write(self, frame: np.ndarray) -> None:
        import av
        from firmware.render.noise import resize
        img = resize(frame, self.w, self.h, smooth=False) if frame.shape[:2] != (self.h, self.w) else frame
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        for packet in self.stream.encode(vf):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
