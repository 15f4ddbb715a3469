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


def length_field(buf: bytearray, at: int, most: int, overhead: int, what: str) -> int | None:
    """The length of a frame whose data length is a 16-bit little-endian field at `at`: that length
    plus the frame's `overhead` bytes; None until the field has arrived."""
    if len(buf) < at + 2:
        return None
    n = buf[at] | buf[at + 1] << 8
    if n > most:
        raise FrameError(f"{what} {n} exceeds {most}", at)
    return n + overhead


class StreamParser:
    """The shape every stream parser shares; a protocol says where a frame starts, how long it is and
    how to decode it. After a bad frame only its first byte is dropped and the search starts again:
    the real frame may begin inside the bytes just tried."""

    KEEP = 0   # bytes kept from a buffer with no frame start in it: the start of a header that is cut

    def __init__(self) -> None:
        self._buf = bytearray()
        self.rejected = 0
        self.last_error: FrameError | None = None

    def _find_start(self, buf: bytearray) -> int:
        raise NotImplementedError

    def _frame_length(self, buf: bytearray) -> int | None:
        """The length of the frame at buf[0]; None while its header is still incomplete. Raises
        FrameError for a length the protocol cannot have."""
        raise NotImplementedError

    def _decode(self, frame: bytes):
        raise NotImplementedError

    def feed(self, data: bytes) -> list:
        buf = self._buf
        buf += data
        out = []
        while True:
            start = self._find_start(buf)
            if start < 0:
                del buf[: max(0, len(buf) - self.KEEP)]
                return out
            del buf[:start]
            try:
                n = self._frame_length(buf)
                if n is None or len(buf) < n:
                    return out
                out.append(self._decode(bytes(buf[:n])))
            except FrameError as exc:
                self.rejected += 1
                self.last_error = exc
                del buf[:1]
                continue
            del buf[:n]


def hexdump(data: bytes, limit: int = 32) -> str:
    """Short hex rendering for log lines and error messages."""
    text = data[:limit].hex(" ")
    return text + (" ..." if len(data) > limit else "")
