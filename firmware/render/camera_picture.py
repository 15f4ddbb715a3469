"""The visitor's camera picture at projector size: mirrored when configured, resized once per new
camera frame (not once per projector frame), and forgotten as soon as the camera has none."""
from __future__ import annotations

import numpy as np

from firmware.render import noise as nz


class CameraPicture:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.key = None                               # the camera frame's seq the picture is from
        self.picture: np.ndarray | None = None

    def update(self, frame, mirror: bool) -> np.ndarray | None:
        """The picture for the camera's latest frame (None: no frame). `mirror` is read per frame: a
        hot-plugged camera brings its own section."""
        if frame is None:
            # Forget the last picture: a visitor must never be seeded with an earlier one (no camera:
            # generation from pure noise).
            self.picture = self.key = None
            return None
        if self.key != frame.seq:
            img = frame.image[:, ::-1] if mirror else frame.image
            # live video: bilinear is enough and half the cost of bicubic at projector size
            self.picture = nz.cover(img, self.width, self.height, smooth=False)
            self.key = frame.seq
        return self.picture
