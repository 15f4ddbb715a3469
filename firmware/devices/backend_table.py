"""Backend tables: config `type` -> constructor, with the real backends imported only when configured.

A real backend pulls in its vendor library (cv2, pyserial, gpiozero, pygame, sockets) on import; a box
configured for `sim` must start without them. So a table names the module and the constructor, and
`lazy` imports them on first use. tests/test_import_cycles.py reads `lazy("module", ...)` as an import
of that module, so a backend importing its table back is still caught as a cycle.
"""
from __future__ import annotations

import importlib
from typing import Callable, Generic, Mapping, TypeVar

T = TypeVar("T")


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


class BackendTable(Generic[T]):
    """One device kind's table. `open(cfg, ...)` builds the backend `cfg.type` names; every kind opens
    its backends this one way, so a type with no entry fails the same way everywhere."""

    def __init__(self, kind: str, backends: Mapping[str, Callable[..., T]]) -> None:
        self.kind = kind
        self.backends = dict(backends)

    def open(self, cfg, *args) -> T:
        """`args` follow the section: the clock for the kinds whose backends keep time."""
        try:
            construct = self.backends[cfg.type]
        except KeyError:
            # e.g. an "auto" section that hotplug has not resolved yet: name what would have worked
            raise ValueError(f"[{self.kind}] type = {cfg.type!r} has no backend to open "
                             f"(the table has {', '.join(sorted(self.backends))})") from None
        return construct(cfg, *args)
