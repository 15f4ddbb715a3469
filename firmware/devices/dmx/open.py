"""DMX output: a transport per interface kind, and one fixed-rate sender for all of them.

The show hands the sender a universe whenever a cue changes; the sender keeps re-sending the newest
universe at `rate_hz` on its own thread (fixtures treat a gap of ~1 s as signal loss). A transport
that fails (a USB widget unplugged) is reopened with backoff by the sender; the show never notices.
"""
from __future__ import annotations

from firmware.devices.dmx.sender import DmxSender
from firmware.devices.dmx.table import BACKENDS


def open_dmx(cfg, clock, isolate: bool = False):
    """The sender for a [dmx] section. With `isolate` (the box on the real clock), a real transport
    with `own_process = true` is driven from a process of its own (see dmx/process.py)."""
    if isolate and cfg.own_process and cfg.type not in ("sim", "none"):
        from firmware.devices.dmx.process import DmxProcessSender  # multiprocessing only where used
        return DmxProcessSender(cfg)
    transport = BACKENDS.open(cfg, clock)
    channels = cfg.channels
    rate = cfg.rate_hz
    return DmxSender(transport, clock, rate_hz=rate, channels=channels)
