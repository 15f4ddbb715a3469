"""opt/humus/state.json: failed and healthy releases, the update waiting on a health verdict, a
short history. Written only by the updater (atomically); read defensively, since a damaged file must
never stop an update or a rollback.
"""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from .atomic import write_json_atomic

if TYPE_CHECKING:   # Layout is only a type here
    from .release_layout import Layout


def read_state(layout: Layout) -> dict:
    """state.json, or a fresh one. Written only by us (atomically), but read defensively: a damaged
    file must not stop an update or a rollback, so anything of the wrong shape is dropped."""
    try:
        state = json.loads(layout.state_file.read_text())
    except (OSError, ValueError, RecursionError):
        state = {}
    if not isinstance(state, dict):
        state = {}
    for key, kind in (("failed", dict), ("history", list), ("healthy", dict)):
        if not isinstance(state.get(key), kind):
            state[key] = kind()
    pending = state.get("pending")
    if not (isinstance(pending, dict) and isinstance(pending.get("version"), str)):
        state.pop("pending", None)
    return state


def _record(layout: Layout, action: str, **info) -> None:
    state = read_state(layout)
    state["history"] = (state["history"] + [{"at": round(time.time(), 3), "action": action, **info}])[-50:]
    version = info.get("version")
    if action == "failed":
        state["failed"][version] = {"at": round(time.time(), 3), "reason": info.get("reason", "")}
        state["healthy"].pop(version, None)
    elif action in ("installed", "healthy"):
        state["failed"].pop(version, None)
    if action == "healthy":
        state["healthy"][version] = {"at": round(time.time(), 3), "reason": info.get("reason", "")}
    if action == "pending":
        # Written before the restart: if the updater dies during the health wait (SIGKILL, power
        # cut), the next `humus update` or boot (`humus recover`) finds this and rolls back.
        state["pending"] = {"version": version, "previous": info.get("previous"), "at": round(time.time(), 3)}
    elif action in ("failed", "healthy") and state.get("pending", {}).get("version") == version:
        state.pop("pending")
    write_json_atomic(layout.state_file, state)


def mark_pending(layout: Layout, version: str, previous: str | None) -> None:
    _record(layout, "pending", version=version, previous=previous)


def mark_failed(layout: Layout, version: str, reason: str) -> None:
    _record(layout, "failed", version=version, reason=reason)


def mark_healthy(layout: Layout, version: str, reason: str) -> None:
    _record(layout, "healthy", version=version, reason=reason)
