"""Issue 13: the health wait is part of the update, and the field tech's commands never give a traceback.

Signals and a malformed status during the wait roll back (exit 3); after a SIGKILL there, `humus
recover` (boot) or the next `humus update` rolls back; `humus releases` shows the outcome. Every
hostile argument is an argparse error (exit 2) or a refusal (exit 1) with nothing created."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings, strategies as st

from firmware.appliance import bundle as bundlemod
from firmware.appliance import updater
from firmware.appliance.release_layout import Layout, current_version
from firmware.appliance.state import read_state
from test_appliance_support import REPO, fake_systemctl, make_key, make_root, make_src, tree


@pytest.fixture
def box(tmp_path):
    key, pub = make_key(tmp_path)
    root = make_root(tmp_path, pub)
    layout = Layout.at(root)

    def bundle(version):
        out = tmp_path / f"{version}.bundle"
        if not out.exists():
            bundlemod.build_bundle(make_src(tmp_path / version, version), key, version, out)
        return out
    updater.update(layout, bundle("1.0.0"))
    env = {"HUMUS_SYSTEMCTL": str(fake_systemctl(tmp_path)), "FAKE_ROOT": str(root),
           "FAKE_LOG": str(tmp_path / "systemctl.log")}
    return {"tmp": tmp_path, "root": root, "layout": layout, "bundle": bundle, "env": env}


def cli(*argv, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "firmware.cli", *argv], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=60, **kw)


def interactive_signals(ignored=()):
    """The signal dispositions of an updater typed into an SSH session (default SIGHUP and SIGINT,
    whatever the test runner inherited), with `ignored` ignored as `nohup` does."""
    def preexec():
        for s in (signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN if s in ignored else signal.SIG_DFL)
    return preexec


def start_waiting_update(box, version="2.0.0", ignored=(), **env):
    """`humus update --restart` with a service that never becomes active: it sits in the health wait."""
    p = subprocess.Popen([sys.executable, "-m", "firmware.cli", "update", str(box["bundle"](version)),
                          "--root", str(box["root"]), "--restart", "--settle", "0", "--health-timeout", "60"],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **box["env"], "FAKE_ACTIVE": "activating", **env},
                         preexec_fn=interactive_signals(ignored))
    for line in p.stdout:
        if "waiting for the new release" in line:
            return p
    raise AssertionError(f"never reached the health wait: {p.stderr.read()}")


def releases_row(box, version):
    rows = json.loads(cli("releases", "--root", str(box["root"]), "--json").stdout)
    return next(r for r in rows if r["version"] == version)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_health_wait_rolls_back_and_exits_3(box, sig):
    p = start_waiting_update(box)
    assert current_version(box["layout"]) == "2.0.0"
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 3, err
    assert "Traceback" not in err and "interrupted by" in err and "rolled back to 1.0.0" in err
    assert current_version(box["layout"]) == "1.0.0"
    row = releases_row(box, "2.0.0")
    assert row["health"] == "failed" and "interrupted by" in row["failed"]
    assert "pending" not in read_state(box["layout"])
    text = cli("releases", "--root", str(box["root"])).stdout
    assert "FAILED: update interrupted by" in text


def test_nohup_keeps_the_update_through_a_hangup(box):
    """`nohup humus update ...`: the SIGHUP of the dropped SSH session is ignored, the wait goes on
    (and ends by its own verdict); a SIGTERM still rolls back."""
    p = start_waiting_update(box, ignored=(signal.SIGHUP,))
    p.send_signal(signal.SIGHUP)
    with pytest.raises(subprocess.TimeoutExpired):
        p.communicate(timeout=1.5)                     # still waiting for the new release
    assert current_version(box["layout"]) == "2.0.0" and p.poll() is None
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 3 and "interrupted by SIGTERM" in err and "rolled back to 1.0.0" in err
    assert current_version(box["layout"]) == "1.0.0"


def test_sigkill_during_the_wait_is_rolled_back_at_boot(box):
    p = start_waiting_update(box)
    p.kill()
    p.communicate(timeout=30)
    layout = box["layout"]
    assert current_version(layout) == "2.0.0"                       # the unverified release
    assert releases_row(box, "2.0.0")["health"] == "unverified"
    assert "UNVERIFIED" in cli("releases", "--root", str(box["root"])).stdout
    r = cli("recover", "--root", str(box["root"]), env=box["env"])        # what humus.service runs first
    assert r.returncode == 0 and "rolled back to 1.0.0" in r.stdout and "Traceback" not in r.stderr
    assert current_version(layout) == "1.0.0"
    row = releases_row(box, "2.0.0")
    assert row["health"] == "failed" and "killed" in row["failed"]
    again = cli("recover", "--root", str(box["root"]), env=box["env"])
    assert again.returncode == 0 and "nothing to recover" in again.stdout


def test_sigkill_during_the_wait_is_rolled_back_by_the_next_update(box):
    p = start_waiting_update(box)
    p.kill()
    p.communicate(timeout=30)
    r = cli("update", str(box["bundle"]("3.0.0")), "--root", str(box["root"]), "--restart", "--settle", "0",
            "--health-timeout", "10", env=box["env"])
    assert r.returncode == 0, r.stderr
    assert "release 2.0.0 was left unverified by an interrupted update: rolled back to 1.0.0" in r.stdout
    assert current_version(box["layout"]) == "3.0.0"
    assert os.readlink(box["layout"].previous) == "releases/1.0.0"      # not the unverified 2.0.0
    assert releases_row(box, "2.0.0")["health"] == "failed"
    assert releases_row(box, "3.0.0")["health"] == "healthy"


def test_recover_does_nothing_while_an_update_holds_the_lock(box):
    p = start_waiting_update(box)
    try:
        r = cli("recover", "--root", str(box["root"]), env=box["env"])
        assert r.returncode == 0 and "another update is running" in r.stdout
        assert current_version(box["layout"]) == "2.0.0"
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
    assert current_version(box["layout"]) == "1.0.0"


MALFORMED_STATUS = [
    {"state": "running", "updated_at": "now"},
    {"state": "running", "updated_at": float("nan")},
    {"state": "running", "updated_at": 1e9, "fps": "12"},
    {"state": 1, "updated_at": 1e9},
    {"state": "running", "updated_at": 1e9, "devices": {"dmx": {"ok": "yes"}}},
    {"state": "running", "updated_at": 1e9, "faults": [{"t": "x", "text": 1}]},
    {"state": "running", "updated_at": True},
    {"updated_at": 1e9},
    [],
    "not json",
]


def _write_status(path, status):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(status if isinstance(status, str) else json.dumps(status, allow_nan=True))


@pytest.mark.parametrize("status", MALFORMED_STATUS, ids=range(len(MALFORMED_STATUS)))
def test_status_on_a_malformed_status_file_exits_1_naming_the_problem(box, status, capsys):
    from firmware.appliance import commands
    path = box["root"] / "run/humus/status.json"
    _write_status(path, status)
    for argv in (["status"], ["status", "--json"], ["doctor"]):
        assert commands.main([*argv, "--root", str(box["root"])]) == 1     # in-process: a raise fails the test
    capsys.readouterr()
    assert commands.main(["status", "--root", str(box["root"])]) == 1
    err = capsys.readouterr().err
    assert "status file" in err and str(path) in err


@pytest.mark.parametrize("status", MALFORMED_STATUS[:3], ids=range(3))
def test_a_malformed_status_during_the_wait_rolls_back(box, status):
    """The new release writes a malformed status: the health judgement says bad, not TypeError."""
    from firmware.appliance.health import StatusHealth
    path = box["root"] / "run/humus/status.json"

    def restart():
        _write_status(path, status)
    health = StatusHealth(path, timeout=5, settle=0, poll=0.01)
    with pytest.raises(updater.UpdateFailed, match=r"malformed status: status file .*rolled back to 1\.0\.0"):
        updater.update(box["layout"], box["bundle"]("2.0.0"), restart=restart, health=health)
    assert current_version(box["layout"]) == "1.0.0"


def test_status_json_into_a_closed_pipe_is_quiet(box):
    from firmware.appliance.statusfile import StatusWriter
    w = StatusWriter(box["root"] / "run/humus/status.json")
    w.update(state="running", release="1.0.0")
    w.flush(force=True)
    rd, wr = os.pipe()
    os.close(rd)                                  # `| head` that has already exited
    try:
        r = subprocess.run([sys.executable, "-m", "firmware.cli", "status", "--json", "--root", str(box["root"])],
                           cwd=REPO, stdout=wr, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(wr)
    assert r.returncode == 141 and r.stderr == ""


BAD_ARGS = [
    ["rollback", "--to", "v1.1.0"], ["rollback", "--to", "1.1.0\n"], ["rollback", "--to", "\u0661.0.0"],
    ["update", "x.bundle", "--health-timeout", "nan"], ["update", "x.bundle", "--settle", "-1"],
    ["update", "x.bundle", "--keep", "0"], ["update", "x.bundle", "--max-bytes", "1e400"],
    ["logs", "-n", "inf"], ["run", "--duration", "inf"], ["run", "--width", "10"], ["run", "--fps", "nan"],
    ["run", "--record-scale", "0"], ["safe", "--duration", "-5"], ["bench", "--seconds", "1_000"],
]


@pytest.mark.parametrize("argv", BAD_ARGS, ids=[" ".join(a) for a in BAD_ARGS])
def test_hostile_arguments_are_argparse_errors(box, argv, capsys):
    """In-process (any exception but argparse's SystemExit(2) fails the test); one also in a subprocess."""
    from firmware import cli as humus
    before = tree(box["root"])
    with pytest.raises(SystemExit) as stop:
        humus.main([*argv, *(["--root", str(box["root"])] if argv[0] in ("rollback", "update", "logs") else [])])
    assert stop.value.code == 2 and "error: argument" in capsys.readouterr().err
    assert tree(box["root"]) == before


def test_rollback_to_v1_1_0_in_a_real_process_has_no_traceback(box):
    r = cli("rollback", "--to", "v1.1.0", "--root", str(box["root"]))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--to" in r.stderr


@pytest.mark.parametrize("command", [["update", "x.bundle"], ["rollback"], ["releases"], ["status"],
                                     ["recover"], ["doctor"]])
def test_a_mistyped_root_creates_nothing(tmp_path, command, capsys):
    from firmware import cli as humus
    typo = tmp_path / "rehersal"
    with pytest.raises(SystemExit) as stop:
        humus.main([*command, "--root", str(typo)])
    assert stop.value.code == 2 and "is not an existing folder" in capsys.readouterr().err
    assert not typo.exists()


@pytest.mark.parametrize("command", [["update", "x.bundle"], ["rollback"], ["recover"]])
def test_an_existing_folder_that_is_not_a_humus_root_stays_empty(tmp_path, command, capsys):
    from firmware import cli as humus
    empty = tmp_path / "empty"
    empty.mkdir()
    assert humus.main([*command, "--root", str(empty)]) == (0 if command[0] == "recover" else 1)
    assert command[0] == "recover" or "not a humus root" in capsys.readouterr().err
    assert list(empty.iterdir()) == []


def test_keygen_refuses_a_dangling_pub_symlink(tmp_path):
    target = tmp_path / "elsewhere" / "planted.pub"
    target.parent.mkdir()
    (tmp_path / "studio.pub").symlink_to(target)
    r = subprocess.run([sys.executable, "-m", "firmware.appliance.release_cli", "keygen", str(tmp_path / "studio")],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "exists (a symlink)" in r.stderr and "Traceback" not in r.stderr
    assert not target.exists() and not (tmp_path / "studio.key").exists()


def test_release_build_with_a_bad_version_or_missing_source_is_one_line(tmp_path):
    base = [sys.executable, "-m", "firmware.appliance.release_cli", "build"]
    r = subprocess.run(base + [str(tmp_path / "nope"), "--key", str(tmp_path / "k.key"), "--version", "2.0.0\n",
                               "-o", str(tmp_path / "o.bundle")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--version" in r.stderr
    r = subprocess.run(base + [str(tmp_path / "nope"), "--key", str(tmp_path / "k.key"), "--version", "2.0.0",
                               "-o", str(tmp_path / "o.bundle")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "k.key" in r.stderr
    assert sorted(os.listdir(tmp_path)) == []


def test_state_file_of_the_wrong_shape_does_not_stop_an_update(box):
    box["layout"].state_file.write_text('{"failed": [], "history": {}, "pending": {"version": 3}}')
    updater.update(box["layout"], box["bundle"]("2.0.0"), restart=lambda: None)
    assert current_version(box["layout"]) == "2.0.0"
    assert time.time() - read_state(box["layout"])["healthy"]["2.0.0"]["at"] < 60


# --- property-based: any status file is either rendered or refused naming the key -----------------

status_values = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8)
                 | st.lists(st.none() | st.floats() | st.text(max_size=4), max_size=3)
                 | st.dictionaries(st.text(max_size=4), st.booleans() | st.text(max_size=4) | st.floats(), max_size=3))
# the [osc] figures (firmware/osc.py status()), with any value under their own keys
status_values |= st.dictionaries(st.sampled_from(["listen", "send", "received", "bad", "dropped", "refused",
                                                  "last_refused", "sent", "send_errors"]), status_values, max_size=4)
# the schedule and clock figures (firmware/venue.py status()), likewise
status_values |= st.dictionaries(st.sampled_from(["open", "overridden", "by_policy", "next_change", "synced",
                                                  "detail", "source", "unsynced_s", "policy"]), status_values, max_size=4)
STATUS_KEYS = ["state", "updated_at", "started_at", "uptime_s", "show", "fps", "engine", "devices", "model",
               "release", "faults", "pid", "osc", "schedule", "clock", "other"]
good_status = {"state": "running", "updated_at": 1.7e9, "fps": 12.0, "devices": {"dmx": {"ok": True, "detail": ""}},
               "faults": [{"t": 1.7e9, "text": "x"}], "release": "1.0.0"}


@settings(max_examples=200, deadline=None, database=None)
@given(st.dictionaries(st.sampled_from(STATUS_KEYS), status_values, max_size=5), st.booleans())
def test_any_status_file_renders_or_is_refused_by_key(tmp_path_factory, changes, start_good):
    from firmware.appliance.status_view import render_status
    from firmware.appliance.health import judge
    from firmware.appliance.statusfile import StatusError, read_status
    path = tmp_path_factory.mktemp("st") / "status.json"
    path.write_text(json.dumps({**(good_status if start_good else {}), **changes}, allow_nan=True))
    try:
        status = read_status(path)
    except StatusError as exc:
        assert str(path) in str(exc)
        return
    text, healthy = render_status(status, 1.7e9, "1.0.0", None)
    assert isinstance(text, str) and isinstance(healthy, bool)
    assert judge(status, "1.0.0", 0.0, 1.7e9)[0] in ("ok", "wait", "bad")


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(max_size=200))
def test_any_status_bytes_give_only_a_status_error(data):
    from firmware.fuzz import fuzz_status
    fuzz_status(data)


def test_cli_update_whose_release_writes_updated_at_as_a_string_exits_3(box):
    """The issue's case end to end: the new release's status says "updated_at": "now"."""
    fake = box["tmp"] / "fake-systemctl-malformed"
    status = box["root"] / "run/humus/status.json"
    fake.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    f"if sys.argv[1] == 'is-active':\n    print('active')\n"
                    f"elif sys.argv[1] == 'restart':\n"
                    f"    os.makedirs({str(status.parent)!r}, exist_ok=True)\n"
                    f"    open({str(status)!r}, 'w').write(json.dumps({{'state': 'running', 'updated_at': 'now',"
                    f" 'release': '2.0.0'}}))\n")
    fake.chmod(0o755)
    r = cli("update", str(box["bundle"]("2.0.0")), "--root", str(box["root"]), "--restart", "--settle", "0",
            "--health-timeout", "10", env={"HUMUS_SYSTEMCTL": str(fake)})
    assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr
    assert "malformed status" in r.stderr and "updated_at" in r.stderr and "rolled back to 1.0.0" in r.stderr
    assert current_version(box["layout"]) == "1.0.0"
    assert releases_row(box, "2.0.0")["health"] == "failed"
    assert not list(box["layout"].base.glob(".staging-*"))
