"""The DMX transports with no hardware behind them: `sim` (records what it was sent) and `none`."""
from __future__ import annotations

from firmware.devices.dmx.interface import DmxTransport, SentFrame
from firmware.devices.fault_injection import FaultInjectable


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
