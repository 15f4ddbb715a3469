"""Is the release we just started healthy? Decided from the status file (and systemd when present).

`judge` is the pure decision; `StatusHealth` polls it until a deadline. The updater
takes any callable `(expected_version, since) -> HealthResult`, so tests (or a
stricter site-specific check) can plug in their own.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .statusfile import read_status

# Any show state (idle, approach, immersion, ...) means the main loop runs: healthy. A missing
# device shows in `devices`, not here -- an unplugged DMX cable is not the release's fault.
FATAL_STATES = ("fault", "safe")
WAIT_STATES = ("starting", "stopping")


def fault_text(fault) -> str:
    """Faults are {"t", "text"} dicts from StatusWriter.fault(), or plain strings."""
    return str(fault.get("text")) if isinstance(fault, dict) else str(fault)


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    reason: str


HealthCheck = Callable[[str, float], HealthResult]


def judge(status: dict | None, expected: str, since: float, now: float, stale_after: float = 5.0,
          active: str | None = None) -> tuple[str, str]:
    """("ok" | "wait" | "bad", why) for one look at the box."""
    if active == "failed":
        return "bad", "systemd reports the service failed"
    if active not in (None, "active"):
        return "wait", f"service is {active}"
    if status is None:
        return "wait", "no status file yet"
    updated = status.get("updated_at") or 0
    if updated < since:
        return "wait", "status file is from before the restart"
    if now - updated > stale_after:
        return "wait", f"status file is stale ({now - updated:.0f} s old)"
    if status.get("release") != expected:
        return "wait", f"status reports release {status.get('release')!r}, expected {expected!r}"
    state = status.get("state")
    if state in FATAL_STATES:
        faults = status.get("faults") or []
        last = f": {fault_text(faults[-1])}" if faults else ""
        return "bad", f"release {expected} reports state {state!r}{last}"
    if not state or state in WAIT_STATES:
        return "wait", f"state is {state!r}"
    return "ok", f"release {expected} {state}, {status.get('fps', 0)} fps on {status.get('engine')}"


class StatusHealth:
    """Poll until healthy for `settle` seconds in a row, or give up after `timeout`."""

    def __init__(self, status_path: str | Path, timeout: float = 120.0, settle: float = 10.0,
                 stale_after: float = 5.0, poll: float = 0.5, is_active: Callable[[], str] | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.status_path = Path(status_path)
        self.timeout, self.settle, self.stale_after, self.poll = timeout, settle, stale_after, poll
        self.is_active, self.clock, self.sleep = is_active, clock, sleep

    def look(self, expected: str, since: float) -> tuple[str, str]:
        try:
            status = read_status(self.status_path)
        except ValueError as exc:
            # Written atomically by StatusWriter, so a malformed file is the new release's doing
            # (a wrong type, NaN, ...): that release is not healthy.
            return "bad", f"malformed status: {exc}"
        active = self.is_active() if self.is_active else None
        return judge(status, expected, since, self.clock(), self.stale_after, active)

    def __call__(self, expected: str, since: float) -> HealthResult:
        deadline = self.clock() + self.timeout
        healthy_since = None
        reason = "not checked"
        while True:
            verdict, reason = self.look(expected, since)
            now = self.clock()
            if verdict == "bad":
                return HealthResult(False, reason)
            if verdict == "ok":
                healthy_since = now if healthy_since is None else healthy_since
                if now - healthy_since >= self.settle:
                    return HealthResult(True, reason)
            else:
                healthy_since = None
            if now >= deadline:
                return HealthResult(False, f"not healthy within {self.timeout:.0f} s: {reason}")
            self.sleep(self.poll)
