"""What every device has in common: health, an idempotent lifecycle, and latest-value publishing."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("humus.devices")


@dataclass
class Health:
    """A device's health as `humus status` shows it. `ok` False means the show is degraded."""
    ok: bool = True
    detail: str = "ok"
    faults: int = 0          # incidents since start
    recoveries: int = 0


class Latest(Generic[T]):
    """A one-slot mailbox: producers overwrite, consumers read the newest value. Never blocks."""

    def __init__(self) -> None:
        self._value: T | None = None
        self._seq = 0
        self._lock = threading.Lock()

    def put(self, value: T) -> None:
        with self._lock:
            self._value = value
            self._seq += 1

    def get(self) -> T | None:
        with self._lock:
            return self._value

    def get_with_seq(self) -> tuple[T | None, int]:
        with self._lock:
            return self._value, self._seq


class Device:
    """Base: `close()` is idempotent, `closed` is a property, devices are context managers.

    Incidents are logged once per episode (`fault`/`recover`), and an episode that repeats within
    LOG_QUIET_S is counted, not logged again, so a flapping device cannot flood the journal.
    """

    name = "device"
    LOG_QUIET_S = 60.0

    def __init__(self) -> None:
        self._closed = False
        self.health = Health()
        self._last_logged: dict[str, float] = {}
        self.suppressed = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._close()

    def _close(self) -> None:  # override
        pass

    def _log_once(self, level: int, key: str, msg: str, *args) -> None:
        import time
        now = time.monotonic()
        last = self._last_logged.get(key)
        if last is not None and now - last < self.LOG_QUIET_S:
            self.suppressed += 1
            return
        self._last_logged[key] = now
        if self.suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        log.log(level, msg, *args)

    def fault(self, detail: str) -> None:
        if self.health.ok:
            self._log_once(logging.WARNING, "fault:" + detail, "%s: %s", self.name, detail)
            self.health.faults += 1
        self.health.ok = False
        self.health.detail = detail

    def recover(self, detail: str = "ok") -> None:
        if not self.health.ok:
            self._log_once(logging.INFO, "recover", "%s: recovered (%s)", self.name, detail)
            self.health.recoveries += 1
        self.health.ok = True
        self.health.detail = detail

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
