"""The display interface: what every backend implements and the compositor's frames go to.

Backends import this module; the table in display/table.py imports the backends, never the other way round.
"""
from __future__ import annotations

import numpy as np

from firmware.devices.base import Device


class Display(Device):
    name = "display"
    width: int
    height: int

    def present(self, frame: np.ndarray) -> None:
        """Show an H x W x 3 uint8 RGB frame of exactly (height, width)."""
        raise NotImplementedError

    def poll_quit(self) -> bool:
        """True when the operator asked to quit (a window closed). Kiosks never do."""
        return False
