"""The clock-source backend table: config `type` -> constructor."""
from __future__ import annotations

from firmware.devices.backend_table import BackendTable
from firmware.devices.timesync.interface import TimeSource
from firmware.devices.timesync.sim import SimTimeSync, TrustedTimeSync
from firmware.devices.timesync.system import SystemTimeSync

BACKENDS: BackendTable[TimeSource] = BackendTable("timesync", {
    "system": SystemTimeSync,
    "trusted": TrustedTimeSync,
    "sim": SimTimeSync,
})
open_timesync = BACKENDS.open   # (cfg, clock) -> TimeSource
