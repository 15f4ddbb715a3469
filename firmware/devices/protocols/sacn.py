"""ANSI E1.31 (sACN) data packets, UDP port 5568: root, framing and DMP layers (E1.31-2018 table 4-1).

A full 512-slot packet is 638 bytes; each layer's flags+length is 0x7000 | (bytes from that field to
the end). Multicast goes to 239.255.hi.lo of the universe.
"""
from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from firmware.devices.protocols import FrameError

PORT = 5568
ACN_ID = b"ASC-E1.17\x00\x00\x00"
VECTOR_ROOT_DATA = 0x00000004
VECTOR_FRAMING_DATA = 0x00000002
VECTOR_DMP_SET_PROPERTY = 0x02
HEADER_LEN = 126          # up to and including the start code
OPT_PREVIEW, OPT_TERMINATED, OPT_FORCE_SYNC = 0x80, 0x40, 0x20
# Namespace for deriving a box's CID from its machine id: any fixed UUID works, it must never change.
_CID_NAMESPACE = uuid.UUID("6f7b3f0e-1d7c-4e7e-9b53-68756d757301")


@dataclass(frozen=True)
class DataPacket:
    cid: bytes
    source_name: str
    priority: int
    sync_address: int
    sequence: int
    options: int
    universe: int
    start_code: int
    data: bytes


def multicast_group(universe: int) -> str:
    if not 1 <= universe <= 63999:
        raise ValueError(f"universe {universe} out of range 1..63999")
    return f"239.255.{universe >> 8}.{universe & 0xFF}"


def cid_for(machine_id: str) -> bytes:
    """A stable 16-byte CID per box: the same machine id always gives the same CID."""
    return uuid.uuid5(_CID_NAMESPACE, machine_id.strip()).bytes


def encode_data(cid: bytes, source_name: str, universe: int, data: bytes, sequence: int,
                priority: int = 100, options: int = 0, sync_address: int = 0, start_code: int = 0) -> bytes:
    if len(cid) != 16:
        raise ValueError(f"CID must be 16 bytes, got {len(cid)}")
    if len(data) > 512:
        raise ValueError(f"{len(data)} slots, E1.31 carries at most 512")
    if not 0 <= priority <= 200:
        raise ValueError(f"priority {priority} out of range 0..200")
    multicast_group(universe)  # range check
    total = HEADER_LEN + len(data)
    name = source_name.encode("utf-8")[:63].ljust(64, b"\x00")   # NUL terminated within 64 bytes
    root = struct.pack(">HH12sHI16s", 0x0010, 0x0000, ACN_ID, 0x7000 | (total - 16), VECTOR_ROOT_DATA, cid)
    framing = struct.pack(">HI64sBHBBH", 0x7000 | (total - 38), VECTOR_FRAMING_DATA, name, priority,
                          sync_address, sequence & 0xFF, options, universe)
    dmp = struct.pack(">HBBHHHB", 0x7000 | (total - 115), VECTOR_DMP_SET_PROPERTY, 0xA1, 0x0000, 0x0001,
                      len(data) + 1, start_code)
    return root + framing + dmp + bytes(data)


def decode_data(p: bytes) -> DataPacket:
    if len(p) < HEADER_LEN:
        raise FrameError(f"packet of {len(p)} bytes is shorter than the {HEADER_LEN}-byte header", len(p))
    pre, post, acn = struct.unpack_from(">HH12s", p, 0)
    if pre != 0x0010:
        raise FrameError(f"preamble size 0x{pre:04x}, expected 0x0010", 0)
    if post != 0:
        raise FrameError(f"postamble size 0x{post:04x}, expected 0", 2)
    if acn != ACN_ID:
        raise FrameError(f"ACN packet identifier {acn!r} is wrong", 4)
    for off, name in ((16, "root"), (38, "framing"), (115, "DMP")):
        fl, = struct.unpack_from(">H", p, off)
        if fl & 0xF000 != 0x7000 or fl & 0x0FFF != len(p) - off:
            raise FrameError(f"{name} flags+length 0x{fl:04x} does not match {len(p) - off} bytes", off)
    vec, = struct.unpack_from(">I", p, 18)
    if vec != VECTOR_ROOT_DATA:
        raise FrameError(f"root vector 0x{vec:08x} is not E1.31 data (4)", 18)
    vec, = struct.unpack_from(">I", p, 40)
    if vec != VECTOR_FRAMING_DATA:
        raise FrameError(f"framing vector 0x{vec:08x} is not a data packet (2)", 40)
    if p[117] != VECTOR_DMP_SET_PROPERTY:
        raise FrameError(f"DMP vector 0x{p[117]:02x}, expected 0x02", 117)
    if p[118] != 0xA1:
        raise FrameError(f"address/data type 0x{p[118]:02x}, expected 0xa1", 118)
    first, inc, count = struct.unpack_from(">HHH", p, 119)
    if first != 0 or inc != 1:
        raise FrameError(f"first address {first} / increment {inc}, expected 0 / 1", 119)
    if count != len(p) - 125:
        raise FrameError(f"property count {count} does not match {len(p) - 125} values", 123)
    universe, = struct.unpack_from(">H", p, 113)
    return DataPacket(cid=bytes(p[22:38]), source_name=p[44:108].split(b"\x00")[0].decode("utf-8", "replace"),
                      priority=p[108], sync_address=struct.unpack_from(">H", p, 109)[0], sequence=p[111],
                      options=p[112], universe=universe, start_code=p[125], data=bytes(p[126:]))
