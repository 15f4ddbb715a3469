"""Enttec DMX USB Pro widget API (v1.44): `7E | label | len LSB | len MSB | data | E7`.

Host -> widget: label 6 (send DMX: start code + 24..512 slots), label 4 (set break/MAB/rate),
label 3 (get parameters), label 10 (get serial number). The widget answers 3 and 10 with the same
framing and label.
"""
from __future__ import annotations

from dataclasses import dataclass

from firmware.devices.protocols import FrameError, StreamParser, length_field

START, END = 0x7E, 0xE7
LABEL_GET_PARAMS = 3
LABEL_SET_PARAMS = 4
LABEL_SEND_DMX = 6
LABEL_GET_SERIAL = 10
MAX_DATA = 600            # the API's limit on one message's data length
TIME_UNIT_US = 10.67      # break and MAB are set in units of 10.67 us
MIN_SLOTS, MAX_SLOTS = 24, 512


@dataclass(frozen=True)
class Message:
    label: int
    data: bytes


@dataclass(frozen=True)
class WidgetParams:
    firmware: int         # version, MSB = firmware variety (1 = DMX, 2 = RDM)
    break_us: float
    mab_us: float
    rate_hz: int          # 0 = as fast as possible
    user_data: bytes = b""


def encode(label: int, data: bytes = b"") -> bytes:
    if not 0 <= label <= 255:
        raise ValueError(f"label {label} out of range 0..255")
    if len(data) > MAX_DATA:
        raise ValueError(f"data length {len(data)} exceeds the widget's {MAX_DATA}")
    n = len(data)
    return bytes((START, label, n & 0xFF, n >> 8)) + bytes(data) + bytes((END,))


def encode_dmx(slots: bytes) -> bytes:
    """Label 6: start code 0 + slots. Fewer than 24 slots are padded (the widget's minimum)."""
    if len(slots) > MAX_SLOTS:
        raise ValueError(f"{len(slots)} slots, DMX has at most {MAX_SLOTS}")
    return encode(LABEL_SEND_DMX, b"\x00" + bytes(slots).ljust(MIN_SLOTS, b"\x00"))


def _units(us: float, lo: int, hi: int) -> int:
    return max(lo, min(hi, round(us / TIME_UNIT_US)))


def encode_set_params(break_us: float, mab_us: float, rate_hz: float) -> bytes:
    """Label 4: user config size (0, 0), break (9..127 units), MAB (1..127 units), rate (0..40)."""
    rate = max(0, min(40, round(rate_hz)))
    return encode(LABEL_SET_PARAMS, bytes((0, 0, _units(break_us, 9, 127), _units(mab_us, 1, 127), rate)))


def encode_get_params(user_size: int = 0) -> bytes:
    return encode(LABEL_GET_PARAMS, bytes((user_size & 0xFF, user_size >> 8)))


def encode_get_serial() -> bytes:
    return encode(LABEL_GET_SERIAL)


def decode_params(data: bytes) -> WidgetParams:
    """Reply to label 3: firmware LSB, MSB, break, MAB, rate, then the user config bytes."""
    if len(data) < 5:
        raise FrameError(f"parameters reply has {len(data)} data bytes, needs 5", len(data))
    return WidgetParams(firmware=data[0] | data[1] << 8, break_us=data[2] * TIME_UNIT_US,
                        mab_us=data[3] * TIME_UNIT_US, rate_hz=data[4], user_data=bytes(data[5:]))


def decode_serial(data: bytes) -> str:
    """Reply to label 10: 4 bytes of BCD, least significant byte first -> the 8 printed digits."""
    if len(data) != 4:
        raise FrameError(f"serial reply has {len(data)} data bytes, needs 4", 0)
    digits = ""
    for i, b in enumerate(reversed(data)):
        hi, lo = b >> 4, b & 0xF
        if hi > 9 or lo > 9:
            raise FrameError(f"serial byte 0x{b:02x} is not BCD", 3 - i)
        digits += f"{hi}{lo}"
    return digits


def decode(frame: bytes) -> Message:
    """One complete message; FrameError names the offending offset."""
    if len(frame) < 5:
        raise FrameError(f"message of {len(frame)} bytes is shorter than the 5-byte minimum", len(frame))
    if frame[0] != START:
        raise FrameError(f"start byte 0x{frame[0]:02x}, expected 0x7e", 0)
    n = frame[2] | frame[3] << 8
    if n > MAX_DATA:
        raise FrameError(f"data length {n} exceeds {MAX_DATA}", 2)
    if len(frame) != n + 5:
        raise FrameError(f"message is {len(frame)} bytes, length field says {n + 5}", 2)
    if frame[-1] != END:
        raise FrameError(f"end byte 0x{frame[-1]:02x}, expected 0xe7", len(frame) - 1)
    return Message(frame[1], bytes(frame[4:-1]))


class Parser(StreamParser):
    """Incremental: feed(bytes) -> complete messages. Resyncs on 0x7E after a bad frame."""

    def _find_start(self, buf: bytearray) -> int:
        return buf.find(START)

    def _frame_length(self, buf: bytearray) -> int | None:
        return length_field(buf, 2, MAX_DATA, 5, "data length")

    def _decode(self, frame: bytes) -> Message:
        return decode(frame)
