"""An Enttec DMX USB Pro widget on a pty: records the universes, applies label 4, answers 3 and 10.

It reads the host's messages with its own small parser, not the firmware's (protocols/enttec.py),
so a bug shared with the transport under test cannot hide.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from firmware.devices.emulators.pty import PtyEmulator


@dataclass
class WidgetState:
    serial: bytes = bytes.fromhex("78563412")         # BCD, LSB first: prints as 12345678
    firmware: tuple[int, int] = (0x44, 0x01)
    break_units: int = 9
    mab_units: int = 1
    rate: int = 40
    frames: list[tuple[float, bytes]] = field(default_factory=list)   # the newest (receive time, slots)
    messages: list[tuple[int, bytes]] = field(default_factory=list)   # the newest (label, data)
    universes: int = 0       # label 6 universes received, all of them
    param_sets: int = 0      # label 4 messages: the transport sends one on every open
    errors: int = 0          # framing errors skipped over


class EnttecEmulator(PtyEmulator):
    """Fault: `unplug`. `frames` and `messages` keep the newest KEEP each, so a soak of hours at
    40 Hz stays in bounded memory while a test still sees all it sent."""

    KEEP = 4096

    def __init__(self, link) -> None:
        super().__init__(link, 50.0)   # live: how often it looks at the wire while the host is quiet
        self.state = WidgetState()
        self._rx = bytearray()

    def step(self, now: float) -> None:
        """Take what the host wrote since the last step; universes are stamped `now`."""
        data = self.port.read()
        if not self.port.plugged:
            self._rx.clear()           # a replugged widget starts on a fresh stream
            return
        self._rx += data
        st = self.state
        messages, errors = take_widget_messages(self._rx)
        st.errors += errors
        for label, body in messages:
            st.messages.append((label, body))
            del st.messages[:-self.KEEP]
            if label == 6 and body[:1] == b"\x00":
                st.universes += 1
                st.frames.append((now, body[1:]))
                del st.frames[:-self.KEEP]
            elif label == 4:
                st.param_sets += 1
                if len(body) >= 5:
                    st.break_units, st.mab_units, st.rate = body[2], body[3], body[4]
            elif label == 10:
                self._reply(10, st.serial)
            elif label == 3:
                self._reply(3, bytes((*st.firmware, st.break_units, st.mab_units, st.rate)))

    def _reply(self, label: int, data: bytes) -> None:
        self.port.write(bytes((0x7E, label, len(data) & 0xFF, len(data) >> 8)) + data + b"\xe7")


def take_widget_messages(rx: bytearray) -> tuple[list[tuple[int, bytes]], int]:
    """Cut every complete Enttec Pro message off the front of `rx`; a partial one stays for the next
    read. Returns the (label, data) pairs and the number of framing errors skipped over."""
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
