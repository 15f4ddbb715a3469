"""The display with no screen behind it: `headless` keeps the last frame and counts what it was shown
(tests, recording, benchmarks)."""
from __future__ import annotations

import numpy as np

from firmware.devices.display.interface import Display
from firmware.devices.fault_injection import FaultInjectable


class HeadlessDisplay(FaultInjectable, Display):
    name = "display[headless]"
    FAULTS = ("gone",)   # the soak: the projector went away

    def __init__(self, cfg, clock=None) -> None:
        super().__init__()
        self.width, self.height = cfg.width, cfg.height
        self.frames_shown = 0
        self.last: np.ndarray | None = None
        self.gone = False

    def present(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3):
            raise ValueError(f"frame {frame.shape} does not match display {(self.height, self.width, 3)}")
        if self.gone:
            self.fault("no projector")
            return
        self.recover()
        self.frames_shown += 1
        self.last = frame

    def _switch(self, fault: str, on: bool) -> None:
        self.gone = on
