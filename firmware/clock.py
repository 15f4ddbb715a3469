"""Clocks. Everything that needs time gets one passed in; tests use FakeClock and run a whole visitor
cycle in milliseconds."""
from __future__ import annotations

import threading
import time


class RealClock:
    """Monotonic seconds. `sleep` really sleeps."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to (`advance`) or when someone sleeps on it.

    Thread-safe so device threads in whole-box tests can read it while the main loop advances it.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._t = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._t += max(0.0, seconds)
            return self._t

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)
