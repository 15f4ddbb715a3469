"""The display backend table. `present(frame)` shows one RGB frame; it must never block for long.

`headless` (display/sim.py) keeps the last frame; `pygame` is the fullscreen kiosk (X11 or KMSDRM),
in display/pygame_window.py.
"""
from __future__ import annotations

from typing import Callable

from firmware.devices.backend_table import lazy
from firmware.devices.display.interface import Display
from firmware.devices.display.sim import HeadlessDisplay

BACKENDS: dict[str, Callable[..., Display]] = {
    "headless": HeadlessDisplay,
    "sim": HeadlessDisplay,
    "pygame": lazy("firmware.devices.display.pygame_window", "PygameDisplay"),
}


def open_display(cfg, clock) -> Display:
    return BACKENDS[cfg.type](cfg, clock)
