"""HLK-LD2410 24 GHz radar, serial protocol V1.02 (plus the LD2410B/C engineering extras).

Reports (radar -> host): `F4 F3 F2 F1 | len (LE) | type | AA | target | ... | 55 00 | F8 F7 F6 F5`,
type 0x02 basic (len 13) or 0x01 engineering (per-gate energies, optionally light level and OUT pin).
Commands and ACKs: `FD FC FB FA | len (LE) | command word (LE) | value | 04 03 02 01`; an ACK carries
the command word with bit 8 set (0x01FF for 0x00FF) and a 2-byte status (0 = success) first.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from firmware.devices.protocols import FrameError, StreamParser, length_field

REPORT_HEAD, REPORT_TAIL = b"\xf4\xf3\xf2\xf1", b"\xf8\xf7\xf6\xf5"
CMD_HEAD, CMD_TAIL = b"\xfd\xfc\xfb\xfa", b"\x04\x03\x02\x01"
TYPE_ENGINEERING, TYPE_BASIC = 0x01, 0x02
BASIC_LEN = 13
MAX_LEN = 64              # the largest real frame is ~40 bytes; anything longer is corruption
CMD_ENABLE_CONFIG, CMD_END_CONFIG = 0x00FF, 0x00FE
CMD_ENGINEERING_ON, CMD_ENGINEERING_OFF = 0x0062, 0x0063
TARGET_NONE, TARGET_MOVING, TARGET_STATIC, TARGET_BOTH = 0, 1, 2, 3


@dataclass(frozen=True)
class Report:
    engineering: bool
    target: int                   # 0 none, 1 moving, 2 stationary, 3 both
    moving_cm: int
    moving_energy: int            # 0..100
    static_cm: int
    static_energy: int
    detect_cm: int
    moving_gates: tuple[int, ...] = ()   # engineering only: energy per 0.75 m gate
    static_gates: tuple[int, ...] = ()
    light: int | None = None             # engineering, newer firmware: photo-sensitivity value
    out_pin: int | None = None           # engineering, newer firmware: OUT pin level

    def distance_m(self, min_energy: int = 0) -> float | None:
        """Nearest target strong enough to believe, in metres; None = nobody."""
        cands = []
        if self.target & TARGET_MOVING and self.moving_energy >= min_energy and self.moving_cm > 0:
            cands.append(self.moving_cm)
        if self.target & TARGET_STATIC and self.static_energy >= min_energy and self.static_cm > 0:
            cands.append(self.static_cm)
        return min(cands) / 100.0 if cands else None


@dataclass(frozen=True)
class Ack:
    command: int                  # the command word answered (without the 0x0100 ACK bit)
    status: int                   # 0 = success
    value: bytes


def encode_command(word: int, value: bytes = b"") -> bytes:
    body = struct.pack("<H", word) + bytes(value)
    return CMD_HEAD + struct.pack("<H", len(body)) + body + CMD_TAIL


def enable_engineering() -> list[bytes]:
    """Every command sequence is framed by enable configuration (value 0x0001) and end configuration."""
    return [encode_command(CMD_ENABLE_CONFIG, b"\x01\x00"), encode_command(CMD_ENGINEERING_ON),
            encode_command(CMD_END_CONFIG)]


def encode_report(r: Report) -> bytes:
    """The frame a radar would send (emulators and tests)."""
    body = struct.pack("<BBBHBHBH", TYPE_ENGINEERING if r.engineering else TYPE_BASIC, 0xAA, r.target,
                       r.moving_cm, r.moving_energy, r.static_cm, r.static_energy, r.detect_cm)
    if r.engineering:
        body += bytes((len(r.moving_gates) - 1, len(r.static_gates) - 1))
        body += bytes(r.moving_gates) + bytes(r.static_gates)
        if r.light is not None:
            body += bytes((r.light, r.out_pin or 0))
    body += b"\x55\x00"
    return REPORT_HEAD + struct.pack("<H", len(body)) + body + REPORT_TAIL


def decode_report_payload(p: bytes, base: int = 6) -> Report:
    """`p` is the intra-frame data (from the type byte to 55 00); `base` = its offset in the frame."""
    if len(p) < BASIC_LEN:
        raise FrameError(f"report payload of {len(p)} bytes, needs at least {BASIC_LEN}", base - 2)
    kind = p[0]
    if kind not in (TYPE_BASIC, TYPE_ENGINEERING):
        raise FrameError(f"report type 0x{kind:02x}, expected 0x01 or 0x02", base)
    if p[1] != 0xAA:
        raise FrameError(f"report head 0x{p[1]:02x}, expected 0xaa", base + 1)
    if p[-2:] != b"\x55\x00":
        raise FrameError(f"report tail {p[-2:].hex(' ')}, expected 55 00", base + len(p) - 2)
    if p[2] > 3:
        raise FrameError(f"target state {p[2]} out of range 0..3", base + 2)
    target, mcm, men, scm, sen, dcm = struct.unpack_from("<BHBHBH", p, 2)
    if kind == TYPE_BASIC:
        if len(p) != BASIC_LEN:
            raise FrameError(f"basic report length {len(p)}, expected {BASIC_LEN}", base - 2)
        return Report(False, target, mcm, men, scm, sen, dcm)
    # Engineering: max moving gate N, max static gate M, N+1 + M+1 energies, [light, out pin], 55 00
    n_m, n_s = p[11] + 1, p[12] + 1
    gates_end = 13 + n_m + n_s
    extra = len(p) - 2 - gates_end
    if extra not in (0, 2):
        raise FrameError(f"engineering report length {len(p)} does not fit {n_m}+{n_s} gates", base - 2)
    light = out = None
    if extra == 2:
        light, out = p[gates_end], p[gates_end + 1]
    return Report(True, target, mcm, men, scm, sen, dcm, tuple(p[13:13 + n_m]),
                  tuple(p[13 + n_m:gates_end]), light, out)


def decode_ack_payload(p: bytes, base: int = 6) -> Ack:
    if len(p) < 4:
        raise FrameError(f"ACK payload of {len(p)} bytes, needs at least 4", base - 2)
    word, status = struct.unpack_from("<HH", p)
    if not word & 0x0100:
        raise FrameError(f"command word 0x{word:04x} lacks the ACK bit", base)
    return Ack(word & ~0x0100, status, bytes(p[4:]))


def decode(frame: bytes) -> Report | Ack:
    """One complete frame (report or ACK)."""
    head = bytes(frame[:4])
    if head == REPORT_HEAD:
        tail, payload = REPORT_TAIL, decode_report_payload
    elif head == CMD_HEAD:
        tail, payload = CMD_TAIL, decode_ack_payload
    else:
        raise FrameError(f"header {head.hex(' ')} is neither f4 f3 f2 f1 nor fd fc fb fa", 0)
    if len(frame) < 10:
        raise FrameError(f"frame of {len(frame)} bytes is shorter than 10", len(frame))
    n = frame[4] | frame[5] << 8
    if n > MAX_LEN or len(frame) != n + 10:
        raise FrameError(f"length field {n} does not match a {len(frame)}-byte frame", 4)
    if bytes(frame[-4:]) != tail:
        raise FrameError(f"footer {bytes(frame[-4:]).hex(' ')}, expected {tail.hex(' ')}", len(frame) - 4)
    return payload(bytes(frame[6:-4]))


class Parser(StreamParser):
    """Incremental parser for the radar's output: reports and command ACKs, mixed.

    After a bad length or footer it drops one byte and searches for the next header, so a frame that
    began inside the rejected bytes is still found.
    """

    KEEP = 3   # a possible partial header

    def _find_start(self, buf: bytearray) -> int:
        return _find_header(buf)

    def _frame_length(self, buf: bytearray) -> int | None:
        return length_field(buf, 4, MAX_LEN, 10, "length field")

    def _decode(self, frame: bytes) -> Report | Ack:
        return decode(frame)


def _find_header(buf: bytearray) -> int:
    a, b = buf.find(REPORT_HEAD), buf.find(CMD_HEAD)
    if a < 0:
        return b
    return a if b < 0 else min(a, b)
