"""Presence sensors: the backend table.

A sensor publishes its newest reading: the distance of the nearest person in metres, or None when it
sees nobody. The pure filter in firmware.show.presence turns readings into present/absent with
dwell, grace and cooldown, the same for every sensor kind.
"""
from __future__ import annotations

from firmware.devices.backend_table import BackendTable, lazy
from firmware.devices.presence.interface import PresenceSensor
from firmware.devices.presence.sim import NoPresence, SimPresence


BACKENDS: BackendTable[PresenceSensor] = BackendTable("presence", {
    "sim": SimPresence,
    "none": NoPresence,
    "ld2410": lazy("firmware.devices.presence.uart", "LD2410Sensor"),
    "tfmini": lazy("firmware.devices.presence.uart", "TFminiSensor"),
    "distance": lazy("firmware.devices.presence.gpio", "DistanceSensorBackend"),
    "motion": lazy("firmware.devices.presence.gpio", "MotionSensorBackend"),
})
open_presence = BACKENDS.open   # (cfg, clock) -> PresenceSensor
