"""The presence-sensor interface: what every backend implements and the show reads.

Backends import this module; the table in presence.py imports the backends, never the other way round.
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

    def latest(self) -> Reading | None:
        """Newest reading; None if the sensor has produced nothing yet."""
        raise NotImplementedError
