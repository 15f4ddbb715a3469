"""The whole box on a clock that may be wrong: a simulated clock source flips from unsynchronised to
synchronised under the fake clock, and the open/closed decision, the frame, the projector, the
status file and `humus status` follow at the next frame. Also `humus doctor`'s clock row and the
rehearsal (`humus run --sim --start`) of a box whose network comes up late."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime

import pytest
from pythonosc.udp_client import SimpleUDPClient

from firmware import cli
from firmware.appliance import doctor
from firmware.appliance.status_view import render_status
from firmware.appliance.statusfile import StatusError, StatusWriter, read_status
from firmware.check_result import render
from firmware.config.load import parse_config
from firmware.devices.timesync.system import FLAG, SAVED
from firmware.status_publisher import StatusPublisher
from test_osc_venue import BERLIN, SCHEDULE, make_box, step_until, wait_inbox
from waiting import wait_for

FRIDAY_19 = datetime(2026, 12, 4, 19, 0, tzinfo=BERLIN)   # between 18:00 and the 20:00 late window: closed
FRIDAY_12 = datetime(2026, 12, 4, 12, 0, tzinfo=BERLIN)   # open
UNSYNCED = {"type": "sim", "synced": False}


def published(box, tmp_path):
    """What the field sees: the status file the box writes, read back strictly, and `humus status`."""
    writer = StatusWriter(tmp_path / "status.json", min_interval=0)
    StatusPublisher(writer)(box)
    status = read_status(tmp_path / "status.json")
    return status, render_status(status, status["updated_at"], "0.1.0", None)[0]


def frames(box, n):
    for _ in range(n):
        box.clock.advance(0.05)
        last = box.step()
    return last


def test_unsynchronised_box_stays_open_at_a_closed_hour_and_closes_once_synchronised(tiny_model, tmp_path):
    box = make_box(tiny_model, tmp_path, wall_start=FRIDAY_19, schedule=SCHEDULE, timesync=UNSYNCED,
                   projector={"type": "sim", "retry_s": [0.01, 0.02]})
    try:
        proj = box.venue.projector
        box.step()
        frame = frames(box, 40)
        assert box.venue_now.open and box.venue_now.by_policy and box.venue_now.next_change is None
        assert frame.any() and "closed" not in [s for _, s, _ in box.trace.states]   # the show plays
        assert wait_for(lambda: proj.confirmed is True)                               # and is projected
        status, text = published(box, tmp_path)
        assert status["clock"] == {"synced": False, "detail": "sim: never synchronised", "source": "timesync[sim]",
                                   "unsynced_s": 2.0, "policy": "open"}
        assert status["schedule"]["by_policy"] is True and status["show"] == "idle"
        assert "schedule  OPEN until the clock is synchronised (the unsynced policy decides, not the hours)" in text
        assert "clock     NOT synchronised (for 0m02s): sim: never synchronised; schedule policy: open" in text

        box.venue.timesync.set_synced(True, "timesyncd reached its server")
        box.clock.advance(0.05)
        frame = box.step()                                                            # the very next frame
        assert not box.venue_now.open and not box.venue_now.by_policy
        assert box.trace.states[-1][1] == "closed" and not frame.any()
        assert wait_for(lambda: proj.confirmed is False)
        assert [on for _, on in proj.backend.commands] == [True, False]
        status, text = published(box, tmp_path)
        assert status["show"] == "closed" and status["clock"]["unsynced_s"] is None
        assert "schedule  CLOSED until 2026-12-04 20:00:00+01:00" in text
        assert "clock     synchronised: sim: timesyncd reached its server" in text
    finally:
        box.close()


@pytest.mark.parametrize("policy, at, unsynced_open", [
    ("open", FRIDAY_19, True), ("closed", FRIDAY_19, False), ("schedule", FRIDAY_19, False),
    ("open", FRIDAY_12, True), ("closed", FRIDAY_12, False), ("schedule", FRIDAY_12, True)])
def test_each_policy_until_the_hours_take_over(tiny_model, tmp_path, policy, at, unsynced_open):
    box = make_box(tiny_model, tmp_path, wall_start=at, schedule={**SCHEDULE, "unsynced": policy},
                   timesync=UNSYNCED)
    try:
        box.step()
        assert box.venue_now.open is unsynced_open
        assert box.venue_now.by_policy is (policy != "schedule")
        assert (box.trace.states[-1][1] == "closed" if box.trace.states else False) is not unsynced_open
        box.venue.timesync.set_synced(True)
        box.clock.advance(0.05)
        box.step()
        assert box.venue_now.open is (at == FRIDAY_12) and not box.venue_now.by_policy
    finally:
        box.close()


def test_a_network_that_comes_up_late_is_seen_at_the_next_frame(tiny_model, tmp_path):
    """`synced_after_s` scripts the source on the box clock: the box closes on the first frame at or
    after it, not at the next rate-limited look (the sim costs nothing to ask)."""
    box = make_box(tiny_model, tmp_path, wall_start=FRIDAY_19, schedule=SCHEDULE,
                   timesync={"type": "sim", "synced_after_s": 2.0})
    try:
        assert step_until(box, lambda b: not b.venue_now.open, 3.0)
        t = box.trace.states[-1][0] - box.started_at
        assert box.trace.states[-1][1] == "closed" and 2.0 - 1e-9 <= t < 2.05
    finally:
        box.close()


def test_an_osc_override_ends_when_the_clock_is_set(tiny_model, tmp_path):
    """Its end was an instant on the clock that was wrong: the hours decide from the synchronisation."""
    box = make_box(tiny_model, tmp_path, {"listen": "127.0.0.1:0"}, wall_start=FRIDAY_12, schedule=SCHEDULE,
                   timesync=UNSYNCED)
    try:
        box.step()
        SimpleUDPClient(*box.venue.osc.address).send_message("/humus/open", 0)
        wait_inbox(box.venue.osc)
        frames(box, 1)
        assert not box.venue_now.open and box.venue_now.overridden and box.venue_now.next_change is None
        frames(box, 100)
        assert not box.venue_now.open and box.venue_now.overridden                 # until the clock is set
        box.venue.timesync.set_synced(True)
        frames(box, 1)
        assert box.venue_now.open and not box.venue_now.overridden and not box.venue_now.by_policy
    finally:
        box.close()


def test_a_box_without_a_schedule_reports_the_clock_but_never_closes(tiny_model, tmp_path):
    box = make_box(tiny_model, tmp_path, timesync=UNSYNCED)
    try:
        box.step()
        assert box.venue_now.open and not box.venue_now.by_policy
        status, text = published(box, tmp_path)
        assert "schedule" not in status and status["clock"]["policy"] is None
        assert "clock     NOT synchronised (for 0m00s): sim: never synchronised\n" in text + "\n"
    finally:
        box.close()


# --------------------------------------------------------------------------------- status file
def test_old_status_files_still_read_and_bad_clock_fields_are_named(tmp_path):
    path = tmp_path / "status.json"
    old = {"state": "idle", "updated_at": 100.0,
           "schedule": {"open": False, "overridden": False, "next_change": "2026-12-07T10:00:00+01:00"}}
    path.write_text(json.dumps(old))
    text, _ = render_status(read_status(path), 101.0, "0.1.0", None)
    assert "schedule  CLOSED until 2026-12-07 10:00:00+01:00" in text and "clock" not in text
    clock = {"synced": False, "detail": "no /run/systemd/timesync/synchronized", "source": "timesync[system]",
             "unsynced_s": 3725.0, "policy": "open"}
    path.write_text(json.dumps({**old, "clock": clock}))
    text, healthy = render_status(read_status(path), 101.0, "0.1.0", None)
    assert ("clock     NOT synchronised (for 1h02m): no /run/systemd/timesync/synchronized; schedule policy: open"
            in text) and healthy                                   # a warning to read, not an unhealthy box
    for key, value in (("synced", "no"), ("synced", 0), ("unsynced_s", -1.0), ("unsynced_s", "5"),
                       ("detail", 5), ("detail", "x" * 5000), ("policy", 1)):
        path.write_text(json.dumps({**old, "clock": {**clock, key: value}}))
        with pytest.raises(StatusError, match=f"clock.{key}"):
            read_status(path)
    for key, value in (("open", "yes"), ("by_policy", 1), ("next_change", 5)):
        path.write_text(json.dumps({**old, "schedule": {**old["schedule"], key: value}}))
        with pytest.raises(StatusError, match=f"schedule.{key}"):
            read_status(path)
    path.write_text(json.dumps({**old, "clock": {**clock, "unsynced_s": float("nan")}}, allow_nan=True))
    with pytest.raises(StatusError, match="clock.unsynced_s"):
        read_status(path)


# --------------------------------------------------------------------------------------- doctor
def doctor_row(tmp_path, config_text=None):
    cfg = tmp_path / "humus.toml"
    cfg.unlink(missing_ok=True)
    if config_text is not None:
        cfg.write_text(config_text)
    return doctor.check_clock(doctor.Context(root=tmp_path, config_path=cfg, on_box=False))


def test_doctor_warns_about_an_unsynchronised_clock_and_never_fails(tmp_path):
    sched = '[schedule]\ntimezone = "Europe/Berlin"\nopen = ["mon-fri 10:00-18:00"]\nunsynced = "closed"\n'
    (tmp_path / SAVED).parent.mkdir(parents=True)
    (tmp_path / SAVED).touch()
    os.utime(tmp_path / SAVED, (4e9, 4e9))            # 2096: the box's clock is certainly behind it
    row = doctor_row(tmp_path, sched)
    assert row.ok is True and row.detail.startswith(f"NOT synchronised: no /{FLAG}; certainly wrong: ")
    assert 'behind the last known good time 2096-10-02 07:06:40 UTC' in row.detail
    assert '[schedule] unsynced = "closed" decides meanwhile' in row.warning and "timedatectl set-ntp true" in row.warning
    report = render([row])
    assert report.startswith("[warn] clock            NOT synchronised") and report.endswith("all checks passed, 1 warning(s)")

    (tmp_path / FLAG).parent.mkdir(parents=True)
    (tmp_path / FLAG).touch()
    row = doctor_row(tmp_path, sched)
    assert row.ok is True and row.detail.startswith("synchronised: systemd-timesyncd synchronised it at ") and not row.warning

    (tmp_path / FLAG).unlink()
    row = doctor_row(tmp_path, None)                  # no config: no schedule depends on the clock
    assert row.ok is True and not row.warning and "no [schedule]: the show does not depend on it" in row.detail
    assert doctor_row(tmp_path, '[timesync]\ntype = "trusted"\n').ok is True
    assert doctor_row(tmp_path, '[timesync]\ntype = "sim"\n').ok is None
    assert doctor_row(tmp_path, '[timesync]\ntype = "ntp"\n').ok is True   # the config row says what is wrong
    assert doctor.check_clock in doctor.CHECKS


# ------------------------------------------------------------------------------------ rehearsal
def test_sim_replaces_the_system_clock_source_and_keeps_a_scripted_one():
    assert cli.sim_config(parse_config({}), True).timesync.type == "sim"
    assert cli.sim_config(parse_config({}), True).timesync.synced is True
    scripted = parse_config({"timesync": {"type": "sim", "synced_after_s": 4}})
    assert cli.sim_config(scripted, True).timesync.synced_after_s == 4.0
    assert cli.sim_config(parse_config({"timesync": {"type": "trusted"}}), True).timesync.type == "trusted"


def test_rehearse_a_network_that_comes_up_late(tiny_model, tmp_path):
    cfg = tmp_path / "humus.toml"
    cfg.write_text(f'[model]\ndir = "{tiny_model}"\nengine = "onnxruntime"\n'
                   '[schedule]\ntimezone = "Europe/Berlin"\nopen = ["mon-fri 10:00-18:00"]\n'
                   '[timesync]\ntype = "sim"\nsynced_after_s = 1.5\n')
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "run", "--sim", "--headless", "--config", str(cfg),
                        "--start", "2026-12-04T19:00:00", "--duration", "3", "--width", "64", "--height", "64",
                        "--fps", "10"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "clock: NOT synchronised (sim: not synchronised until 1.5 s after start)" in r.stderr
    assert "clock: synchronised (sim: synchronised 1.5 s after start)" in r.stderr
    assert r.stdout.split("states: ")[1].splitlines()[0].endswith("closed")
    assert "closed until 2026-12-07T09:00:00+00:00" in r.stdout
    states = [json.loads(ln) for ln in (tmp_path / "humus-run.states.jsonl").read_text().splitlines()]
    assert [s["state"] for s in states if "state" in s][-1] == "closed"
    # the sim counts from its own start (the venue's, after the model is loaded); the trace from the box's
    assert [s["t"] for s in states if s.get("state") == "closed"][0] >= 1.5
