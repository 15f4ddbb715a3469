"""A serial device on a pseudo-terminal, behind the stable name a backend opens.

The real backends (LD2410Sensor, EnttecProTransport) open a stable symlink, as udev names the USB
device on a box; `PtyPort.unplug()` closes the pty (their reads and writes fail like a pulled cable)
and `replug()` makes a new pty and re-points the symlink, because a /dev/pts/N name cannot be made
again at will. `PtyEmulator` is what the LD2410, TFmini and Enttec emulators share: the port, the
`unplug` fault, the report clock and the thread that runs them live.
"""
from __future__ import annotations

import os
import pty
import select
import threading
import time
import tty
from pathlib import Path

from firmware.devices.emulators.runner import Runner
from firmware.devices.fault_injection import FaultInjectable


class PtyPort:
    """The device side of a pty behind a symlink the host opens like /dev/humus-radar.

    A live emulator writes from its thread while a test unplugs, so whatever touches the pty's file
    descriptors holds a lock (uncontended in the soak, which drives everything from one thread)."""

    def __init__(self, link: str | os.PathLike) -> None:
        self.link = Path(link)
        self.master: int | None = None
        self._slave: int | None = None
        self.plugs = 0
        self._lock = threading.Lock()
        self.replug()

    @property
    def path(self) -> str:
        """The name a backend under test opens."""
        return str(self.link)

    @property
    def plugged(self) -> bool:
        return self.master is not None

    def replug(self) -> None:
        with self._lock:
            if self.master is not None:
                return
            master, slave = pty.openpty()
            tty.setraw(slave)              # no echo, no line editing: bytes pass through untouched
            os.set_blocking(master, False)  # the caller's loop must never wait on the wire
            tmp = self.link.with_name(self.link.name + ".new")
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            tmp.symlink_to(os.ttyname(slave))
            os.replace(tmp, self.link)     # atomic re-point, like udev
            self.master, self._slave = master, slave
            self.plugs += 1

    def unplug(self) -> None:
        with self._lock:
            if self.master is None:
                return
            for fd in (self.master, self._slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.master = self._slave = None
            if self.link.is_symlink():
                self.link.unlink()

    def write(self, data: bytes) -> bool:
        """Bytes to the host; False when unplugged or the host is not reading (buffer full)."""
        with self._lock:
            if self.master is None:
                return False
            try:
                os.write(self.master, data)
                return True
            except OSError:                # BlockingIOError included: the host's buffer is full
                return False

    def wait(self, timeout: float) -> bool:
        """Until the host has written something (True) or `timeout` s have passed."""
        fd = self.master
        if fd is None:
            time.sleep(timeout)            # unplugged: nothing can arrive, but do not spin
            return False
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
        except (OSError, ValueError):      # unplugged by another thread while waiting
            return False
        return bool(ready)

    def read(self, timeout: float = 0.0) -> bytes:
        """Whatever the host wrote so far; with a `timeout`, waits that long for it to write."""
        if timeout and not self.wait(timeout):
            return b""
        out = bytearray()
        with self._lock:
            while self.master is not None:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:            # BlockingIOError included: all read
                    break
                if not chunk:
                    break
                out += chunk
        return bytes(out)

    def close(self) -> None:
        self.unplug()


class PtyEmulator(FaultInjectable):
    """A serial device on a PtyPort, stepped by its caller with `step(now)` or live with `start()`.

    Every one can be unplugged; a subclass's other faults are flags of the same name."""

    FAULTS: tuple[str, ...] = ("unplug",)

    def __init__(self, link, rate_hz: float) -> None:
        self.port = PtyPort(link)
        self.period = 1.0 / rate_hz
        self._next: float | None = None
        self._runner: Runner | None = None

    def step(self, now: float) -> None:
        """Read what the host wrote, answer it, send what is due by `now`."""
        raise NotImplementedError

    def start(self):
        """Live on real time, on a daemon thread, until `stop()` or `close()`."""
        if self._runner is None:
            self._runner = Runner(self._step_live, type(self).__name__)
            self._runner.start()
        return self

    def _step_live(self) -> None:
        # Woken as soon as the host writes, so answers go out at once, and every period otherwise.
        self.port.wait(self.period)
        self.step(time.monotonic())

    def _due(self, now: float) -> int:
        """How many periodic frames are due by `now`. After a long pause (a stalled thread, the
        first step) the count starts again from now instead of sending a burst of stale frames."""
        if self._next is None or now - self._next > 1.0:
            self._next = now
        n = 0
        while self._next <= now:
            self._next += self.period
            n += 1
        return n

    def _switch(self, fault: str, on: bool) -> None:
        if fault == "unplug":
            self.port.unplug() if on else self.port.replug()   # each a no-op when already so
        else:
            setattr(self, fault, on)

    def stop(self) -> None:
        """No more steps from the thread; the port stays plugged (a powered device gone mute)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop()

    def close(self) -> None:
        self.stop()
        self.port.close()
