"""Opening hours: the pure function (schedule, instant) -> open + next change, on fixed instants.

The oracle is deliberately naive and independent: take the instant's local wall time and ask whether
any window covers it (a window past midnight covers the early hours of the next day). It cannot
model the DST gap's shifted start, so the year walk compares away from the two transition nights
and those nights are pinned with exact instants below.
"""
from datetime import date, datetime, timedelta, timezone

import pytest

from firmware.config.errors import ConfigError
from firmware.config.load import parse_config
from firmware.show.schedule import (Schedule, changes_between, compile_schedule, load_zone, parse_window,
                                    projector_on_at, state_at)

BERLIN = load_zone("Europe/Berlin")
UTC = timezone.utc
OPEN = ["mon-fri 10:00-18:00", "sat,sun 11:00-20:00", "fri 20:00-02:00", "sat 23:30-03:30"]


def sched(open_=OPEN, closed=(), warmup=90.0, tz="Europe/Berlin"):
    cfg = parse_config({"schedule": {"timezone": tz, "open": list(open_), "closed_dates": list(closed),
                                     "warmup_s": warmup}}, "<test>").schedule
    return compile_schedule(cfg)


def at(y, mo, d, h, mi, tz=BERLIN):
    return datetime(y, mo, d, h, mi, tzinfo=tz)


def naive_open(s: Schedule, instant: datetime) -> bool:
    local = instant.astimezone(load_zone(s.zone))
    minute = local.hour * 60 + local.minute
    for w in s.windows:
        for back, day in ((0, local.date()), (1, local.date() - timedelta(days=1))):
            if day in s.closed or day.weekday() not in w.days:
                continue
            end = w.end_min if w.end_min > w.start_min else w.end_min + 1440
            m = minute + back * 1440
            if w.start_min <= m < end:
                return True
    return False


def test_window_syntax():
    assert parse_window("mon-fri 10:00-18:00").days == frozenset(range(5))
    assert parse_window("fri-mon 20:00-02:00").days == frozenset({4, 5, 6, 0})
    assert parse_window("daily 00:00-24:00").end_min == 1440
    for bad in ("mon-fri 10-18", "funday 10:00-11:00", "mon 10:00-10:00", "mon 10:60-11:00"):
        with pytest.raises(ValueError):
            parse_window(bad)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"f.toml: schedule.open.*funday"):
        parse_config({"schedule": {"timezone": "Europe/Berlin", "open": ["funday 10:00-11:00"]}}, "f.toml")
    with pytest.raises(ConfigError, match=r"schedule.timezone.*Mars/Olympus"):
        parse_config({"schedule": {"timezone": "Mars/Olympus", "open": ["mon 10:00-11:00"]}}, "f.toml")
    with pytest.raises(ConfigError, match=r"schedule.closed_dates"):
        parse_config({"schedule": {"timezone": "UTC", "open": ["mon 10:00-11:00"],
                                   "closed_dates": ["25.12.2026"]}}, "f.toml")
    with pytest.raises(ConfigError, match=r"schedule.warmup_s"):
        parse_config({"schedule": {"timezone": "UTC", "open": ["mon 10:00-11:00"],
                                   "warmup_s": float("nan")}}, "f.toml")


def test_no_schedule_section_means_none():
    assert parse_config({}, "<test>").schedule is None


def test_weekday_and_past_midnight():
    s = sched()
    # Friday 2026-12-04: 10-18, then 20:00 to Saturday 02:00
    v = state_at(s, at(2026, 12, 4, 17, 59))
    assert v.open and v.next_change == at(2026, 12, 4, 18, 0).astimezone(UTC)
    v = state_at(s, at(2026, 12, 4, 18, 0))
    assert not v.open and v.next_change == at(2026, 12, 4, 20, 0)
    v = state_at(s, at(2026, 12, 5, 1, 59))
    assert v.open and v.next_change == at(2026, 12, 5, 2, 0)
    # Saturday: 11-20, then 23:30 to Sunday 03:30; Sunday 11-20
    assert state_at(s, at(2026, 12, 5, 2, 0)).next_change == at(2026, 12, 5, 11, 0)
    assert state_at(s, at(2026, 12, 6, 3, 0)).open
    assert state_at(s, at(2026, 12, 6, 3, 30)).next_change == at(2026, 12, 6, 11, 0)


def test_overlapping_windows_merge():
    s = sched(["mon 10:00-14:00", "mon 13:00-18:00", "mon 18:00-19:00"])
    v = state_at(s, at(2026, 11, 30, 10, 0))
    assert v.open and v.next_change == at(2026, 11, 30, 19, 0)


def test_closed_date_cancels_windows_starting_that_day():
    s = sched(closed=["2026-12-25"])          # a Friday
    assert not state_at(s, at(2026, 12, 25, 12, 0)).open
    assert not state_at(s, at(2026, 12, 25, 21, 0)).open
    v = state_at(s, at(2026, 12, 24, 18, 30))
    assert v.next_change == at(2026, 12, 26, 11, 0)   # skips the whole closed Friday
    # Thursday's windows are unaffected; a window from the evening before runs on past midnight
    s2 = sched(closed=["2026-12-05"])
    assert state_at(s2, at(2026, 12, 5, 1, 0)).open
    assert not state_at(s2, at(2026, 12, 5, 12, 0)).open


def test_spring_forward_night():
    # 2027-03-28 02:00 CET -> 03:00 CEST. Saturday 23:30 to Sunday 03:30 is 3 h long that night.
    s = sched()
    v = state_at(s, at(2027, 3, 27, 23, 30))
    assert v.open
    assert v.next_change == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)      # 03:30 CEST
    assert v.next_change - at(2027, 3, 27, 23, 30).astimezone(UTC) == timedelta(hours=3)
    # a window starting in the gap opens where the clock jumps to
    g = sched(["sun 02:30-05:00"])
    v = state_at(g, at(2027, 3, 28, 0, 0))
    assert not v.open and v.next_change == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)  # 03:30 CEST


def test_fall_back_night():
    # 2026-10-25 03:00 CEST -> 02:00 CET. Saturday 23:30 to Sunday 03:30 is 5 h long that night.
    s = sched()
    start = at(2026, 10, 24, 23, 30).astimezone(UTC)
    v = state_at(s, start)
    assert v.open and v.next_change == datetime(2026, 10, 25, 2, 30, tzinfo=UTC)  # 03:30 CET
    assert v.next_change - start == timedelta(hours=5)
    # still open during the repeated hour, both times round
    assert state_at(s, datetime(2026, 10, 25, 0, 15, tzinfo=UTC)).open    # 02:15 CEST
    assert state_at(s, datetime(2026, 10, 25, 1, 15, tzinfo=UTC)).open    # 02:15 CET
    # the opening the next morning is at 11:00 CET (10:00 UTC), not the summer 09:00 UTC
    assert state_at(s, v.next_change).next_change == datetime(2026, 10, 25, 10, 0, tzinfo=UTC)


def test_year_walk_matches_naive_oracle_and_misses_nothing():
    s = sched(closed=["2026-12-25", "2027-01-01"])
    start, end = at(2026, 6, 1, 0, 0).astimezone(UTC), at(2027, 6, 1, 0, 0).astimezone(UTC)
    changes = changes_between(s, start, end)
    # alternating, strictly increasing, and each change really is a change
    assert all(a[0] < b[0] and a[1] != b[1] for a, b in zip(changes, changes[1:]))
    dst_nights = {date(2026, 10, 25), date(2027, 3, 28)}
    # every 15 minutes of the year (all window edges are on quarter hours)
    t, i, opened = start, 0, state_at(s, start).open
    while t < end:
        while i < len(changes) and changes[i][0] <= t:
            opened = changes[i][1]
            i += 1
        local = t.astimezone(BERLIN)
        if local.date() not in dst_nights:
            assert opened == naive_open(s, t), t
        assert opened == state_at(s, t).open, t
        t += timedelta(minutes=15)
    # a week opens 9 times: mon-fri days, the friday night, saturday day and night, sunday; the two
    # closed Fridays take 2 each
    openings = [c for c in changes if c[1]]
    assert 52 * 9 - 4 <= len(openings) <= 53 * 9 - 4


def test_projector_warms_up_before_opening():
    s = sched(warmup=90)
    opening = at(2026, 12, 7, 10, 0).astimezone(UTC)   # Monday
    v = projector_on_at(s, opening - timedelta(seconds=91))
    assert not v.open
    assert v.next_change == opening - timedelta(seconds=90)
    v = projector_on_at(s, opening - timedelta(seconds=90))
    assert v.open and v.next_change == opening
    assert projector_on_at(s, opening).open


def test_naive_instant_refused():
    with pytest.raises(ValueError, match="aware"):
        state_at(sched(), datetime(2026, 12, 4, 12, 0))


def test_venue_sections_are_strict():
    base = {"timezone": "UTC", "open": ["mon 10:00-11:00"]}
    for bad, key in [({**base, "warmup_s": "90"}, "schedule.warmup_s"), ({**base, "warmup_s": True}, "schedule.warmup_s"),
                     ({**base, "closed_look": {"intensity": 0.1, "color": ["1", 0, 0]}}, "schedule.closed_look.color"),
                     ({**base, "closed_look": {"intensity": 0.1, "color": [2, 0, 0]}}, "schedule.closed_look.color"),
                     ({**base, "opne": 1}, r"schedule.opne: unknown key \(did you mean .open.\?\)")]:
        with pytest.raises(ConfigError, match=key):
            parse_config({"schedule": bad}, "f.toml")
    with pytest.raises(ConfigError, match=r"f.toml: projector.port"):
        parse_config({"projector": {"type": "pjlink", "host": "h", "port": "4352"}}, "f.toml")
    with pytest.raises(ConfigError, match=r"projector.type: unknown backend 'tcp'"):
        parse_config({"projector": {"type": "tcp"}}, "f.toml")
    with pytest.raises(ConfigError, match=r"osc.listen"):
        parse_config({"osc": {"listen": "9000"}}, "f.toml")
    with pytest.raises(ConfigError, match=r"osc.noise_hz"):
        parse_config({"osc": {"noise_hz": 5.0}}, "f.toml")
    with pytest.raises(ConfigError, match=r"devices.rescan_s"):
        parse_config({"devices": {"rescan_s": float("inf")}}, "f.toml")
    ok = parse_config({"projector": {"type": "cec", "retry_s": [1, 30]}, "devices": {"sysfs": "/tmp/sys"}}, "f.toml")
    assert ok.projector.retry_s == (1.0, 30.0)
