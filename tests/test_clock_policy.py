"""The opening hours on a clock that may be wrong: `decide(schedule, policy, synced, instant)` and the
`[schedule] unsynced` / `[timesync]` config it is fed from.

The property tests hold `decide` to two plain statements over random schedules, instants and policies:
a synchronised clock (or the "schedule" policy) gets exactly the schedule's answer, and an
unsynchronised one under "open"/"closed" gets that answer with no next change, whatever the hours say.
"""
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from firmware.config.errors import ConfigError
from firmware.config.load import parse_config
from firmware.show.schedule import (UNSYNCED_POLICIES, Verdict, compile_schedule, decide, projector_on_at,
                                    state_at)

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun", "daily", "mon-fri", "fri-mon", "sat,sun"]
BASE = {"timezone": "Europe/Berlin", "open": ["mon-fri 10:00-18:00"]}


def sched(open_, tz="Europe/Berlin", unsynced="open"):
    cfg = parse_config({"schedule": {"timezone": tz, "open": open_, "unsynced": unsynced}}, "<test>").schedule
    return compile_schedule(cfg)


@st.composite
def windows(draw):
    a, b = draw(st.integers(0, 1439)), draw(st.integers(1, 1440))
    if a == b % 1440:
        b = (a + 60) % 1440 or 1440
    return f"{draw(st.sampled_from(DAYS))} {a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}"


schedules = st.builds(sched, st.lists(windows(), min_size=1, max_size=3),
                      st.sampled_from(["Europe/Berlin", "UTC", "America/New_York", "Australia/Lord_Howe"]))
instants = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31), timezones=st.just(timezone.utc))


@settings(max_examples=200, deadline=None)
@given(schedules, instants, st.sampled_from(UNSYNCED_POLICIES), st.booleans())
def test_decide_is_the_schedule_or_the_policy(s, instant, policy, synced):
    d = decide(s, policy, synced, instant)
    if synced or policy == "schedule":
        assert (d.show, d.projector, d.by_policy) == (state_at(s, instant), projector_on_at(s, instant), False)
    else:
        fixed = Verdict(policy == "open", None)
        assert (d.show, d.projector, d.by_policy) == (fixed, fixed, True)


@settings(max_examples=100, deadline=None)
@given(schedules, instants, st.integers(0, 10 * 86400))
def test_the_open_policy_never_leaves_a_box_dark_and_closed_never_lights_it(s, instant, later_s):
    """Unsynchronised, any clock reading at all (the date the box woke up with) gives the policy."""
    t = instant + timedelta(seconds=later_s)
    assert decide(s, "open", False, t).show.open and decide(s, "open", False, t).projector.open
    assert not decide(s, "closed", False, t).show.open and not decide(s, "closed", False, t).projector.open


def test_decide_refuses_naive_instants_and_unknown_policies():
    s = sched(["mon 10:00-11:00"])
    with pytest.raises(ValueError, match="aware"):
        decide(s, "open", False, datetime(2026, 12, 4, 12, 0))
    with pytest.raises(ValueError, match="'dark' is not one of open, closed, schedule"):
        decide(s, "dark", False, datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc))


def test_unsynced_defaults_to_open_and_takes_the_three_policies():
    assert parse_config({"schedule": BASE}).schedule.unsynced == "open"
    for policy in UNSYNCED_POLICIES:
        assert parse_config({"schedule": {**BASE, "unsynced": policy}}).schedule.unsynced == policy


@pytest.mark.parametrize("value", ["dark", "OPEN", "", " open", 1, True, None, ["open"], {"open": 1}])
def test_hostile_unsynced_values_are_refused_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"f.toml: schedule.unsynced: Input should be 'open', 'closed' or "
                                          r"'schedule'"):
        parse_config({"schedule": {**BASE, "unsynced": value}}, "f.toml")


@pytest.mark.parametrize("section, match", [
    ({"type": "ntp"}, r"timesync.type: unknown backend 'ntp' \(valid: 'system', 'trusted', 'sim'\)"),
    ({"type": 5}, r"timesync.type: unknown backend '5'"),
    ({"check_s": 0}, r"timesync.check_s: Input should be greater than 0"),
    ({"check_s": -1.0}, r"timesync.check_s"),
    ({"check_s": float("nan")}, r"timesync.check_s"),
    ({"check_s": float("inf")}, r"timesync.check_s"),
    ({"check_s": "5"}, r"timesync.check_s: Input should be a valid number"),
    ({"check_s": 1e6}, r"timesync.check_s: Input should be less than or equal to 3600"),
    ({"kernel": "yes"}, r"timesync.kernel: Input should be a valid boolean"),
    ({"kernel": 1}, r"timesync.kernel: Input should be a valid boolean"),
    ({"root": 5}, r"timesync.root"),
    ({"chek_s": 5}, r"timesync.chek_s: unknown key \(did you mean 'check_s'\?\)"),
    ({"type": "trusted", "check_s": 5}, r"timesync.check_s: unknown key"),
    ({"type": "sim", "synced": "no"}, r"timesync.synced: Input should be a valid boolean"),
    ({"type": "sim", "synced_after_s": -1}, r"timesync.synced_after_s: Input should be greater than or equal to 0"),
    ({"type": "sim", "synced_after_s": float("nan")}, r"timesync.synced_after_s"),
    ({"type": "sim", "synced": False, "synced_after_s": 3}, r"timesync: .*synced_after_s starts the clock "
                                                            r"unsynchronised: leave synced out"),
])
def test_hostile_timesync_sections_are_refused_naming_the_key(section, match):
    with pytest.raises(ConfigError, match=match):
        parse_config({"timesync": section}, "f.toml")


def test_timesync_defaults_to_asking_the_system():
    c = parse_config({})
    assert (c.timesync.type, c.timesync.check_s, str(c.timesync.root), c.timesync.kernel) == ("system", 5.0, "/", True)
    sim = parse_config({"timesync": {"type": "sim", "synced_after_s": 30}}).timesync
    assert (sim.synced, sim.synced_after_s) == (True, 30.0)
