"""The status snapshot a running box publishes, for `humus status` and update health checks.

The runtime keeps one `StatusWriter` and calls `update(...)` from its main loop;
update() flushes, but a write happens at most every `min_interval` seconds,
atomically, so readers never see half a snapshot. Keys:

  state       the show's state ("idle", "approach", ... from firmware.show), or one of the
              lifecycle states "starting" | "safe" | "fault" | "stopping"
  started_at  wall-clock seconds when the process started
  updated_at  wall-clock seconds of this snapshot (the heartbeat health checks read)
  uptime_s    seconds since start
  fps, engine ("tensorrt" | "onnxruntime-cuda" | "onnxruntime-cpu" | ...),
  devices     {name: {"ok": bool, "detail": str}}
  model       {"name": str, "sha256": str}
  release     version of the running release (filled in automatically from release.json)
  faults      most recent last: [{"t": seconds, "text": str}] (or plain strings), at most MAX_FAULTS
  pid
  osc         with [osc] (firmware/osc.py): {"listen", "send", "received", "bad", "dropped",
              "refused": datagrams from senders not allowed, "last_refused": "host:port" of the
              latest, "sent", "send_errors"}; a file from before `refused` reads the same
  schedule    with [schedule] (firmware/venue.py): {"open", "overridden", "next_change": ISO text or
              null, "by_policy": the unsynchronised clock's policy decided}; a file from before
              `by_policy` reads the same
  clock       whether the wall clock is synchronised (firmware/devices/timesync/): {"synced", "detail",
              "source", "unsynced_s": seconds not synchronised (null when it is), "policy": [schedule]
              unsynced, null without a schedule}; a file from before it has none

A status file must never stop the show: nothing here raises. Write errors (full or
read-only disk) are logged once and the writer carries on (the next successful
write logs the recovery); unexpected fields are written as they are.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from . import fsops as fs
from .atomic import write_atomic

log = logging.getLogger(__name__)

DEFAULT_PATH = "/run/humus/status.json"
MAX_FAULTS = 20
LIFECYCLE_STATES = ("starting", "safe", "fault", "stopping")


class StatusWriter:
    def __init__(self, path: str | os.PathLike = DEFAULT_PATH, clock: Callable[[], float] | None = None,
                 min_interval: float = 1.0, autoflush: bool = True):
        from .release_layout import running_release

        self.path = Path(path)
        self.clock = clock or time.time
        self.min_interval = min_interval
        self.autoflush = autoflush
        clock = self.clock
        now = clock()
        self._data: dict[str, Any] = {
            "state": "starting", "started_at": now, "updated_at": now, "uptime_s": 0.0,
            "show": None, "fps": 0.0, "engine": None, "devices": {}, "model": None,
            # resolved now, at start: `current` may be swapped under a running process
            "release": running_release(),
            "faults": [], "pid": os.getpid(),
        }
        self._last_write: float | None = None
        self._failing = False

    @property
    def snapshot(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._data, default=str))

    def update(self, **fields: Any) -> None:
        """Merge fields into the snapshot; with autoflush, write it if min_interval has passed."""
        self._data.update(fields)
        if self.autoflush:
            self.flush()

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
            fs.makedirs(self.path.parent)
            # default=str: a Path or enum in a device detail must not cost the whole snapshot
            write_atomic(self.path, json.dumps(self._data, indent=1, sort_keys=True, default=str) + "\n")
        except (OSError, TypeError, ValueError) as exc:   # TypeError/ValueError: not JSON-able
            if not self._failing:
                log.warning("cannot write status file %s: %s (will keep trying, silently)", self.path, exc)
                self._failing = True
            return False
        if self._failing:
            log.info("status file %s writable again", self.path)
            self._failing = False
        self._last_write = now
        return True


class StatusError(ValueError):
    """A status file that is not what StatusWriter writes; the message names the file and key."""


MAX_STATUS_BYTES = 1 << 20


@functools.lru_cache(maxsize=1)
def _status_model():
    """The documented keys, checked strictly (no coercion, finite numbers, bounded strings).
    Unknown keys are allowed: a newer release may add one, and the (older) updater judging its
    health must not roll it back for that."""
    from typing import Optional, Union

    from pydantic import BaseModel, ConfigDict, Field

    class _Strict(BaseModel):
        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")

    class Device(_Strict):
        ok: bool
        detail: str = Field("", max_length=4096)

    class Fault(_Strict):
        t: float
        text: str = Field(max_length=4096)

    class Osc(_Strict):
        # every key optional: a box from before one was added wrote a file without it; unknown keys
        # allowed, as at the top level, for a newer release's
        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")
        listen: Optional[str] = Field(None, max_length=4096)
        send: list[str] = Field(default_factory=list, max_length=1000)
        received: int = Field(0, ge=0)
        bad: int = Field(0, ge=0)
        dropped: int = Field(0, ge=0)
        refused: int = Field(0, ge=0)
        last_refused: Optional[str] = Field(None, max_length=256)
        sent: int = Field(0, ge=0)
        send_errors: int = Field(0, ge=0)

    class Schedule(_Strict):
        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")
        open: bool = True
        overridden: bool = False
        by_policy: bool = False
        next_change: Optional[str] = Field(None, max_length=64)

    class Clock(_Strict):
        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")
        synced: bool = True
        detail: str = Field("", max_length=4096)
        source: str = Field("", max_length=64)
        unsynced_s: Optional[float] = Field(None, ge=0)
        policy: Optional[str] = Field(None, max_length=16)

    class Status(_Strict):
        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")
        state: str = Field(max_length=64)
        updated_at: float
        started_at: Optional[float] = None
        uptime_s: Optional[float] = None
        show: Optional[str] = Field(None, max_length=64)
        fps: Optional[float] = None
        engine: Optional[str] = Field(None, max_length=256)
        devices: dict[str, Device] = Field(default_factory=dict, max_length=64)
        model: Optional[dict[str, Optional[str]]] = Field(None, max_length=16)
        release: Optional[str] = Field(None, max_length=64)
        faults: list[Union[Fault, str]] = Field(default_factory=list, max_length=1000)
        pid: Optional[int] = None
        osc: Optional[Osc] = None
        schedule: Optional[Schedule] = None
        clock: Optional[Clock] = None
    return Status


def read_status(path: str | os.PathLike = DEFAULT_PATH) -> dict[str, Any] | None:
    """The last snapshot, or None if there is none (service never ran since boot).
    Raises StatusError (a ValueError) naming the file and key if the file is malformed."""
    from pydantic import ValidationError
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_STATUS_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StatusError(f"status file {path}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_STATUS_BYTES:
        raise StatusError(f"status file {path} is over {MAX_STATUS_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:   # not UTF-8, not JSON, nested too deep
        # Cannot happen with atomic writes; report it rather than crash `humus status`.
        raise StatusError(f"status file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise StatusError(f"status file {path} holds {type(data).__name__}, expected an object")
    try:
        _status_model().model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"]) or "(top level)"
        raise StatusError(f"status file {path}: {where}: {e['msg']}"
                          + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")) from None
    return data
