"""The presence-sensor interface: what every backend implements and the show reads.

Backends import this module; the table in presence/table.py imports the backends, never the other way round.
"""
from __future__ import annotations

from dataclasses import dataclass

from firmware.devices.base import Device

@dataclass(frozen=True)
class Reading:
    distance_m: float | None  # nearest person, None = nobody seen
    t: float                  # when it was read (box clock)


class PresenceSensor(Device):
    name = "presence"

    def __init__(self) -> None:
        super().__init__()
        self._stale_verdict: str | None = None   # the fault follow_filter raised, while it stands

    def latest(self) -> Reading | None:
        """Newest reading; None if the sensor has produced nothing yet."""
        raise NotImplementedError

    # What `humus doctor` and `humus calibrate` show beside the distance. Every sensor answers, so
    # they need not ask which kind they hold; most kinds have nothing to add and keep these.
    @property
    def rejected(self) -> int:
        """Malformed frames thrown away since start."""
        return 0

    @property
    def gates(self) -> tuple[int, ...]:
        """Moving-target energy per distance gate, nearest first, from the newest report; () if none."""
        return ()

    def follow_filter(self, stale: bool, stale_after_s: float, judged: Reading | None) -> None:
        """The show's presence filter owns staleness (its state says `stale`, judged on the reading
        `judged` the frame read); the health follows it here. Back from stale, only this verdict is
        lifted: a fault the sensor raised itself (its port lost, say) is the sensor's to clear, or the
        health (and the log) would flap every frame.

        A reader thread may publish a fresh reading between the frame's read and this call (a radar
        back from an unplug): the verdict is then about a reading already replaced, and raising it
        would start an episode the next frame ends. It waits for the next frame's judgement instead."""
        if stale:
            if self.health.ok and _newer(self._newest(), judged):
                return
            self._stale_verdict = f"stale sensor: no reading for {stale_after_s:g} s"
            self.fault(self._stale_verdict)
        elif self._stale_verdict is not None:
            if self.health.detail == self._stale_verdict:
                self.recover()
            self._stale_verdict = None

    def _newest(self) -> Reading | None:
        """The newest reading, without side effects (a backend whose `latest` has some overrides it)."""
        return self.latest()


def _newer(reading: Reading | None, than: Reading | None) -> bool:
    return reading is not None and (than is None or reading.t > than.t)
