"""An HLK-LD2410 24 GHz radar on a pty: reports written with the firmware's encoder (which the
golden-byte tests pin to the vendor document), commands answered as the radar does."""
from __future__ import annotations

import random

from firmware.devices.emulators.pty import PtyEmulator
from firmware.devices.protocols import ld2410


class LD2410Emulator(PtyEmulator):
    """Reports a visitor at `distance_cm` (None = nobody) `rate_hz` times a second, basic or
    engineering frames, and ACKs the host's commands (engineering mode on and off as told).

    Faults: `silent` (powered and mute: no reports, no ACKs), `garbage` (line noise and mangled
    frames between the reports), `drop_bytes` (a cheap adapter losing two bytes of every other
    frame) and `unplug` (the pty closed, as a pulled cable)."""

    FAULTS = ("silent", "garbage", "drop_bytes", "unplug")
    KEEP = 256     # commands kept for a test to look at; a soak reopens the port for hours

    def __init__(self, link, distance_cm: int | None = 400, engineering: bool = False,
                 rate_hz: float = 20.0, seed: int = 0) -> None:
        super().__init__(link, rate_hz)
        self.distance_cm = distance_cm
        self.engineering = engineering
        self.energy = 60
        self.silent = self.garbage = self.drop_bytes = False
        self.commands: list[bytes] = []   # the newest KEEP, as they came on the wire
        self.sent = 0
        self._rx = bytearray()
        self._rng = random.Random(seed)

    def report(self) -> bytes:
        d = self.distance_cm
        target = ld2410.TARGET_NONE if d is None else ld2410.TARGET_BOTH
        d = 0 if d is None else max(1, min(int(d), 65535))   # a target is at least 1 cm away
        e = self.energy if target else 0
        eng = self.engineering
        gates = tuple(self.energy if abs(i * 75 - d) < 75 else 3 for i in range(9)) if eng else ()
        return ld2410.encode_report(ld2410.Report(eng, target, d, e, d, e, d, gates, gates,
                                                  0x60 if eng else None, 1 if eng else None))

    def step(self, now: float) -> None:
        self._take_commands()
        for _ in range(self._due(now)):
            if self.silent or not self.port.plugged:
                continue
            if self.port.write(self._damaged(self.report())):
                self.sent += 1

    def _damaged(self, frame: bytes) -> bytes:
        if self.drop_bytes and self.sent % 2:
            frame = frame[:7] + frame[9:]
        if self.garbage:
            noise = bytes(self._rng.getrandbits(8) for _ in range(self._rng.randint(1, 48)))
            if self._rng.random() < 0.5:   # and a frame with a byte lost before the good one
                cut = self._rng.randint(4, len(frame) - 2)
                noise += frame[:cut] + frame[cut + 1:]
            frame = noise + frame
        return frame

    def _take_commands(self) -> None:
        """Cut each complete command (`FD FC FB FA | len | word | value | 04 03 02 01`) off what the
        host wrote; anything else it writes (another device's probe) is dropped."""
        rx = self._rx
        rx += self.port.read()
        while True:
            i = rx.find(ld2410.CMD_HEAD)
            if i < 0:
                del rx[:-3]                # but a head cut in two by the pty may still complete
                return
            del rx[:i]
            if len(rx) < 10:
                return
            end = 10 + (rx[4] | rx[5] << 8)
            if len(rx) < end:
                return
            cmd = bytes(rx[:end])
            del rx[:end]
            self._answer(cmd)

    def _answer(self, cmd: bytes) -> None:
        self.commands.append(cmd)
        del self.commands[:-self.KEEP]
        word = cmd[6] | cmd[7] << 8
        if word == ld2410.CMD_ENGINEERING_ON:
            self.engineering = True
        elif word == ld2410.CMD_ENGINEERING_OFF:
            self.engineering = False
        if self.silent:
            return
        value = b"\x01\x00\x40\x00" if word == ld2410.CMD_ENABLE_CONFIG else b""
        body = bytes((word & 0xFF, (word >> 8) | 0x01, 0, 0)) + value
        self.port.write(ld2410.CMD_HEAD + bytes((len(body), 0)) + body + ld2410.CMD_TAIL)
