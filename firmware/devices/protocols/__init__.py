"""Pure protocol codecs: bytes in, values out (and back). No I/O, no threads, no clocks.

Every decoder raises `FrameError` naming the byte offset where the frame broke. Every stream parser
has the same shape: `feed(bytes) -> list[message]`; it keeps partial frames between calls,
resynchronises on the next header after garbage or dropped bytes, and counts what it rejected
(`rejected`, `last_error`) instead of raising, because a serial line with noise is normal operation.
"""
from __future__ import annotations


class FrameError(ValueError):
    """A frame that breaks its protocol. `offset` is the byte index within the frame that is wrong."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at byte {offset})")
        self.offset = offset


def hexdump(data: bytes, limit: int = 32) -> str:
    """Short hex rendering for log lines and error messages."""
    text = data[:limit].hex(" ")
    return text + (" ..." if len(data) > limit else "")
