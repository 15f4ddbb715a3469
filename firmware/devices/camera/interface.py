"""The camera interface: what every backend implements and the show reads.

Backends import this module; the table in camera/table.py imports the backends, never the other way round.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.devices.base import Device

@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # H x W x 3, uint8, RGB
    t: float           # capture time on the box clock
    seq: int           # increases with every new frame


class Camera(Device):
    name = "camera"

    def latest(self) -> Frame | None:
        """The newest frame, or None when there is none (no camera, stalled, not started)."""
        raise NotImplementedError
