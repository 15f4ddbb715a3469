"""The visitor's camera picture at projector size: mirrored when configured, resized once per new
camera frame (not once per projector frame), and forgotten as soon as the camera has none.

This picture is all the show ever takes from the camera: the compositor shows it, and the seed of
a generation is cut from it and scaled down to the model's size. So `capture_bound` is the most of a
camera the show can use, and the box opens the camera at no more (a 7680x4320 camera at 240 fps
for a 1920x1080 projector at 60 fps would be 16 times the pixels, 4 times as often, all scaled away).
"""
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


def _even_up(n: int) -> int:
    return n + (n & 1)


def capture_bound(width: int, height: int, fps: float, display_width: int, display_height: int,
                  display_fps: float) -> tuple[int, int, float]:
    """The camera size and rate that still give the picture every pixel and frame it shows: the
    size at the camera's aspect ratio that just covers the display (see noise.cover), rounded up to
    even numbers (capture formats like them), and no faster than the display. The configured values
    where they are within that."""
    # Integers only, rounding up: the frame must cover the display, never fall a pixel short.
    if display_width * height >= display_height * width:   # the display's width is the one to cover
        w = _even_up(display_width)
        h = _even_up(-(-height * w // width))
    else:
        h = _even_up(display_height)
        w = _even_up(-(-width * h // height))
    return min(width, w), min(height, h), min(fps, display_fps)


def bounded_camera(section, display):
    """(the [camera] section to open the camera with, a warning or None when it is unchanged).
    A section without a size (type = "none") is returned as it is."""
    if not hasattr(section, "width"):
        return section, None
    w, h, fps = capture_bound(section.width, section.height, section.fps, display.width, display.height,
                              display.fps)
    if (w, h, fps) == (section.width, section.height, section.fps):
        return section, None
    return section.model_copy(update={"width": w, "height": h, "fps": fps}), (
        f"camera: [camera] asks for {section.width}x{section.height} at {section.fps:g} fps, but the show uses "
        f"at most {w}x{h} at {fps:g} fps (the picture covers the {display.width}x{display.height} display at "
        f"{display.fps:g} fps); the camera is opened at that")
