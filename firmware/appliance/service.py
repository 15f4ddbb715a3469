"""The few systemctl calls the updater needs. $HUMUS_SYSTEMCTL swaps the binary (tests, rehearsals)."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

SERVICE = "humus.service"
SAFE_SERVICE = "humus-safe.service"


@dataclass
class Systemctl:
    binary: str = ""
    service: str = SERVICE
    timeout: float = 30.0

    def __post_init__(self):
        self.binary = self.binary or os.environ.get("HUMUS_SYSTEMCTL", "systemctl")

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, *args], capture_output=True, text=True, timeout=self.timeout)

    def restart(self) -> None:
        """Restart the show. reset-failed first: a box sitting in safe mode after hitting the
        start limit would otherwise refuse to start the new release."""
        self._run("reset-failed", self.service)
        r = self._run("restart", "--no-block", self.service)
        if r.returncode != 0:
            raise RuntimeError(f"systemctl restart {self.service} failed ({r.returncode}): {r.stderr.strip()}")

    def is_active(self) -> str:
        """'active', 'activating', 'failed', 'inactive', ... ('unknown' if systemctl cannot answer)."""
        try:
            r = self._run("is-active", self.service)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        return r.stdout.strip() or "unknown"
