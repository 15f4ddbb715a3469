"""The box's status as one typed value: what `humus status`, OSC faults and the soak read."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from firmware.devices.base import Health
from firmware.show.machine import State

T = TypeVar("T")


@dataclass(frozen=True)
class BoxStatus:
    show: State | None                 # the frame's show state, CLOSED outside opening hours
    fps: float                         # over the last 60 presented frames
    engine: str | None                 # the engine in words; None without a model
    model: dict | None                 # {name, network}
    devices: dict[str, Health]         # a copy of each part's health at the frame
    venue: dict = field(default_factory=dict)   # schedule, clock, projector, osc, detected devices
    faults_total: int = 0              # every fault since start
    recent_faults: tuple[str, ...] = ()   # the newest of them, oldest first

    def faults_after(self, seen: int) -> tuple[str, ...]:
        """The faults after the first `seen` of all of them (as many as the status carries)."""
        return newest_after(self.recent_faults, self.faults_total, seen)

    @property
    def state(self) -> str:
        """"running", or "degraded" while any device or model part is faulted."""
        return "running" if all(d.ok for d in self.devices.values()) else "degraded"

    def devices_json(self) -> dict:
        return health_json(self.devices)


def health_json(healths: dict[str, Health]) -> dict:
    """{role: {ok, detail}}: a part's health as the status file and OSC carry it."""
    return {k: {"ok": h.ok, "detail": h.detail} for k, h in healths.items()}


def newest_after(recent: Sequence[T], total: int, seen: int) -> Sequence[T]:
    """Of `total` items so far, of which `recent` keeps the newest: those after the first `seen` that
    it still keeps (a reader that knows how many it has seen asks for the rest)."""
    new = total - seen
    return recent[-new:] if new > 0 else recent[:0]
