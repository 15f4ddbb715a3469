"""Pty emulators for the Enttec DMX USB Pro widget, the LD2410 radar and the TFmini LiDAR.

The Enttec emulator decodes the host's messages with the soak emulator's own small parser (not the
firmware's), so a shared bug cannot hide; the sensor emulators write frames with the firmware's
encoders, whose output the golden-byte tests pin to the vendor documents.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from firmware.devices.emulators import take_widget_messages
from firmware.devices.protocols import ld2410, tfmini
from .pty_device import EmulatorThread, PtyDevice


class LD2410Emulator(EmulatorThread):
    """Reports the visitor at `distance_cm` (None = nobody) every `period` s; ACKs commands."""

    period = 0.05

    def __init__(self, link, distance_cm: int | None = 400, engineering: bool = False) -> None:
        super().__init__()
        self.dev = PtyDevice(link)
        self.distance_cm = distance_cm
        self.engineering = engineering
        self.energy = 60
        self.drop_bytes = False        # a cheap adapter losing bytes: every other frame is mangled
        self.commands: list[bytes] = []
        self.sent = 0
        self._rx = bytearray()

    def report(self) -> bytes:
        d = self.distance_cm
        target = ld2410.TARGET_NONE if d is None else ld2410.TARGET_BOTH
        d = d or 0
        gates = tuple(self.energy if abs(i * 75 - d) < 75 else 3 for i in range(9))
        r = ld2410.Report(self.engineering, target, d, self.energy if target else 0, d,
                          self.energy if target else 0, d,
                          gates if self.engineering else (), gates if self.engineering else (),
                          0x60 if self.engineering else None, 1 if self.engineering else None)
        return ld2410.encode_report(r)

    def step(self) -> None:
        self._answer_commands()
        frame = self.report()
        if self.drop_bytes and self.sent % 2:
            frame = frame[:7] + frame[9:]
        if self.dev.write(frame):
            self.sent += 1

    def _answer_commands(self) -> None:
        self._rx += self.dev.read(0)
        while True:
            i = self._rx.find(ld2410.CMD_HEAD)
            if i < 0 or len(self._rx) < i + 10:
                return
            n = self._rx[i + 4] | self._rx[i + 5] << 8
            end = i + 10 + n
            if len(self._rx) < end:
                return
            cmd = bytes(self._rx[i:end])
            del self._rx[:end]
            self.commands.append(cmd)
            word = cmd[6] | cmd[7] << 8
            if word == ld2410.CMD_ENGINEERING_ON:
                self.engineering = True
            elif word == ld2410.CMD_ENGINEERING_OFF:
                self.engineering = False
            value = b"\x01\x00\x40\x00" if word == ld2410.CMD_ENABLE_CONFIG else b""
            body = bytes((word & 0xFF, (word >> 8) | 0x01, 0, 0)) + value
            self.dev.write(ld2410.CMD_HEAD + bytes((len(body), 0)) + body + ld2410.CMD_TAIL)

    def close(self) -> None:
        self.stop()
        self.dev.close()


class TFminiEmulator(EmulatorThread):
    """100 Hz frames of `distance_cm` at `strength`; `corrupt` sends every frame with a bad checksum."""

    period = 0.01

    def __init__(self, link, distance_cm: int = 500, strength: int = 2000) -> None:
        super().__init__()
        self.dev = PtyDevice(link)
        self.distance_cm, self.strength = distance_cm, strength
        self.corrupt = False
        self.sent = 0

    def step(self) -> None:
        frame = tfmini.encode(tfmini.Measurement(self.distance_cm, self.strength, 0x0900))
        if self.corrupt:
            frame = frame[:8] + bytes(((frame[8] + 1) & 0xFF,))
        if self.dev.write(frame):
            self.sent += 1

    def close(self) -> None:
        self.stop()
        self.dev.close()


@dataclass
class WidgetState:
    serial: bytes = bytes.fromhex("78563412")         # BCD, LSB first: prints as 12345678
    firmware: tuple[int, int] = (0x44, 0x01)
    break_units: int = 9
    mab_units: int = 1
    rate: int = 40
    frames: list[tuple[float, bytes]] = field(default_factory=list)   # (receive time, slots)
    messages: list[tuple[int, bytes]] = field(default_factory=list)   # every (label, data)
    errors: int = 0


class EnttecEmulator:
    """A DMX USB Pro widget on a pty: records label 6 universes, applies label 4, answers 3 and 10."""

    def __init__(self, link) -> None:
        self.dev = PtyDevice(link)
        self.state = WidgetState()
        self._rx = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="enttec-emulator")

    def start(self):
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            data = self.dev.read(0.02)
            if data:
                self._rx += data
                self._parse(time.monotonic())
            elif not self.dev.plugged:
                self._rx.clear()
                time.sleep(0.01)

    def _parse(self, now: float) -> None:
        st = self.state
        messages, errors = take_widget_messages(self._rx)
        st.errors += errors
        for label, data in messages:
            st.messages.append((label, data))
            if label == 6 and data[:1] == b"\x00":
                st.frames.append((now, data[1:]))
            elif label == 4 and len(data) >= 5:
                st.break_units, st.mab_units, st.rate = data[2], data[3], data[4]
            elif label == 10:
                self._reply(10, st.serial)
            elif label == 3:
                self._reply(3, bytes((*st.firmware, st.break_units, st.mab_units, st.rate)))

    def _reply(self, label: int, data: bytes) -> None:
        self.dev.write(bytes((0x7E, label, len(data) & 0xFF, len(data) >> 8)) + data + b"\xe7")

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self.dev.close()
