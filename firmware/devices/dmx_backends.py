"""The DMX backend table: config `type` -> transport constructor.

A module of its own so that the sender in its own process (dmx_process) and `open_dmx` share one
table, and real transports are imported lazily (pyserial and sockets only where configured).
"""
from __future__ import annotations

from typing import Callable

from firmware.devices.backend_table import lazy

from firmware.devices.dmx_transport import DmxTransport, NullTransport, SimDmxTransport


BACKENDS: dict[str, Callable[..., DmxTransport]] = {
    "sim": SimDmxTransport,
    "none": lambda cfg, clock: NullTransport(),
    "enttec-pro": lazy("firmware.devices.dmx_serial", "EnttecProTransport", with_clock=False),
    "open-dmx": lazy("firmware.devices.dmx_serial", "OpenDmxTransport", with_clock=False),
    "artnet": lazy("firmware.devices.dmx_net", "ArtNetTransport", with_clock=False),
    "sacn": lazy("firmware.devices.dmx_net", "SacnTransport", with_clock=False),
}
