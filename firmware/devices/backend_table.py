"""Backend tables: config `type` -> constructor, with the real backends imported only when configured.

A real backend pulls in its vendor library (cv2, pyserial, gpiozero, pygame, sockets) on import; a box
configured for `sim` must start without them. So a table names the module and the constructor, and
`lazy` imports them on first use. tests/test_import_cycles.py reads `lazy("module", ...)` as an import
of that module, so a backend importing its table back is still caught as a cycle.
"""
from __future__ import annotations

import importlib
from typing import Callable


def lazy(module: str, constructor: str, with_clock: bool = True) -> Callable:
    """`module.constructor` (a dotted path inside the module, e.g. "OpenCVCamera.v4l2"), imported when
    first called. The table calls it with (cfg, clock); `with_clock=False` passes the backends that
    take only their config section just that."""
    def construct(cfg, clock=None):
        target = importlib.import_module(module)
        for name in constructor.split("."):
            target = getattr(target, name)
        return target(cfg, clock) if with_clock else target(cfg)
    construct.__qualname__ = f"lazy({module}:{constructor})"
    return construct
