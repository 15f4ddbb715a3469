"""Art-Net 4 ArtDmx (UDP port 6454): one DMX universe per packet.

`"Art-Net\\0" | OpCode 0x5000 (LE) | ProtVer 14 (BE) | Sequence | Physical | SubUni | Net |
Length (BE, even, 2..512) | data`. SubUni is the low byte of the 15-bit port-address, Net its high 7 bits.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from firmware.devices.protocols import FrameError

PORT = 6454
ID = b"Art-Net\x00"
OP_DMX = 0x5000
PROTOCOL_VERSION = 14
HEADER_LEN = 18


@dataclass(frozen=True)
class ArtDmx:
    port_address: int      # 15 bits: Net (7) | Sub-Net (4) | Universe (4)
    sequence: int          # 1..255, 0 = sequencing disabled
    physical: int
    data: bytes


def next_sequence(seq: int) -> int:
    """1..255 and round again; 0 would tell the node to stop reordering."""
    return seq % 255 + 1


def encode_dmx(port_address: int, data: bytes, sequence: int = 0, physical: int = 0) -> bytes:
    if not 0 <= port_address <= 0x7FFF:
        raise ValueError(f"port-address {port_address} out of range 0..32767")
    if len(data) > 512:
        raise ValueError(f"{len(data)} slots, ArtDmx carries at most 512")
    payload = bytes(data)
    if len(payload) < 2 or len(payload) % 2:   # the spec wants an even length of at least 2
        payload = payload.ljust(max(2, len(payload) + len(payload) % 2), b"\x00")
    return (ID + struct.pack("<H", OP_DMX) + struct.pack(">H", PROTOCOL_VERSION)
            + bytes((sequence & 0xFF, physical & 0xFF, port_address & 0xFF, port_address >> 8))
            + struct.pack(">H", len(payload)) + payload)


def decode_dmx(packet: bytes) -> ArtDmx:
    if len(packet) < HEADER_LEN:
        raise FrameError(f"packet of {len(packet)} bytes is shorter than the {HEADER_LEN}-byte header",
                         len(packet))
    if packet[:8] != ID:
        raise FrameError(f"ID {packet[:8]!r}, expected b'Art-Net\\x00'", 0)
    op, = struct.unpack_from("<H", packet, 8)
    if op != OP_DMX:
        raise FrameError(f"OpCode 0x{op:04x} is not ArtDmx (0x5000)", 8)
    ver, = struct.unpack_from(">H", packet, 10)
    if ver < PROTOCOL_VERSION:
        raise FrameError(f"protocol version {ver} is older than 14", 10)
    if packet[15] & 0x80:
        raise FrameError(f"Net 0x{packet[15]:02x} has its top bit set", 15)
    n, = struct.unpack_from(">H", packet, 16)
    if not 2 <= n <= 512 or n % 2:
        raise FrameError(f"length {n} is not even in 2..512", 16)
    if len(packet) != HEADER_LEN + n:
        raise FrameError(f"packet is {len(packet)} bytes, length field says {HEADER_LEN + n}", 16)
    return ArtDmx(packet[14] | packet[15] << 8, packet[12], packet[13], bytes(packet[HEADER_LEN:]))
