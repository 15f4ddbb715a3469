"""One pure filter for every presence sensor: distances in, present/absent out.

Hysteresis in space (trigger_m < release_m) and in time (dwell before presence counts, grace before
absence counts), so a visitor standing at the edge, a radar flicker or a dropped reading never
starts or stops the show. A reading older than `stale_after_s` counts as "nobody": a dead sensor
ends a sequence gracefully instead of freezing it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class PresenceParams:
    trigger_m: float
    release_m: float
    dwell_s: float
    leave_grace_s: float
    stale_after_s: float


@dataclass(frozen=True)
class PresenceState:
    present: bool = False
    near_since: float | None = None   # when the reading first went below trigger_m
    far_since: float | None = None    # when the reading first went beyond release_m (or vanished)
    stale: bool = False
    distance_m: float | None = None


def update_presence(p: PresenceParams, s: PresenceState, distance_m: float | None,
                    reading_t: float | None, now: float) -> PresenceState:
    """Advance the filter with the newest reading (distance None = nobody; reading_t None = never)."""
    stale = reading_t is None or (now - reading_t) > p.stale_after_s
    d = None if stale else distance_m
    near = d is not None and d < p.trigger_m
    far = d is None or d > p.release_m
    near_since = (s.near_since if s.near_since is not None else now) if near else None
    far_since = (s.far_since if s.far_since is not None else now) if far else None
    present = s.present
    if not present and near_since is not None and now - near_since >= p.dwell_s:
        present = True
    elif present and far_since is not None and now - far_since >= p.leave_grace_s:
        present = False
    return replace(s, present=present, near_since=near_since, far_since=far_since, stale=stale,
                   distance_m=d)
