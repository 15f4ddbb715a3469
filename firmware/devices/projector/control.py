"""Projector power: one small interface (`power(on)`), a backend table, and the control that keeps
the projector where the schedule wants it.

`ProjectorControl.want(on)` returns at once; a thread of its own sends the command, and a projector
that does not answer (unplugged, hung, warming up with ERR3) is a fault retried with backoff, never
an exception in the show. Backends: pjlink (projector/pjlink.py), cec (projector/cec.py), sim
(records what it was told), none (never touches anything).
"""
from __future__ import annotations

import logging
import threading

from firmware.devices.base import Device
from firmware.devices.projector.table import BACKENDS

log = logging.getLogger("humus.projector")


class ProjectorControl(Device):
    """Drives a backend towards the wanted power state; retries failures with doubling waits."""

    def __init__(self, backend, retry_s: tuple[float, float] = (2.0, 60.0)) -> None:
        super().__init__()
        self.backend = backend
        self.name = backend.name
        self.retry_s = retry_s
        self.wanted: bool | None = None
        self.confirmed: bool | None = None
        self.attempts = 0
        self.failures = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.health.detail = "no command yet"
        self._thread = threading.Thread(target=self._run, daemon=True, name="projector")
        self._thread.start()

    def want(self, on: bool) -> None:
        with self._lock:
            if self.wanted == on:
                return
            self.wanted = on
        log.info("%s: power %s", self.name, "on" if on else "off")
        self._wake.set()

    @property
    def settled(self) -> bool:
        return self.wanted is not None and self.wanted == self.confirmed

    def _run(self) -> None:
        wait = self.retry_s[0]
        while not self._stop.is_set():
            with self._lock:
                target = self.wanted
            if target is None or target == self.confirmed:
                self._wake.wait()
                self._wake.clear()
                continue
            self.attempts += 1
            try:
                self.backend.power(target)
            except Exception as exc:   # OSError, a timeout, a CLI missing: all mean "not answering"
                self.failures += 1
                self.fault(f"power {'on' if target else 'off'} failed ({exc}); retry in {wait:g} s")
                self._wake.wait(wait)   # a new wish (want) retries at once
                self._wake.clear()
                wait = min(wait * 2, self.retry_s[1])
                continue
            wait = self.retry_s[0]
            self.confirmed = target
            self.recover(f"power {'on' if target else 'off'}")

    def _close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2.0)


def open_projector(cfg) -> ProjectorControl | None:
    """None for type = "none": nothing is ever sent."""
    if cfg is None or cfg.type == "none":
        return None
    return ProjectorControl(BACKENDS.open(cfg), tuple(cfg.retry_s))
