"""HDMI-CEC power through `cec-ctl` (v4l-utils), the kernel CEC framework's own tool.

On first use the box claims a playback-device logical address (`--playback`), as CEC requires before
it may talk; then `--to N --image-view-on` wakes the projector and `--to N --standby` sends it to
standby. A non-zero exit, a missing binary or a timeout is an OSError: the control retries it.
"""
from __future__ import annotations

import subprocess


class CecProjector:
    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.name = f"projector[cec {cfg.device}]"
        self._claimed = False

    def _run(self, *args: str) -> None:
        argv = [self.cfg.command, "-d", self.cfg.device, *args]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=self.cfg.timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:   # FileNotFoundError: no v4l-utils
            raise OSError(f"{' '.join(argv)}: {exc}") from exc
        if r.returncode != 0:
            why = (r.stderr or r.stdout).strip().splitlines()[-1:] or [f"exit {r.returncode}"]
            raise OSError(f"{' '.join(argv)}: {why[0]}")

    def power(self, on: bool) -> None:
        if not self._claimed:
            self._run("--playback")
            self._claimed = True
        self._run("--to", str(self.cfg.to), "--image-view-on" if on else "--standby")
