"""The DMX backend table: config `type` -> transport constructor.

A module of its own so that the sender in its own process (dmx_process) and `open_dmx` share one
table, and real transports are imported lazily (pyserial and sockets only where configured).
"""
from __future__ import annotations

from typing import Callable

from firmware.devices.dmx_transport import DmxTransport, NullTransport, SimDmxTransport


def _enttec(cfg, clock):
    from firmware.devices.dmx_serial import EnttecProTransport
    return EnttecProTransport(cfg)


def _open_dmx(cfg, clock):
    from firmware.devices.dmx_serial import OpenDmxTransport
    return OpenDmxTransport(cfg)


def _artnet(cfg, clock):
    from firmware.devices.dmx_net import ArtNetTransport
    return ArtNetTransport(cfg)


def _sacn(cfg, clock):
    from firmware.devices.dmx_net import SacnTransport
    return SacnTransport(cfg)


BACKENDS: dict[str, Callable[..., DmxTransport]] = {
    "sim": SimDmxTransport,
    "none": lambda cfg, clock: NullTransport(),
    "enttec-pro": _enttec,
    "open-dmx": _open_dmx,
    "artnet": _artnet,
    "sacn": _sacn,
}
