"""Serial devices emulated on pseudo-terminals, for `humus soak --pty` on a box or a laptop.

The real backends (LD2410Sensor, EnttecProTransport) open a stable symlink, as udev names the USB
device on a box; `PtyPort.unplug()` closes the pty (their reads and writes fail like a pulled cable)
and `replug()` makes a new pty and re-points the symlink, because a /dev/pts/N name cannot be made
again at will. The emulators here are driven synchronously by the caller (`tick` / `drain`), so a
soak on an accelerated clock controls exactly when bytes go on the wire, and their memory is bounded
(a soak runs for hours). tests/emulators builds its threaded, fully recording versions for unit tests
on `PtyPort` and `take_widget_messages`.
"""
from __future__ import annotations

import os
import pty
import random
import tty
from pathlib import Path

from firmware.devices.fault_injection import FaultInjectable
from firmware.devices.protocols import ld2410


class PtyPort:
    """The device side of a pty behind a symlink the host opens like /dev/humus-radar."""

    def __init__(self, link: str | os.PathLike) -> None:
        self.link = Path(link)
        self.master: int | None = None
        self._slave: int | None = None
        self.plugs = 0
        self.replug()

    @property
    def plugged(self) -> bool:
        return self.master is not None

    def replug(self) -> None:
        if self.plugged:
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
        if not self.plugged:
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
        if self.master is None:
            return False
        try:
            os.write(self.master, data)
            return True
        except (BlockingIOError, OSError):
            return False

    def read(self) -> bytes:
        """Whatever the host wrote so far (never waits)."""
        if self.master is None:
            return b""
        out = bytearray()
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except (BlockingIOError, OSError):
                return bytes(out)
            if not chunk:
                return bytes(out)
            out += chunk

    def close(self) -> None:
        self.unplug()


class RadarEmulator(FaultInjectable):
    """An HLK-LD2410 reporting a visitor at `distance_m` (None = nobody) at `rate_hz` of the caller's
    clock. Faults: `silent` (powered, no reports), `garbage` (line noise and mangled frames between
    the reports), and `unplug` (the port's pty closed, as a pulled cable)."""

    FAULTS = ("silent", "garbage", "unplug")

    def __init__(self, link, rate_hz: float = 20.0, seed: int = 0) -> None:
        self.port = PtyPort(link)
        self.period = 1.0 / rate_hz
        self.silent = False
        self.garbage = False
        self.sent = 0
        self._next = None
        self._rng = random.Random(seed)

    def report(self, distance_m: float | None, energy: int = 60) -> bytes:
        cm = 0 if distance_m is None else max(1, min(int(round(distance_m * 100)), 65535))
        target = ld2410.TARGET_NONE if distance_m is None else ld2410.TARGET_BOTH
        e = energy if target else 0
        return ld2410.encode_report(ld2410.Report(False, target, cm, e, cm, e, cm))

    def tick(self, now: float, distance_m: float | None) -> None:
        if self._next is None or now - self._next > 1.0:   # first tick, or after a long pause
            self._next = now
        while self._next <= now:
            self._next += self.period
            if self.silent or not self.port.plugged:
                continue
            frame = self.report(distance_m)
            if self.garbage:
                noise = bytes(self._rng.getrandbits(8) for _ in range(self._rng.randint(1, 48)))
                if self._rng.random() < 0.5:   # a frame with bytes lost on a cheap adapter
                    cut = self._rng.randint(4, len(frame) - 2)
                    noise += frame[:cut] + frame[cut + 1:]
                frame = noise + frame
            if self.port.write(frame):
                self.sent += 1
        self.port.read()   # the host's commands (engineering mode) are not answered; drop them

    def _switch(self, fault: str, on: bool) -> None:
        if fault == "unplug":
            self.port.unplug() if on else self.port.replug()   # each a no-op when already so
        else:
            setattr(self, fault, on)

    def close(self) -> None:
        self.port.close()


class WidgetEmulator(FaultInjectable):
    """An Enttec DMX USB Pro: counts label-6 universes and keeps the newest one. Fault: `unplug`."""

    FAULTS = ("unplug",)

    def __init__(self, link) -> None:
        self.port = PtyPort(link)
        self.frames = 0
        self.params = 0          # label 4 (set parameters): one per open of the transport
        self.errors = 0
        self.last: bytes | None = None
        self._rx = bytearray()

    def drain(self) -> int:
        """Parse what the host wrote since the last call; returns universes received."""
        data = self.port.read()
        if not self.port.plugged:
            self._rx.clear()
            return 0
        self._rx += data
        messages, errors = take_widget_messages(self._rx)
        self.errors += errors
        got = 0
        for label, body in messages:
            if label == 6 and body[:1] == b"\x00":
                self.frames += 1
                got += 1
                self.last = body[1:]
            elif label == 4:
                self.params += 1
        return got

    def _switch(self, fault: str, on: bool) -> None:
        self.port.unplug() if on else self.port.replug()

    def close(self) -> None:
        self.port.close()


def take_widget_messages(rx: bytearray) -> tuple[list[tuple[int, bytes]], int]:
    """Cut every complete Enttec Pro message off the front of `rx`; a partial one stays for the next
    read. Returns the (label, data) pairs and the number of framing errors skipped over.

    The emulators' own small parser, not the firmware's, so a bug shared with the transport cannot
    hide.
    """
    messages, errors = [], 0
    while True:
        i = rx.find(0x7E)
        if i < 0:
            errors += bool(rx)
            rx.clear()
            return messages, errors
        if i:
            errors += 1
            del rx[:i]
        if len(rx) < 4:
            return messages, errors
        n = rx[2] | rx[3] << 8
        if len(rx) < n + 5:
            return messages, errors
        if rx[n + 4] != 0xE7:
            errors += 1
            del rx[:1]
            continue
        messages.append((rx[1], bytes(rx[4:4 + n])))
        del rx[:n + 5]
