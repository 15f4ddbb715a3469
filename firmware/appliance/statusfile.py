"""The status snapshot a running box publishes, for `humus status` and update health checks.

The runtime keeps one `StatusWriter`, calls `update(...)` as things change and
`flush()` from its main loop; a write happens at most every `min_interval`
seconds, atomically, so readers never see half a snapshot. Keys:

  state       "starting" | "running" | "degraded" | "safe" | "fault" | "stopping"
  started_at  wall-clock seconds when the process started
  updated_at  wall-clock seconds of this snapshot (the heartbeat health checks read)
  uptime_s    seconds since start
  fps, engine ("tensorrt" | "onnxruntime-cuda" | "onnxruntime-cpu" | ...),
  devices     {name: {"ok": bool, "detail": str}}
  model       {"name": str, "sha256": str}
  release     version string of the running release
  faults      most recent last: [{"t": seconds, "text": str}], at most MAX_FAULTS
  pid

A full or read-only disk must not take the show down: write errors are logged
once and the writer carries on (the next successful write logs the recovery).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from .atomic import write_json_atomic

log = logging.getLogger(__name__)

DEFAULT_PATH = "/run/humus/status.json"
MAX_FAULTS = 20
STATES = ("starting", "running", "degraded", "safe", "fault", "stopping")


class StatusWriter:
    def __init__(self, path: str | os.PathLike = DEFAULT_PATH, clock: Callable[[], float] = time.time,
                 min_interval: float = 1.0):
        self.path = Path(path)
        self.clock = clock
        self.min_interval = min_interval
        now = clock()
        self._data: dict[str, Any] = {
            "state": "starting", "started_at": now, "updated_at": now, "uptime_s": 0.0,
            "fps": 0.0, "engine": None, "devices": {}, "model": None, "release": None,
            "faults": [], "pid": os.getpid(),
        }
        self._last_write: float | None = None
        self._failing = False

    @property
    def snapshot(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._data))

    def update(self, **fields: Any) -> None:
        """Merge fields into the snapshot (written on the next flush)."""
        state = fields.get("state")
        if state is not None and state not in STATES:
            raise ValueError(f"status state {state!r} is not one of {STATES}")
        unknown = set(fields) - set(self._data)
        if unknown:
            raise KeyError(f"unknown status field(s) {sorted(unknown)}; known: {sorted(self._data)}")
        self._data.update(fields)

    def device(self, name: str, ok: bool, detail: str = "") -> None:
        self._data["devices"][name] = {"ok": bool(ok), "detail": detail}

    def fault(self, text: str) -> None:
        """Record a fault for `humus status` (kept to the last MAX_FAULTS)."""
        faults = self._data["faults"]
        faults.append({"t": self.clock(), "text": text})
        del faults[:-MAX_FAULTS]

    def flush(self, force: bool = False) -> bool:
        """Write the snapshot if `min_interval` has passed (or `force`). Never raises OSError."""
        now = self.clock()
        if not force and self._last_write is not None and now - self._last_write < self.min_interval:
            return False
        self._data["updated_at"] = now
        self._data["uptime_s"] = round(now - self._data["started_at"], 3)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, self._data)
        except OSError as exc:
            if not self._failing:
                log.warning("cannot write status file %s: %s (will keep trying, silently)", self.path, exc)
                self._failing = True
            return False
        if self._failing:
            log.info("status file %s writable again", self.path)
            self._failing = False
        self._last_write = now
        return True


def read_status(path: str | os.PathLike = DEFAULT_PATH) -> dict[str, Any] | None:
    """The last snapshot, or None if there is none (service never ran since boot)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # Cannot happen with atomic writes; report it rather than crash `humus status`.
        raise ValueError(f"status file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"status file {path} holds {type(data).__name__}, expected an object")
    return data
