
import pytest

from firmware.config.schema import ShowConfig
from firmware.show.machine import SIGMA_START, STATES, ShowState, State, Timings, noise_level, step_show
from firmware.show.presence import PresenceParams, PresenceState, update_presence

T = Timings.from_config(ShowConfig())
P = PresenceParams(trigger_m=2.0, release_m=3.0, dwell_s=0.5, leave_grace_s=1.5, stale_after_s=2.0)


def run(presence_at, until, dt=0.05, state=None):
    """Drive the pure machine with a presence function; return [(t, state, visitor, cue)] changes."""
    s = state or ShowState()
    changes, last, t = [], None, 0.0
    cues = []
    while t <= until:
        s, cue = step_show(T, s, presence_at(t), t)
        cues.append((t, cue))
        if cue.state != last:
            changes.append((round(t, 2), cue.state, cue.visitor))
            last = cue.state
        t += dt
    return changes, cues


def test_full_cycle_in_order_with_durations():
    changes, cues = run(lambda t: 1.0 <= t <= 40, 45)
    names = [c[1] for c in changes][:7]  # a visitor who stays gets a second cycle after the cooldown
    assert names == ["idle", "approach", "immersion", "emergence", "hold", "release", "idle"]
    times = dict((n, t) for t, n, _ in changes[1:7])
    assert times["immersion"] - times["approach"] == pytest.approx(T.approach_s, abs=0.06)
    assert times["emergence"] - times["immersion"] == pytest.approx(T.immersion_s, abs=0.06)
    assert times["hold"] - times["emergence"] == pytest.approx(T.emergence_s, abs=0.06)


def test_sigma_rises_monotonically_through_immersion_and_falls_in_emergence():
    _, cues = run(lambda t: t >= 1.0, 20)
    imm = [c.sigma for _, c in cues if c.state == "immersion"]
    emg = [c.sigma for _, c in cues if c.state == "emergence"]
    assert imm[0] == pytest.approx(SIGMA_START, rel=0.2) and 0.9 * T.sigma_peak < imm[-1] <= T.sigma_peak
    assert all(b >= a for a, b in zip(imm, imm[1:]))
    assert all(b <= a for a, b in zip(emg, emg[1:]))
    assert noise_level(T.sigma_peak) > 0.99


def test_leaving_during_immersion_releases_at_once():
    changes, _ = run(lambda t: 1.0 <= t <= 5.0, 15)
    names = [c[1] for c in changes]
    assert names == ["idle", "approach", "immersion", "release", "idle"]
    assert changes[3][0] == pytest.approx(5.05, abs=0.06)


def test_leaving_during_emergence_completes_growth_then_releases():
    start_emergence = 1.0 + T.approach_s + T.immersion_s
    changes, _ = run(lambda t: 1.0 <= t <= start_emergence + 1.0, 30)
    names = [c[1] for c in changes]
    assert names == ["idle", "approach", "immersion", "emergence", "release", "idle"]
    t_release = [t for t, n, _ in changes if n == "release"][0]
    assert t_release == pytest.approx(start_emergence + T.emergence_s, abs=0.06)


def test_cooldown_blocks_retrigger_and_second_visitor_joins():
    # Visitor leaves in the hold; another arrives during the cooldown: no new cycle until it ends.
    end_hold = 1.0 + T.approach_s + T.immersion_s + T.emergence_s + 2.0
    present = lambda t: (1.0 <= t <= end_hold) or (t >= end_hold + T.release_s + 0.5)
    changes, _ = run(present, end_hold + T.release_s + T.cooldown_s + 1.0)
    idle_at = [t for t, n, _ in changes if n == "idle"][-1]
    approaches = [(t, v) for t, n, v in changes if n == "approach"]
    assert len(approaches) == 2 and approaches[1][1] == 2
    assert approaches[1][0] == pytest.approx(idle_at + T.cooldown_s, abs=0.06)


def test_big_time_jump_crosses_several_states():
    s = ShowState()
    s, _ = step_show(T, s, True, 0.0)
    s, cue = step_show(T, s, True, T.approach_s + T.immersion_s + 1.0)
    assert cue.state == "emergence"


def test_presence_filter_dwell_grace_hysteresis_and_stale():
    s = PresenceState()
    s = update_presence(P, s, 1.5, 0.0, 0.0)
    assert not s.present                      # dwell not yet
    s = update_presence(P, s, 1.5, 0.6, 0.6)
    assert s.present
    s = update_presence(P, s, 2.5, 1.0, 1.0)  # between trigger and release: stays present
    assert s.present
    s = update_presence(P, s, 3.5, 1.1, 1.1)
    s = update_presence(P, s, 3.5, 2.0, 2.0)
    assert s.present                          # grace not over
    s = update_presence(P, s, 1.0, 2.1, 2.1)  # back before the grace ran out: a flicker, ignored
    s = update_presence(P, s, 3.5, 2.2, 2.2)  # far again: the grace starts over
    s = update_presence(P, s, 3.5, 3.6, 3.6)
    assert s.present
    s = update_presence(P, s, None, 3.75, 3.75)  # nobody seen at all counts as far
    assert not s.present
    # stale: a reading from long ago counts as nobody
    s2 = update_presence(P, PresenceState(present=True, far_since=None), 1.0, 0.0, 10.0)
    assert s2.stale and s2.distance_m is None


def test_states_are_enum_members_that_read_as_the_words_they_always_were():
    """The trace, the status file and OSC carry the same text as before the states were an Enum."""
    import json

    from pythonosc.osc_message_builder import OscMessageBuilder

    t = Timings.from_config(ShowConfig())
    s, cue = step_show(t, ShowState(), True, 0.0)
    assert s.state is State.APPROACH and cue.state is State.APPROACH
    assert [str(x) for x in STATES] == ["idle", "approach", "immersion", "emergence", "hold", "release"]
    assert json.dumps([0.0, State.HOLD, 3]) == '[0.0, "hold", 3]'
    assert f"{State.CLOSED} {State.IDLE!s}" == "closed idle"
    as_enum, as_text = OscMessageBuilder("/humus/state"), OscMessageBuilder("/humus/state")
    as_enum.add_arg(State.EMERGENCE)
    as_text.add_arg("emergence")
    assert as_enum.build().dgram == as_text.build().dgram
