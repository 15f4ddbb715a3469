"""The clock-source interface: what every backend answers and the venue reads.

Backends import this module; the table in timesync/table.py imports the backends, never the other way
round.
"""
from __future__ import annotations

from dataclasses import dataclass

from firmware.devices.base import Device


@dataclass(frozen=True)
class ClockSync:
    synced: bool
    detail: str      # the evidence, for `humus status` and the journal
    since: float     # box-clock time this answer (synced or not) began: the source's start at first


class TimeSource(Device):
    """`read()` returns the latest answer at once; a backend looks again only when `_due` says so, so
    the frame loop can call it every frame."""

    name = "timesync"

    def __init__(self, clock) -> None:
        super().__init__()
        self.clock = clock
        self._answer: ClockSync | None = None

    def read(self) -> ClockSync:
        now = self.clock.now()
        if self._answer is None or self._due(now):
            synced, detail = self._look(now)
            old = self._answer
            self._answer = ClockSync(synced, detail, now if old is None or old.synced != synced else old.since)
        return self._answer

    def _due(self, now: float) -> bool:
        """Whether to look again (the first read always looks)."""
        raise NotImplementedError

    def _look(self, now: float) -> tuple[bool, str]:
        """(synchronised?, why)."""
        raise NotImplementedError
