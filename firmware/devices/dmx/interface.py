"""The DMX transport interface: what a sender needs of any interface kind.

Real transports (dmx/usb.py, dmx/net.py) import this module; the table in dmx/table.py imports them.
"""
from __future__ import annotations

from dataclasses import dataclass


class DmxTransport:
    """Puts one universe on the wire. `send` raises OSError when the interface is gone."""

    name = "dmx"

    def open(self) -> None:
        pass

    def send(self, universe: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


@dataclass
class SentFrame:
    t: float
    data: bytes
