"""The DMX transport interface, and the transports with no hardware behind them (sim, none).

Real transports (dmx_serial, dmx_net) import this module; the table in dmx_backends imports them.
"""
from __future__ import annotations

from dataclasses import dataclass

from firmware.devices.fault_injection import FaultInjectable


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


class SimDmxTransport(FaultInjectable, DmxTransport):
    """Records every universe sent (time, bytes). `inject("unplug")` makes sends fail like a vanished port."""

    name = "dmx[sim]"
    FAULTS = ("unplug",)

    def __init__(self, cfg=None, clock=None, max_frames: int = 100_000) -> None:
        self.clock = clock
        self.frames: list[SentFrame] = []
        self.max_frames = max_frames
        self.unplugged = False
        self.opens = 0

    def open(self) -> None:
        if self.unplugged:
            raise OSError("sim DMX interface unplugged")
        self.opens += 1

    def send(self, universe: bytes) -> None:
        if self.unplugged:
            raise OSError("sim DMX interface unplugged")
        if len(self.frames) >= self.max_frames:  # bounded: a long soak must not grow memory
            del self.frames[: self.max_frames // 2]
        self.frames.append(SentFrame(self.clock.now() if self.clock else 0.0, bytes(universe)))

    def _switch(self, fault: str, on: bool) -> None:
        self.unplugged = on


class NullTransport(DmxTransport):
    name = "dmx[none]"

    def send(self, universe: bytes) -> None:
        pass
