"""sd_notify, atomic writes and the status file: the appliance's small building blocks."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from firmware.appliance.atomic import symlink_atomic, write_atomic, write_json_atomic
from firmware.appliance.sdnotify import Notifier, watchdog_interval
from firmware.appliance.statusfile import StatusWriter, read_status


# --- sd_notify -------------------------------------------------------------------------------

@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def test_notifier_sends_ready_watchdog_status_stopping(notify_socket):
    path, sock = notify_socket
    n = Notifier(path)
    assert n.enabled
    assert n.ready("devices open, model warm")
    assert sock.recv(4096) == b"READY=1\nSTATUS=devices open, model warm"
    assert n.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert n.status("fps 11.8\nsecond line dropped")
    assert sock.recv(4096) == b"STATUS=fps 11.8"
    assert n.extend_timeout(90)
    assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=90000000"
    assert n.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    n.close()


def test_notifier_abstract_socket_from_environment(monkeypatch):
    name = f"humus-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert Notifier().ready()
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_notifier_is_a_noop_off_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    assert n.ready() is False and n.watchdog() is False


def test_notifier_never_raises_when_the_socket_is_gone(tmp_path, caplog):
    n = Notifier(str(tmp_path / "nobody-listens.sock"))
    assert n.watchdog() is False
    assert n.watchdog() is False
    assert sum("sd_notify" in r.message for r in caplog.records) == 1


def test_watchdog_interval_is_half_of_watchdog_sec():
    assert watchdog_interval({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "7"}, pid=7) == 2.0


# --- atomic writes ---------------------------------------------------------------------------

def test_write_atomic_whole_content_no_temp_left(tmp_path):
    target = tmp_path / "state.json"
    write_atomic(target, b"old")
    write_atomic(target, "new content", mode=0o600)
    assert target.read_bytes() == b"new content"
    assert oct(target.stat().st_mode & 0o777) == oct(0o600)
    write_json_atomic(target, {"b": 1, "a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2], "b": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_write_atomic_failure_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    write_atomic(target, b"old")

    def full_disk(fd):  # fails after the temp file exists and holds data
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_sigkill_during_rewrites_never_leaves_a_half_file(tmp_path):
    """A child rewrites a 1 MiB file in a loop and is SIGKILLed; the file is always old or new."""
    target = tmp_path / "big.bin"
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {os.getcwd()!r})
        from firmware.appliance.atomic import write_atomic
        for i in range(40):
            write_atomic({str(target)!r}, bytes([i % 256]) * (1 << 20))
            if i == 25:
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=os.getcwd())
    assert r.returncode == -9
    data = target.read_bytes()
    assert len(data) == 1 << 20 and data == bytes([data[0]]) * len(data) and data[0] == 25


def test_symlink_atomic_replaces_existing_link(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    link = tmp_path / "current"
    symlink_atomic("a", link)
    symlink_atomic("b", link)
    assert os.readlink(link) == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "current"]


# --- status file -----------------------------------------------------------------------------

class FakeClock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def test_status_writer_writes_rate_limited_snapshots(tmp_path):
    clock = FakeClock()
    path = tmp_path / "run" / "status.json"
    w = StatusWriter(path, clock=clock, min_interval=1.0, autoflush=False)
    w.update(state="running", fps=11.5, engine="tensorrt", release="1.2.0",
             model={"name": "decay-v3", "sha256": "ab" * 32})
    w.device("dmx", True, "/dev/humus-dmx")
    w.fault("camera: no frame for 2.0 s")
    assert w.flush()
    clock.t += 0.5
    w.update(fps=3.0)
    assert not w.flush()                       # rate limited: still the first snapshot on disk
    assert read_status(path)["fps"] == 11.5
    clock.t += 0.6
    assert w.flush()
    s = read_status(path)
    assert s["fps"] == 3.0 and s["state"] == "running" and s["engine"] == "tensorrt"
    assert s["uptime_s"] == pytest.approx(1.1) and s["updated_at"] == pytest.approx(1001.1)
    assert s["devices"] == {"dmx": {"ok": True, "detail": "/dev/humus-dmx"}}
    assert s["faults"] == [{"t": 1000.0, "text": "camera: no frame for 2.0 s"}]
    assert s["release"] == "1.2.0" and s["pid"] == os.getpid()


def test_status_writer_keeps_only_recent_faults(tmp_path):
    w = StatusWriter(tmp_path / "s.json", clock=FakeClock())
    for i in range(30):
        w.fault(f"fault {i}")
    w.flush(force=True)
    faults = read_status(tmp_path / "s.json")["faults"]
    assert [f["text"] for f in faults] == [f"fault {i}" for i in range(10, 30)]


def test_status_writer_never_raises_on_odd_input_and_autoflushes(tmp_path):
    """The lead's loop calls update() only, with show states, string faults and Path details."""
    from pathlib import Path
    path = tmp_path / "s.json"
    w = StatusWriter(path, None)                     # clock=None: wall clock
    w.update(state="immersion", faults=["camera: frozen"], devices={"dmx": {"ok": True, "detail": Path("/dev/x")}},
             extra_field=1)
    s = read_status(path)                            # written by update() itself
    assert s["state"] == "immersion" and s["faults"] == ["camera: frozen"]
    assert s["devices"]["dmx"]["detail"] == "/dev/x" and s["extra_field"] == 1
    assert s["release"] is None                      # running from a checkout, not a release


def test_status_writer_reports_the_release_it_runs_from(tmp_path):
    """On a box the code lives in opt/humus/releases/<v>/app: the writer finds <v> itself."""
    release = tmp_path / "opt/humus/releases/1.4.0"
    pkg = release / "app/firmware/appliance"
    pkg.mkdir(parents=True)
    (release / "release.json").write_text(json.dumps({"version": "1.4.0", "files": {}}))
    src = os.path.join(os.getcwd(), "firmware")
    for f in ("__init__.py",):
        (release / "app/firmware" / f).write_text(open(os.path.join(src, f)).read())
    import shutil
    for f in ("__init__.py", "atomic.py", "fsops.py", "bytecode.py", "statusfile.py", "releases.py",
              "release_layout.py", "state.py", "bundle.py", "bundle_keys.py", "bundle_schema.py"):
        shutil.copy(os.path.join(src, "appliance", f), pkg / f)
    current = tmp_path / "opt/humus/current"
    os.symlink("releases/1.4.0", current)
    out = tmp_path / "status.json"
    code = (f"import sys; sys.path.insert(0, {str(current / 'app')!r});"
            f"from firmware.appliance.statusfile import StatusWriter;"
            f"StatusWriter({str(out)!r}).flush(force=True)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert read_status(out)["release"] == "1.4.0"


def test_status_writer_survives_unwritable_directory(tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    w = StatusWriter(blocker / "status.json", clock=FakeClock())
    assert w.flush(force=True) is False
    assert w.flush(force=True) is False
    assert sum("cannot write status file" in r.message for r in caplog.records) == 1


def test_read_status_missing_and_corrupt(tmp_path):
    assert read_status(tmp_path / "none.json") is None
    bad = tmp_path / "bad.json"
    bad.write_text("{half")
    with pytest.raises(ValueError, match="bad.json"):
        read_status(bad)
