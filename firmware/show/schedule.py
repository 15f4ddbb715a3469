"""Opening hours as a pure function: (schedule, instant) -> open or closed, and when that changes.

Windows are written in the venue's wall-clock time ("fri 20:00-02:00": Friday 20:00 to Saturday
02:00 local), so a window keeps its local hours across daylight-saving changes; its length in real
seconds changes instead (a 20:00-02:00 window on the autumn night is 7 h long). Local times are made
aware with zoneinfo and compared in UTC:
- a start that does not exist (spring forward, 02:30) falls where the clock jumps to (03:30);
- a start that exists twice (fall back, 02:30) is the first one (fold=0).
A closed date cancels the windows that *start* that day; a window started the evening before still
runs to its end past midnight. Overlapping or touching windows merge into one open stretch.

Nothing here reads the clock; the box asks with its wall-clock instant. Whether that instant can be
believed is the box's to know (firmware/devices/timesync/); `decide` takes it as a flag and follows the
configured policy while the clock is not synchronised.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"^\s*(?P<days>[a-z,\-]+)\s+(?P<a>\d{1,2}:\d{2})\s*-\s*(?P<b>\d{1,2}:\d{2})\s*$")
HORIZON_DAYS = 400   # search this far for the next change (a year of closed dates, then none)
# What the box does while its clock is not synchronised ([schedule] unsynced): stay open (a box that
# cannot know the time never stays dark), stay closed, or follow the hours on the clock it has.
UNSYNCED_POLICIES = ("open", "closed", "schedule")


@dataclass(frozen=True)
class Window:
    days: frozenset[int]   # weekdays the window starts on, 0 = Monday
    start_min: int         # minutes after local midnight
    end_min: int           # may be <= start_min: the window ends the next day


@dataclass(frozen=True)
class Schedule:
    zone: str
    windows: tuple[Window, ...]
    closed: frozenset[date]
    warmup_s: float = 0.0


@dataclass(frozen=True)
class Verdict:
    open: bool
    next_change: datetime | None   # UTC; None = never changes again (within the horizon)


def load_zone(name: str):
    """ZoneInfo for `name`, or ValueError that says what is missing (the tz database itself?)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        hint = ("; this system has no time zone database: install the tzdata package"
                if not available_timezones() else "")
        raise ValueError(f"unknown time zone '{name}' (e.g. Europe/Berlin){hint}") from None


def _minutes(text: str, allow_24: bool) -> int:
    h, m = (int(x) for x in text.split(":"))
    if m > 59 or h > 24 or (h == 24 and (m or not allow_24)):
        raise ValueError(f"time {text} is not HH:MM")
    return h * 60 + m


def _day(name: str) -> int:
    if name not in DAYS:
        raise ValueError(f"day '{name}' is not one of {', '.join(DAYS)}")
    return DAYS.index(name)


def parse_window(text: str) -> Window:
    """'mon-fri 10:00-18:00', 'sat,sun 11:00-20:00', 'fri-mon 20:00-02:00', 'daily 10:00-24:00'."""
    if not isinstance(text, str) or not (m := _WINDOW.match(text.lower())):
        raise ValueError(f"window '{text}' is not like \"mon-fri 10:00-18:00\"")
    days: set[int] = set()
    for part in m["days"].split(","):
        if part == "daily":
            days.update(range(7))
        elif "-" in part:
            a, _, b = part.partition("-")
            i, j = _day(a), _day(b)
            days.update((i + k) % 7 for k in range((j - i) % 7 + 1))   # fri-mon wraps the week
        else:
            days.add(_day(part))
    start, end = _minutes(m["a"], False), _minutes(m["b"], True)
    if start == end:
        raise ValueError(f"window '{text}' opens and closes at the same time")
    return Window(frozenset(days), start, end)


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"closed date '{text}' is not YYYY-MM-DD") from None


def compile_schedule(cfg) -> Schedule:
    """The config's [schedule] as the pure function's input (validated already by the config)."""
    load_zone(cfg.timezone)
    return Schedule(cfg.timezone, tuple(parse_window(w) for w in cfg.open),
                    frozenset(parse_date(d) for d in cfg.closed_dates), float(cfg.warmup_s))


def _utc(zone, day: date, minutes: int) -> datetime:
    d = day + timedelta(days=minutes // 1440)
    m = minutes % 1440
    local = datetime(d.year, d.month, d.day, m // 60, m % 60, tzinfo=zone)
    # Round trip through UTC normalises a time the spring-forward gap skipped (02:30 -> 03:30).
    return local.astimezone(timezone.utc)


@lru_cache(maxsize=4096)
def _day_intervals(s: Schedule, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """Open intervals (UTC) of the windows that start on local `day`."""
    if day in s.closed:
        return ()
    zone = load_zone(s.zone)
    out = []
    for w in s.windows:
        if day.weekday() in w.days:
            end = w.end_min if w.end_min > w.start_min else w.end_min + 1440
            a, b = _utc(zone, day, w.start_min), _utc(zone, day, end)
            if b > a:   # a window swallowed whole by the spring-forward gap stays closed
                out.append((a, b))
    return tuple(sorted(out))


def _merged(s: Schedule, first: date, days: int) -> list[tuple[datetime, datetime]]:
    spans = sorted(iv for k in range(days) for iv in _day_intervals(s, first + timedelta(days=k)))
    merged: list[list[datetime]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def state_at(s: Schedule, instant: datetime) -> Verdict:
    """Open or closed at `instant` (an aware datetime), and the next instant that changes it."""
    if instant.tzinfo is None:
        raise ValueError("state_at needs an aware datetime (a naive one has no place on the clock)")
    t = instant.astimezone(timezone.utc)
    zone = load_zone(s.zone)
    # A window started the day before may still run; start two local days back to be safe.
    first = instant.astimezone(zone).date() - timedelta(days=2)
    days = 16
    while True:
        spans = _merged(s, first, days)
        # Windows starting after the last day looked at begin at `limit` or later, so the spans
        # are complete before it; an open stretch reaching it may go on, so look further.
        limit = _utc(zone, first + timedelta(days=days), 0)
        for a, b in spans:
            if b <= t:
                continue
            if a > t:
                return Verdict(False, a)
            if b < limit:
                return Verdict(True, b)
            break
        if days >= HORIZON_DAYS:
            return Verdict(any(a <= t < b for a, b in spans), None)
        days *= 2


def projector_on_at(s: Schedule, instant: datetime) -> Verdict:
    """The projector is wanted while open and for warmup_s before each opening."""
    v = state_at(s, instant)
    if v.open or v.next_change is None:
        return v
    warm_from = v.next_change - timedelta(seconds=s.warmup_s)
    if instant >= warm_from:
        return Verdict(True, v.next_change)   # stays on into the opening; the open verdict goes on
    return Verdict(False, warm_from)


def changes_between(s: Schedule, start: datetime, end: datetime) -> list[tuple[datetime, bool]]:
    """Every change in [start, end): (instant, open after it). Walks next_change, never samples."""
    out = []
    t = start
    v = state_at(s, t)
    while v.next_change is not None and v.next_change < end:
        t = v.next_change
        v = state_at(s, t)
        out.append((t, v.open))
    return out


@dataclass(frozen=True)
class Decision:
    show: Verdict
    projector: Verdict
    by_policy: bool   # the unsynchronised clock's policy answered, not the opening hours


def decide(s: Schedule, policy: str, synced: bool, instant: datetime) -> Decision:
    """Open or closed (and the projector) at `instant` on a clock that is `synced` or not.

    A synchronised clock, or the "schedule" policy, gets the opening hours' answer. Otherwise the
    policy answers alone and has no next change: what ends it is the clock becoming synchronised,
    which is not an instant on that clock (the caller asks again when the flag changes)."""
    if instant.tzinfo is None:
        raise ValueError("decide needs an aware datetime (a naive one has no place on the clock)")
    if policy not in UNSYNCED_POLICIES:
        raise ValueError(f"unsynced policy '{policy}' is not one of {', '.join(UNSYNCED_POLICIES)}")
    if synced or policy == "schedule":
        return Decision(state_at(s, instant), projector_on_at(s, instant), False)
    fixed = Verdict(policy == "open", None)
    return Decision(fixed, fixed, True)


@dataclass(frozen=True)
class VenueNow:
    """The venue's verdict for the frame: whether the show is open, and until when."""
    open: bool
    next_change: datetime | None     # UTC; None = no schedule, or none ahead (or the policy decides)
    overridden: bool = False
    by_policy: bool = False           # the unsynchronised clock's policy decided, not the hours
