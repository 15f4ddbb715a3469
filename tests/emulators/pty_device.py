"""A serial device on a pseudo-terminal, reached through a stable symlink (as udev names it on a box).

The backend opens `link`; `unplug()` closes the pty (the backend's reads and writes fail as with a
pulled USB cable) and `replug()` makes a new pty and re-points the symlink, because a /dev/pts/N name
cannot be created again at will.
"""
from __future__ import annotations

import os
import pty
import select
import threading
import tty
from pathlib import Path


class PtyDevice:
    def __init__(self, link: str | Path) -> None:
        self.link = Path(link)
        self.master: int | None = None
        self._slave: int | None = None
        self._lock = threading.Lock()
        self.plugged = False
        self.replug()

    @property
    def port(self) -> str:
        return str(self.link)

    def replug(self) -> None:
        with self._lock:
            if self.plugged:
                return
            master, slave = pty.openpty()
            tty.setraw(slave)          # no echo, no line editing: bytes pass through untouched
            tmp = self.link.with_name(self.link.name + ".new")
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            tmp.symlink_to(os.ttyname(slave))
            os.replace(tmp, self.link)  # atomic re-point, like udev
            self.master, self._slave, self.plugged = master, slave, True

    def unplug(self) -> None:
        with self._lock:
            if not self.plugged:
                return
            self.plugged = False
            for fd in (self.master, self._slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.master = self._slave = None
            if self.link.is_symlink():
                self.link.unlink()

    def write(self, data: bytes) -> bool:
        """Write to the host side; False when unplugged."""
        with self._lock:
            if not self.plugged:
                return False
            try:
                os.write(self.master, data)
                return True
            except OSError:
                return False

    def read(self, timeout: float = 0.05) -> bytes:
        """Bytes the host wrote, or b'' after `timeout`."""
        fd = self.master
        if fd is None:
            return b""
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
            return os.read(fd, 65536) if ready else b""
        except OSError:
            return b""

    def close(self) -> None:
        self.unplug()


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
