"""The box only conducts: the outside (runner, bench, soak, crash scenarios, tests) reaches it through
its public seams, and the show's rules for a frame (triggers, OSC visitors, closed hours) are a pure
function that can be tested without a box."""
from __future__ import annotations

import ast
from pathlib import Path

from firmware.show.control import ShowInputs
from firmware.show.machine import ShowState, State, Timings
from firmware.show.presence import PresenceParams
from firmware.show.schedule import VenueNow
from firmware.show.visit import FrameInputs, Visit, VisitRules, step_visit

ROOT = Path(__file__).resolve().parents[1]
BOX_NAMES = {"box", "b"}   # what the outside calls a Box, also as an attribute (rig.box, self.box)


def _private_box_uses(path: Path, root: Path = ROOT) -> list[str]:
    """`box._x`, `rig.box._x`, `b._x`: a private name of the box reached from outside."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            continue
        owner = node.value
        name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else None
        if name in BOX_NAMES:
            found.append(f"{path.relative_to(root)}:{node.lineno} {name}.{node.attr}")
    return found


def test_nothing_outside_the_box_touches_its_private_names():
    outside = [p for d in ("firmware", "export", "tests") for p in (ROOT / d).rglob("*.py")
               if "firmware/box/" not in p.as_posix()]
    assert len(outside) > 100   # the scan really ran over the tree
    uses = [u for p in outside for u in _private_box_uses(p)]
    assert uses == []


def test_the_seam_check_sees_a_private_use(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f(rig, box):\n    rig.box._stack.close()\n    return box._dark\n")
    uses = sorted(_private_box_uses(probe, tmp_path), key=lambda u: int(u.split(":")[1].split()[0]))
    assert [u.split(" ")[1] for u in uses] == ["box._stack", "box._dark"]


# ---------------------------------------------------------------- the show's frame rules, pure
RULES = VisitRules(Timings(1.0, 2.0, 2.0, 1.0, 1.0, cooldown_s=5.0, sigma_peak=80.0),
                   PresenceParams(trigger_m=1.5, release_m=2.0, dwell_s=0.0, leave_grace_s=0.0,
                                  stale_after_s=2.0))
OPEN, CLOSED = VenueNow(True, None), VenueNow(False, None)


class _Reading:
    def __init__(self, d, t):
        self.distance_m, self.t = d, t


def frame(visit, now, *, venue=OPEN, d=None, osc=ShowInputs()):
    return step_visit(RULES, visit, FrameInputs(now, venue, osc, _Reading(d, now)), started_at=0.0)


def test_a_near_reading_starts_a_visit_and_far_ends_it():
    v, cue = frame(Visit(), 0.0, d=1.0)
    assert cue.state == State.APPROACH and v.present and v.show.visitor == 1
    v, cue = frame(v, 0.5, d=3.0)
    assert cue.state == State.RELEASE and not v.present


def test_a_trigger_starts_a_sequence_in_the_cooldown_and_holds_it_through_the_hold():
    cooling = Visit(show=ShowState(State.IDLE, 0.0, 3, cooldown_until=100.0))
    v, cue = frame(cooling, 1.0, d=1.0)
    assert cue.state == State.IDLE                       # a visitor waits for the cooldown ...
    v, cue = frame(v, 1.1, osc=ShowInputs(triggers=1))
    assert cue.state == State.APPROACH and v.forced_visitor == 4   # ... a trigger does not
    for t, want in ((2.2, State.IMMERSION), (4.2, State.EMERGENCE), (6.2, State.HOLD), (7.2, State.RELEASE)):
        v, cue = frame(v, t, osc=ShowInputs(triggers=1))   # nobody there: played in full all the same
        assert cue.state == want
    v, cue = frame(v, 7.3, osc=ShowInputs(triggers=1))
    assert cue.state == State.RELEASE                    # the same trigger does not start another


def test_closed_hours_rest_the_show_and_spend_the_triggers_received():
    v, cue = frame(Visit(), 0.0, d=1.0)
    v, cue = frame(v, 0.5, venue=CLOSED, d=1.0, osc=ShowInputs(triggers=2, visitor=True))
    assert v.shown == State.CLOSED and cue.state == State.IDLE and not v.present
    assert v.show == ShowState(State.IDLE, 0.5, 1)       # no cooldown at opening
    assert v.triggers_seen == 2                          # spent while closed, not kept for opening
    v, cue = frame(v, 0.6, osc=ShowInputs(triggers=2))
    assert cue.state == State.IDLE


def test_an_osc_visitor_counts_as_someone_there():
    v, cue = frame(Visit(), 0.0, osc=ShowInputs(visitor=True))
    assert cue.state == State.APPROACH and v.present and not v.presence.present


# ---------------------------------------------------------------- wiring: one ExitStack
def test_a_part_that_fails_to_open_closes_those_opened_before_it(tiny_model, monkeypatch):
    import pytest

    import firmware.box.conductor as conductor
    from firmware.clock import FakeClock
    from tests.scenario import small_config

    closed = []
    for cls in (conductor.BoxDevices, conductor.ModelSession):
        real = cls.close
        monkeypatch.setattr(cls, "close", lambda self, real=real, name=cls.__name__: (closed.append(name),
                                                                                      real(self)))

    def broken_lights(*_a, **_k):
        raise RuntimeError("the lights' room cannot open")
    monkeypatch.setattr(conductor, "LightsRoom", broken_lights)
    with pytest.raises(RuntimeError, match="lights' room"):
        conductor.Box(small_config(tiny_model), FakeClock(), threaded=False)
    assert closed == ["ModelSession", "BoxDevices"]      # in reverse order of opening


def test_close_sends_the_safe_look_before_the_dmx_sender_stops(tiny_model):
    from firmware.box.conductor import Box
    from firmware.clock import FakeClock
    from firmware.show.lights import safe_universe
    from tests.scenario import small_config

    box = Box(small_config(tiny_model), FakeClock(), threaded=False)
    box.step()
    dmx = box.devices.dmx
    box.close()
    want = safe_universe(box.config.lights, box.config.dmx.safe_look, dmx.channels)
    assert dmx.recorded[-1].data == want


def test_the_status_is_one_value_copied_at_the_frame(tiny_model):
    from firmware.box.conductor import Box
    from firmware.clock import FakeClock
    from tests.scenario import small_config

    box = Box(small_config(tiny_model), FakeClock(), threaded=False)
    try:
        box.step()
        before = box.status()
        assert before.state == "running" and before.show == State.IDLE and before.model["network"]
        box.devices.camera.health.ok, box.devices.camera.health.detail = False, "unplugged"
        after = box.status()
        assert after.state == "degraded" and after.devices_json()["camera"] == {"ok": False, "detail": "unplugged"}
        assert before.devices["camera"].ok          # the earlier value did not change under it
    finally:
        box.close()


def test_months_of_faults_keep_the_trace_bounded_and_every_new_fault_reaches_the_status_file(tiny_model, tmp_path):
    """A flapping device for months: the trace keeps the recent faults and a count of all, and the
    status file and OSC still get each new fault exactly once."""
    import json

    from firmware.appliance.statusfile import StatusWriter
    from firmware.box.conductor import FAULT_HISTORY, Box
    from firmware.clock import FakeClock
    from firmware.status_publisher import StatusPublisher
    from tests.scenario import small_config

    box = Box(small_config(tiny_model), FakeClock(), threaded=False)
    path = tmp_path / "status.json"
    publish = StatusPublisher(StatusWriter(path, clock=lambda: 1.7e9, min_interval=0.0))
    try:
        written = []
        real_fault = publish.writer.fault
        publish.writer.fault = lambda text: (written.append(text), real_fault(text))
        for i in range(3 * FAULT_HISTORY):
            box.trace.add_fault(box.clock.now(), f"camera[sim]: unplugged #{i}")
            if i % 7 == 0:
                box.step()
                publish(box)
        box.step()
        publish(box)
        assert box.trace.faults_total == 3 * FAULT_HISTORY
        assert len(box.trace.faults) <= FAULT_HISTORY
        assert box.trace.faults[-1][1] == f"camera[sim]: unplugged #{3 * FAULT_HISTORY - 1}"
        # a frame raises a few faults at most; each reached the file once, in order
        assert written == [f"camera[sim]: unplugged #{i}" for i in range(3 * FAULT_HISTORY)]
        assert json.loads(path.read_text())["faults"]
        assert len(box.status().recent_faults) <= 16
    finally:
        box.close()
