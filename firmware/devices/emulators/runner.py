"""The one thread loop of the emulators: call `step()` until told to stop.

Every emulator is written to be stepped by its caller (the soak owns the clock); a unit test wants
the same object live on real time instead. `Runner` gives it that without each emulator growing its
own stop event, daemon thread and join.
"""
from __future__ import annotations

import threading
from typing import Callable


class Runner:
    """Calls `step()` on a daemon thread, then waits `period` s, until `stop()`.

    A `step` that waits by itself (a socket or pty with a timeout) passes period 0. A step returning
    False ends the loop: what it serves is gone (a socket closed under it)."""

    def __init__(self, step: Callable[[], bool | None], name: str, period: float = 0.0) -> None:
        self._step, self.period = step, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=name)

    def start(self) -> Runner:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep in a step that must hold still (a hung device); True as soon as stop() is called."""
        return self._stop.wait(seconds)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._step() is False:
                return
            if self.period:
                self._stop.wait(self.period)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
