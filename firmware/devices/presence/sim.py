"""The presence sensors with no hardware behind them: `sim` (a scripted visitor) and `none`."""
from __future__ import annotations

import numpy as np

from firmware.devices.fault_injection import FaultInjectable
from firmware.devices.presence.interface import PresenceSensor, Reading

class SimPresence(FaultInjectable, PresenceSensor):
    """A scripted visitor: distance over time from (seconds, metres) points, linearly interpolated.

    `inject("silent")` stops readings (a dead sensor), `inject("garbage")` makes it report nonsense distances.
    """

    name = "presence[sim]"
    FAULTS = ("silent", "garbage")

    def __init__(self, cfg, clock) -> None:
        super().__init__()
        self.clock = clock
        pts = sorted(cfg.script)
        self._ts = np.array([p[0] for p in pts], dtype=np.float64)
        self._ds = np.array([p[1] for p in pts], dtype=np.float64)
        self.loop = cfg.loop
        self.period = 1.0 / cfg.rate_hz
        self._t0 = clock.now()
        self._silent_since: float | None = None
        self._last: Reading | None = None
        self._garbage = False

    def distance_at(self, t: float) -> float:
        span = self._ts[-1] if len(self._ts) else 0.0
        if self.loop and span > 0:
            t = t % span
        return float(np.interp(t, self._ts, self._ds))

    def _switch(self, fault: str, on: bool) -> None:
        if fault == "silent":
            self._silent_since = self.clock.now() if on else None
        else:
            self._garbage = on

    def latest(self) -> Reading | None:
        if self.closed:
            return None
        now = self.clock.now()
        if self._silent_since is not None:
            return self._last
        # Readings arrive at the sensor's rate: quantise time so repeated polls see the same reading.
        t = int((now - self._t0) / self.period) * self.period
        d = self.distance_at(t)
        if self._garbage:
            d = float(np.random.default_rng(int(t * 1000)).uniform(-5, 500))
        self._last = Reading(distance_m=d if d < 50 else None, t=self._t0 + t)
        return self._last


class NoPresence(PresenceSensor):
    """No sensor (`type = "none"`, or auto found none yet): visitors come only through OSC. Never
    stale: there is nothing to go quiet."""

    name = "presence[none]"

    def __init__(self, cfg=None, clock=None) -> None:
        super().__init__()
        self.health.detail = "no presence sensor"

    def latest(self) -> Reading | None:
        return None

    def follow_filter(self, stale: bool, stale_after_s: float, judged: Reading | None) -> None:
        pass   # never stale: without a sensor there is no reading to wait for
