"""Benewake TFmini / TFmini-S: 9-byte frames at 100 Hz on a UART at 115200 baud.

`59 59 | distance cm (LE) | strength (LE) | temperature or reserved (LE) | checksum`, where the
checksum is the low byte of the sum of the first 8 bytes.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from firmware.devices.protocols import FrameError, StreamParser

HEADER = b"\x59\x59"
FRAME_LEN = 9
SATURATED = 65535         # strength at saturation: the distance is unreliable


@dataclass(frozen=True)
class Measurement:
    distance_cm: int
    strength: int
    temp_raw: int          # TFmini-S/Plus: celsius = raw / 8 - 256; older TFmini: reserved

    def distance_m(self, min_strength: int = 100) -> float | None:
        """None when the manual says the reading is unreliable (weak, saturated or zero)."""
        if self.strength < min_strength or self.strength == SATURATED or self.distance_cm <= 0:
            return None
        return self.distance_cm / 100.0


def checksum(first8: bytes) -> int:
    return sum(first8[:8]) & 0xFF


def encode(m: Measurement) -> bytes:
    body = HEADER + struct.pack("<HHH", m.distance_cm, m.strength, m.temp_raw)
    return body + bytes((checksum(body),))


def decode(frame: bytes) -> Measurement:
    if len(frame) != FRAME_LEN:
        raise FrameError(f"frame of {len(frame)} bytes, expected {FRAME_LEN}", min(len(frame), FRAME_LEN))
    for i in (0, 1):
        if frame[i] != 0x59:
            raise FrameError(f"header byte 0x{frame[i]:02x}, expected 0x59", i)
    if checksum(frame) != frame[8]:
        raise FrameError(f"checksum 0x{frame[8]:02x}, computed 0x{checksum(frame):02x}", 8)
    return Measurement(*struct.unpack_from("<HHH", frame, 2))


class Parser(StreamParser):
    """Incremental: resyncs on `59 59`; a bad checksum drops one byte so a shifted frame is found."""

    KEEP = 1   # a trailing 0x59 may start the next frame

    def _find_start(self, buf: bytearray) -> int:
        return buf.find(HEADER)

    def _frame_length(self, buf: bytearray) -> int:
        return FRAME_LEN

    def _decode(self, frame: bytes) -> Measurement:
        return decode(frame)
