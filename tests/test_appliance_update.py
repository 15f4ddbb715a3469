"""Updates: install, swap, power cuts at every step, health-check rollback, prune, tech commands."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from firmware.appliance import bundle as bundlemod
from firmware.appliance import releases as rel
from firmware.appliance import updater
from firmware.appliance.health import HealthResult, StatusHealth, judge
from firmware.appliance.release_layout import (Layout, ReleaseError, current_version, installed_versions,
                                               previous_version, read_release, running_release, verify_release)
from firmware.appliance.state import read_state
from firmware.appliance.status_view import render_status
from test_appliance_support import REPO, fake_systemctl, make_key, make_root, make_src, tree


@pytest.fixture
def box(tmp_path):
    key, pub = make_key(tmp_path)
    root = make_root(tmp_path, pub)
    layout = Layout.at(root)

    def bundle(version, **kw):
        out = tmp_path / f"{version}-{'-'.join(sorted(kw))}.bundle"
        if not out.exists():
            bundlemod.build_bundle(make_src(tmp_path / version, version, **kw), key, version, out)
        return out

    updater.update(layout, bundle("1.0.0"))
    return {"tmp": tmp_path, "root": root, "layout": layout, "bundle": bundle}


def run_cli(*argv, env=None):
    """`humus <argv>` in a subprocess, via the stand-alone entry of firmware.appliance.commands."""
    return subprocess.run([sys.executable, "-m", "firmware.appliance.commands", *argv], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60)


def assert_current_valid(layout, allowed):
    v = current_version(layout)
    assert v in allowed, f"current is {v}"
    target = layout.current.resolve()
    assert target.parent == layout.releases.resolve()
    assert verify_release(target) == []
    assert read_release(target)["version"] == v
    init = (target / "app/firmware/__init__.py").read_text()
    assert f'"{v}"' in init
    return v


# --- normal path -----------------------------------------------------------------------------

def test_update_installs_and_swaps_atomically(box):
    layout = box["layout"]
    report = updater.update(layout, box["bundle"]("2.0.0"))
    assert report.version == "2.0.0" and report.previous == "1.0.0" and not report.restarted
    assert os.readlink(layout.current) == "releases/2.0.0"
    assert os.readlink(layout.previous) == "releases/1.0.0"
    assert_current_valid(layout, {"2.0.0"})
    rec = read_release(layout.current)
    assert rec["bundle"]["signer"] == "studio" and rec["kind"] == "both"
    assert (layout.current / "bundle.json").read_bytes().startswith(b"{")
    assert not list(layout.base.glob(".staging-*"))


def test_update_is_idempotent(box):
    layout = box["layout"]
    updater.update(layout, box["bundle"]("2.0.0"))
    before = tree(box["root"] / "opt/humus/releases")
    calls = []
    report = updater.update(layout, box["bundle"]("2.0.0"), restart=lambda: calls.append(1))
    assert report.already_installed and report.previous is None and calls == []
    assert tree(box["root"] / "opt/humus/releases") == before


def test_model_only_bundle_keeps_the_app_and_app_only_keeps_models(box):
    layout = box["layout"]
    updater.update(layout, box["bundle"]("1.1.0", app=False))
    cur = layout.current
    assert (cur / "models/decay/unet.onnx").read_bytes().startswith(b"weights 1.1.0")
    assert '"1.0.0"' in (cur / "app/firmware/__init__.py").read_text()       # app taken from 1.0.0
    assert read_release(cur)["inherited"] == {"app": "1.0.0"}
    updater.update(layout, box["bundle"]("1.2.0", model=False))
    cur = layout.current
    assert '"1.2.0"' in (cur / "app/firmware/__init__.py").read_text()
    assert (cur / "models/decay/unet.onnx").read_bytes().startswith(b"weights 1.1.0")
    # models are hard links to the previous release, not copies
    assert (cur / "models/decay/unet.onnx").stat().st_ino == \
           (layout.release_dir("1.1.0") / "models/decay/unet.onnx").stat().st_ino
    assert verify_release(cur) == []


def test_model_only_bundle_needs_an_installed_app(tmp_path):
    key, pub = make_key(tmp_path)
    layout = Layout.at(make_root(tmp_path, pub))
    b = tmp_path / "m.bundle"
    bundlemod.build_bundle(make_src(tmp_path, "1.0.0", app=False), key, "1.0.0", b)
    with pytest.raises(ReleaseError, match="model-only"):
        updater.update(layout, b)
    assert current_version(layout) is None and installed_versions(layout) == []


def test_prune_keeps_the_last_releases_and_never_current_or_previous(box):
    layout = box["layout"]
    for v in ("2.0.0", "3.0.0", "4.0.0", "5.0.0"):
        updater.update(layout, box["bundle"](v), keep=3)
    assert installed_versions(layout) == ["3.0.0", "4.0.0", "5.0.0"]
    updater.rollback(layout, to="3.0.0")                 # current 3.0.0, previous 5.0.0
    updater.update(layout, box["bundle"]("6.0.0"), keep=2)
    assert set(installed_versions(layout)) >= {"6.0.0", "3.0.0"}
    assert previous_version(layout) == "3.0.0"


def test_rollback_toggles_between_current_and_previous(box):
    layout = box["layout"]
    updater.update(layout, box["bundle"]("2.0.0"))
    calls = []
    assert updater.rollback(layout, restart=lambda: calls.append("restart")) == ("2.0.0", "1.0.0")
    assert current_version(layout) == "1.0.0" and previous_version(layout) == "2.0.0"
    assert calls == ["restart"]
    assert updater.rollback(layout) == ("1.0.0", "2.0.0")
    with pytest.raises(ReleaseError, match="9.9.9 is not installed"):
        updater.rollback(layout, to="9.9.9")


def test_concurrent_update_is_refused(box):
    with rel.locked(box["layout"]):
        with pytest.raises(ReleaseError, match="another update is running"):
            updater.update(box["layout"], box["bundle"]("2.0.0"))


# --- health check and automatic rollback -----------------------------------------------------

def test_unhealthy_release_is_rolled_back(box):
    layout = box["layout"]
    restarts, seen = [], []

    def restart():
        restarts.append(current_version(layout))

    def failing(version, since):
        seen.append(version)
        return HealthResult(False, "state 'fault': model produced NaN")

    with pytest.raises(updater.UpdateFailed, match=r"2\.0\.0 failed its health check .*NaN.*rolled back to 1\.0\.0"):
        updater.update(layout, box["bundle"]("2.0.0"), restart=restart, health=failing)
    assert seen == ["2.0.0"]
    assert restarts == ["2.0.0", "1.0.0"]                 # started the new one, then the old one again
    assert_current_valid(layout, {"1.0.0"})
    assert "NaN" in read_state(layout)["failed"]["2.0.0"]["reason"]
    # the failed release stays installed for inspection but is not a rollback target
    assert "2.0.0" in installed_versions(layout)


def test_healthy_release_stays(box):
    layout = box["layout"]
    report = updater.update(layout, box["bundle"]("2.0.0"), restart=lambda: None,
                            health=lambda v, since: HealthResult(True, "running"))
    assert report.restarted and report.health == "running" and current_version(layout) == "2.0.0"


def test_judge_decisions():
    base = {"state": "running", "updated_at": 100.0, "release": "2.0.0", "fps": 12}
    assert judge(base, "2.0.0", since=99, now=101)[0] == "ok"
    assert judge({**base, "state": "idle"}, "2.0.0", 99, 101)[0] == "ok"          # a show state
    assert judge({**base, "state": "immersion"}, "2.0.0", 99, 101)[0] == "ok"
    assert judge({**base, "state": "fault"}, "2.0.0", 99, 101)[0] == "bad"
    assert judge({**base, "state": "fault", "faults": ["dmx: gone"]}, "2.0.0", 99, 101) == \
        ("bad", "release 2.0.0 reports state 'fault': dmx: gone")
    assert judge({**base, "state": "safe"}, "2.0.0", 99, 101)[0] == "bad"
    assert judge({**base, "state": "starting"}, "2.0.0", 99, 101)[0] == "wait"
    assert judge(base, "2.0.0", since=100.5, now=101)[0] == "wait"        # snapshot from before the restart
    assert judge(base, "2.0.0", since=99, now=110)[0] == "wait"           # stale heartbeat
    assert judge({**base, "release": "1.0.0"}, "2.0.0", 99, 101)[0] == "wait"
    assert judge(None, "2.0.0", 99, 101)[0] == "wait"
    assert judge(base, "2.0.0", 99, 101, active="failed")[0] == "bad"
    assert judge(base, "2.0.0", 99, 101, active="activating")[0] == "wait"


def test_status_health_needs_settled_health_and_times_out(tmp_path):
    from firmware.appliance.statusfile import StatusWriter
    t = [1000.0]
    clock, sleep = (lambda: t[0]), (lambda s: t.__setitem__(0, t[0] + s))
    path = tmp_path / "status.json"
    w = StatusWriter(path, clock=clock)
    w.update(state="running", release="2.0.0")
    w.flush(force=True)
    # the snapshot never refreshes: healthy at first, then stale -> never settles -> timeout
    check = StatusHealth(path, timeout=20, settle=10, poll=1, clock=clock, sleep=sleep)
    r = check("2.0.0", since=999.0)
    assert not r.ok and "not healthy within 20 s" in r.reason and "stale" in r.reason

    class Beating(StatusHealth):
        def look(self, expected, since):
            w.flush(force=True)
            return super().look(expected, since)
    r = Beating(path, timeout=60, settle=10, poll=1, clock=clock, sleep=sleep)("2.0.0", since=999.0)
    assert r.ok and "running" in r.reason


# --- power cut at every step -----------------------------------------------------------------

STEPS = ["verified", "staging", "extracting", "extracted", "inherited", "sealed", "renamed",
         "previous-linked", "swapped", "restarted", "pruned"]


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_leaves_a_valid_current(box, step):
    root, layout = box["root"], box["layout"]
    log = box["tmp"] / "systemctl.log"
    env = {"HUMUS_SYSTEMCTL": str(fake_systemctl(box["tmp"])), "FAKE_ROOT": str(root), "FAKE_LOG": str(log),
           "HUMUS_TEST_CRASH_AT": step}
    bundle = box["bundle"]("2.0.0", model=False) if step == "inherited" else box["bundle"]("2.0.0")
    r = run_cli("update", str(bundle), "--root", str(root), "--restart", "--settle", "0",
                "--health-timeout", "10", "--keep", "1", env=env)
    assert r.returncode == -9, r.stdout + r.stderr            # it really died at that step
    assert_current_valid(layout, {"1.0.0", "2.0.0"})
    # the next attempt (after the "reboot") completes and cleans up the debris
    env.pop("HUMUS_TEST_CRASH_AT")
    r = run_cli("update", str(bundle), "--root", str(root), "--restart", "--settle", "0",
                "--health-timeout", "10", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_current_valid(layout, {"2.0.0"})
    assert not list(layout.base.glob(".staging-*")) and not list(layout.base.glob(".trash-*"))
    assert not [p for p in layout.base.iterdir() if p.name.endswith(".tmp")]


def test_sigkill_during_automatic_rollback_leaves_a_valid_current(box):
    root, layout = box["root"], box["layout"]
    env = {"HUMUS_SYSTEMCTL": str(fake_systemctl(box["tmp"])), "FAKE_ROOT": str(root),
           "FAKE_LOG": str(box["tmp"] / "log"), "FAKE_BAD": "2.0.0", "HUMUS_TEST_CRASH_AT": "rolled-back"}
    r = run_cli("update", str(box["bundle"]("2.0.0")), "--root", str(root), "--restart", "--settle", "0",
                "--health-timeout", "10", env=env)
    assert r.returncode == -9
    assert_current_valid(layout, {"1.0.0"})


# --- the CLI end to end ----------------------------------------------------------------------

def test_cli_update_with_failing_health_rolls_back_exit_3(box):
    root, layout = box["root"], box["layout"]
    log = box["tmp"] / "systemctl.log"
    env = {"HUMUS_SYSTEMCTL": str(fake_systemctl(box["tmp"])), "FAKE_ROOT": str(root), "FAKE_LOG": str(log),
           "FAKE_BAD": "2.0.0"}
    r = run_cli("update", str(box["bundle"]("2.0.0")), "--root", str(root), "--restart", "--settle", "0",
                "--health-timeout", "5", env=env)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "failed its health check" in r.stderr and "model produced NaN" in r.stderr
    assert "rolled back to 1.0.0" in r.stderr
    assert_current_valid(layout, {"1.0.0"})
    assert log.read_text().count("restart --no-block humus.service") == 2
    status = json.loads((root / "run/humus/status.json").read_text())
    assert status["release"] == "1.0.0" and status["state"] == "running"
    listing = run_cli("releases", "--root", str(root))
    assert listing.returncode == 0
    line = [ln for ln in listing.stdout.splitlines() if "2.0.0" in ln][0]
    assert "FAILED" in line and "NaN" in line
    assert [ln for ln in listing.stdout.splitlines() if "1.0.0" in ln][0].startswith("*")


def test_cli_update_with_root_does_not_restart_unless_asked(box):
    root = box["root"]
    log = box["tmp"] / "systemctl.log"
    env = {"HUMUS_SYSTEMCTL": str(fake_systemctl(box["tmp"])), "FAKE_ROOT": str(root), "FAKE_LOG": str(log)}
    r = run_cli("update", str(box["bundle"]("2.0.0")), "--root", str(root), env=env)
    assert r.returncode == 0 and "not restarted (--root rehearsal" in r.stdout
    assert not log.exists()
    assert current_version(box["layout"]) == "2.0.0"


def test_cli_refusal_exit_1_names_the_problem(box):
    bad = box["tmp"] / "junk.bundle"
    bad.write_bytes(b"not a tar at all" * 10)
    r = run_cli("update", str(bad), "--root", str(box["root"]))
    assert r.returncode == 1 and "update refused, nothing changed" in r.stderr and "junk.bundle" in r.stderr


def test_cli_rollback_and_releases_json(box):
    root = box["root"]
    updater.update(box["layout"], box["bundle"]("2.0.0"))
    r = run_cli("rollback", "--root", str(root))
    assert r.returncode == 0 and "current -> 1.0.0 (was 2.0.0)" in r.stdout
    rows = json.loads(run_cli("releases", "--root", str(root), "--json", "--verify").stdout)
    assert [(x["version"], x["current"], x["previous"], x["problems"]) for x in rows] == \
           [("2.0.0", False, True, []), ("1.0.0", True, False, [])]


def test_releases_reports_a_damaged_release(box):
    f = box["layout"].current / "models/decay/unet.onnx"
    f.chmod(0o644)
    f.write_bytes(b"x" * f.stat().st_size)
    rows = json.loads(run_cli("releases", "--root", str(box["root"]), "--json", "--verify").stdout)
    assert "sha256 mismatch" in rows[0]["problems"][0]


def test_status_command_renders_snapshot(box):
    from firmware.appliance.statusfile import StatusWriter
    w = StatusWriter(box["root"] / "run/humus/status.json")
    w.update(state="running", fps=11.76, engine="tensorrt", release="1.0.0",
             model={"name": "decay-v3", "sha256": "abcdef0123456789" * 4})
    w.device("dmx", True, "/dev/humus-dmx")
    w.device("camera", False, "no frame for 2.0 s")
    w.fault("camera: no frame for 2.0 s")
    w.flush(force=True)
    r = run_cli("status", "--root", str(box["root"]))
    assert r.returncode == 1                                   # a device is failing
    assert "state     running" in r.stdout and "fps 11.8" in r.stdout and "engine tensorrt" in r.stdout
    assert "decay-v3 sha256 abcdef012345" in r.stdout and "current 1.0.0" in r.stdout
    assert "camera     FAIL no frame for 2.0 s" in r.stdout and "recent faults:" in r.stdout
    text, healthy = render_status(json.loads((box["root"] / "run/humus/status.json").read_text()),
                                  time.time() + 60, "1.0.0", None)
    assert "STALE" in text and not healthy


def test_status_command_without_status_file(box):
    r = run_cli("status", "--root", str(box["root"]))
    assert r.returncode == 1 and "has not run since boot" in r.stdout


def test_logs_command_builds_journalctl_call(box, tmp_path):
    fake = tmp_path / "journalctl"
    fake.write_text("#!/bin/sh\necho \"$@\"\n")
    fake.chmod(0o755)
    r = run_cli("logs", "--root", str(box["root"]), "-n", "50", "-b", env={"HUMUS_JOURNALCTL": str(fake)})
    assert r.returncode == 0
    assert r.stdout.split() == [f"--root={box['root']}", "-u", "humus.service", "-u", "humus-safe.service",
                                "-o", "short-iso", "--no-pager", "-n", "50", "-b", "0"]


def test_running_release_finds_its_release_dir(box):
    mod = box["layout"].current.resolve() / "app/firmware/appliance/x.py"
    assert running_release(mod) == "1.0.0"
    assert running_release(REPO / "firmware/appliance/releases.py") is None


def test_a_restart_that_fails_rolls_back_too(box):
    layout = box["layout"]
    calls = []

    def restart():
        calls.append(current_version(layout))
        if len(calls) == 1:
            raise RuntimeError("systemctl restart humus.service failed (1): unit masked")

    with pytest.raises(updater.UpdateFailed, match="restart failed: .*unit masked.*rolled back to 1.0.0"):
        updater.update(layout, box["bundle"]("2.0.0"), restart=restart,
                       health=lambda v, s: HealthResult(True, "never asked"))
    assert calls == ["2.0.0", "1.0.0"] and current_version(layout) == "1.0.0"


def test_retrying_a_failed_release_that_turns_healthy_clears_the_mark(box):
    layout = box["layout"]
    with pytest.raises(updater.UpdateFailed):
        updater.update(layout, box["bundle"]("2.0.0"), restart=lambda: None,
                       health=lambda v, s: HealthResult(False, "camera unplugged during test"))
    assert "2.0.0" in read_state(layout)["failed"]
    updater.update(layout, box["bundle"]("2.0.0"), restart=lambda: None, health=lambda v, s: HealthResult(True, "ok"))
    assert current_version(layout) == "2.0.0" and read_state(layout)["failed"] == {}


def test_release_app_is_precompiled_but_bytecode_is_not_part_of_the_release(box):
    cur = box["layout"].current
    assert list((cur / "app/firmware/__pycache__").glob("show.*.pyc"))
    assert not any("__pycache__" in f for f in read_release(cur)["files"])
    assert verify_release(cur) == []
