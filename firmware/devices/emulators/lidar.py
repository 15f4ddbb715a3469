"""A Benewake TFmini LiDAR on a pty: frames written with the firmware's encoder."""
from __future__ import annotations

from firmware.devices.emulators.pty import PtyEmulator
from firmware.devices.protocols import tfmini


class TFminiEmulator(PtyEmulator):
    """Frames of `distance_cm` at `strength`, `rate_hz` (the sensor's 100) times a second.

    Faults: `corrupt` (every frame with a wrong checksum) and `unplug`."""

    FAULTS = ("corrupt", "unplug")

    def __init__(self, link, distance_cm: int = 500, strength: int = 2000, rate_hz: float = 100.0) -> None:
        super().__init__(link, rate_hz)
        self.distance_cm, self.strength = distance_cm, strength
        self.corrupt = False
        self.sent = 0

    def step(self, now: float) -> None:
        self.port.read()   # a TFmini takes no commands; drop what a probe writes so it cannot pile up
        for _ in range(self._due(now)):
            frame = tfmini.encode(tfmini.Measurement(self.distance_cm, self.strength, 0x0900))
            if self.corrupt:
                frame = frame[:8] + bytes(((frame[8] + 1) & 0xFF,))
            if self.port.write(frame):
                self.sent += 1
