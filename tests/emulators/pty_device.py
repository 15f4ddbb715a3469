"""The firmware's pty device (firmware/devices/emulators.py), made safe for emulator threads.

`PtyPort` brings the pty behind a stable symlink and its unplug/replug; the soak drives it from one
thread. Here an emulator thread writes while the test thread unplugs, so those are serialised by a
lock, and `read` can wait a little for the host, which the threaded emulators need.
"""
from __future__ import annotations

import select
import threading
from pathlib import Path

from firmware.devices.emulators import PtyPort


class PtyDevice(PtyPort):
    def __init__(self, link: str | Path) -> None:
        self._lock = threading.Lock()
        super().__init__(link)

    @property
    def port(self) -> str:
        """The path a backend under test opens."""
        return str(self.link)

    def replug(self) -> None:
        with self._lock:
            super().replug()

    def unplug(self) -> None:
        with self._lock:
            super().unplug()

    def write(self, data: bytes) -> bool:
        """Write to the host side; False when unplugged or the host is not reading."""
        with self._lock:
            return super().write(data)

    def read(self, timeout: float = 0.05) -> bytes:
        """Bytes the host wrote, or b'' after `timeout`."""
        fd = self.master
        if fd is None:
            return b""
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
        except OSError:  # unplugged by another thread while waiting
            return b""
        return super().read() if ready else b""


class EmulatorThread:
    """Runs `step()` every `period` s on a daemon thread until `close()`; subclasses own a PtyDevice."""

    period = 0.05

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=type(self).__name__)

    def start(self):
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.period)

    def step(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
