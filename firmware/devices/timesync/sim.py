"""The clock sources with no system behind them: a simulated one for tests and rehearsals, and the
trusted clock of a box whose RTC keeps the time (`[timesync] type = "trusted"`)."""
from __future__ import annotations

from firmware.devices.timesync.interface import TimeSource


class SimTimeSync(TimeSource):
    """Synchronised or not as the config scripts it (`synced`, `synced_after_s` on the box clock), or as
    a test sets it with `set_synced`; a change is seen at the next read, i.e. the next frame."""

    name = "timesync[sim]"

    def __init__(self, cfg=None, clock=None) -> None:
        super().__init__(clock)
        self.start = clock.now()
        self.synced = True if cfg is None else cfg.synced
        self.synced_after_s = None if cfg is None else cfg.synced_after_s
        self._set: tuple[bool, str] | None = None

    def set_synced(self, synced: bool, detail: str = "set by hand") -> None:
        self._set = (synced, f"sim: {detail}")

    def _due(self, now: float) -> bool:
        return True   # nothing to pay for looking

    def _look(self, now: float) -> tuple[bool, str]:
        if self._set is not None:
            return self._set
        if self.synced_after_s is not None:
            after = self.synced_after_s
            if now - self.start >= after:
                return True, f"sim: synchronised {after:g} s after start"
            return False, f"sim: not synchronised until {after:g} s after start"
        return self.synced, "sim: " + ("synchronised" if self.synced else "never synchronised")


class TrustedTimeSync(TimeSource):
    """Always synchronised: the config says the clock is right (an RTC with a battery, no network)."""

    name = "timesync[trusted]"

    def __init__(self, cfg=None, clock=None) -> None:
        super().__init__(clock)

    def _due(self, now: float) -> bool:
        return False

    def _look(self, now: float) -> tuple[bool, str]:
        return True, 'trusted ([timesync] type = "trusted")'
