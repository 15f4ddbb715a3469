"""The DMX transport interface: what a sender needs of any interface kind.

Real transports (dmx/usb.py, dmx/net.py) import this module; the table in dmx/table.py imports them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SentFrame:
    t: float
    data: bytes


class DmxTransport:
    """Puts one universe on the wire. `send` raises OSError when the interface is gone."""

    name = "dmx"
    # The universes sent, oldest first, where the transport keeps them (the sim, for `humus run`'s
    # trace and the tests); None: a wire keeps nothing.
    frames: list[SentFrame] | None = None

    def open(self) -> None:
        pass

    def send(self, universe: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass
