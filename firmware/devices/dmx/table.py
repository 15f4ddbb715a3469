"""The DMX backend table: config `type` -> transport constructor.

A module of its own so that the sender in its own process (dmx/process.py) and `open_dmx` share one
table, and real transports are imported lazily (pyserial and sockets only where configured).
"""
from __future__ import annotations

from firmware.devices.backend_table import BackendTable, lazy
from firmware.devices.dmx.interface import DmxTransport
from firmware.devices.dmx.sim import NullTransport, SimDmxTransport


BACKENDS: BackendTable[DmxTransport] = BackendTable("dmx", {
    "sim": SimDmxTransport,
    "none": lambda cfg, clock: NullTransport(),
    "enttec-pro": lazy("firmware.devices.dmx.usb", "EnttecProTransport", with_clock=False),
    "open-dmx": lazy("firmware.devices.dmx.usb", "OpenDmxTransport", with_clock=False),
    "artnet": lazy("firmware.devices.dmx.net", "ArtNetTransport", with_clock=False),
    "sacn": lazy("firmware.devices.dmx.net", "SacnTransport", with_clock=False),
})
