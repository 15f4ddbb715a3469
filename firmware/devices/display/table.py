"""The display backend table. `present(frame)` shows one RGB frame; it must never block for long.

`headless` (display/sim.py) keeps the last frame; `pygame` is the fullscreen kiosk (X11 or KMSDRM),
in display/pygame_window.py.
"""
from __future__ import annotations

from firmware.devices.backend_table import BackendTable, lazy
from firmware.devices.display.interface import Display
from firmware.devices.display.sim import HeadlessDisplay

BACKENDS: BackendTable[Display] = BackendTable("display", {
    "headless": HeadlessDisplay,
    "sim": HeadlessDisplay,
    "pygame": lazy("firmware.devices.display.pygame_window", "PygameDisplay"),
})
open_display = BACKENDS.open   # (cfg, clock) -> Display
