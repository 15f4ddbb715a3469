"""`humus run --sim --start`: a schedule change rehearsed in real time, as a subprocess; and what
`humus status` shows of the schedule, the projector, detection and OSC."""
import json
import subprocess
import sys

from firmware.appliance.status_view import render_status


def test_rehearse_a_closing_in_real_time(tiny_model, tmp_path):
    cfg = tmp_path / "humus.toml"
    cfg.write_text(f'[model]\ndir = "{tiny_model}"\nengine = "onnxruntime"\n'
                   '[schedule]\ntimezone = "Europe/Berlin"\nopen = ["mon-fri 10:00-18:00"]\nwarmup_s = 60\n'
                   '[projector]\ntype = "pjlink"\nhost = "192.0.2.1"\n')   # TEST-NET: never contacted
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "run", "--sim", "--headless", "--config", str(cfg),
                        "--start", "2026-12-04T17:59:57", "--duration", "5", "--width", "64", "--height", "64",
                        "--fps", "10"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "states: approach" not in r.stdout            # the scripted visitor arrives after 4 s
    assert r.stdout.split("states: ")[1].splitlines()[0].endswith("closed")
    assert "closed until 2026-12-07T09:00:00+00:00" in r.stdout    # Monday 10:00 CET
    assert "projector power on -> off" in r.stdout
    states = [json.loads(ln) for ln in (tmp_path / "humus-run.states.jsonl").read_text().splitlines()]
    closed = [s["t"] for s in states if s.get("state") == "closed"]
    # 18:00:00 is 3 s after the box's start; never before it, and on the first frame after it (a
    # loaded machine may be slow to present its first frames)
    assert len(closed) == 1 and 2.95 <= closed[0] < 4.5


def test_start_needs_sim_and_a_valid_time(tmp_path):
    for argv in (["--start", "2026-12-04T17:59"], ["--sim", "--headless", "--start", "tomorrow"]):
        r = subprocess.run([sys.executable, "-m", "firmware.cli", "run", *argv], capture_output=True, text=True,
                           timeout=60, cwd=tmp_path)
        assert r.returncode == 2 and "--start" in r.stderr


def test_status_shows_the_venue():
    status = {"state": "running", "updated_at": 100.0, "uptime_s": 5, "devices": {},
              "schedule": {"open": False, "overridden": False, "next_change": "2026-12-07T10:00:00+01:00"},
              "projector": {"wanted": False, "confirmed": None, "ok": False, "detail": "power off failed"},
              "detected": {"presence": "ld2410 /dev/serial/by-id/usb-radar", "camera": "none found (rescanning)",
                           "warnings": ["2 presence devices found; using ..."]},
              "osc": {"listen": "0.0.0.0:9000", "received": 12, "bad": 2, "dropped": 0, "sent": 40}}
    text, _ = render_status(status, 101.0, "0.1.0", None)
    assert "schedule  CLOSED until 2026-12-07 10:00:00+01:00" in text
    assert "projector wanted off, confirmed -: power off failed" in text
    assert "detected  presence   ld2410 /dev/serial/by-id/usb-radar" in text
    assert "detected  WARNING 2 presence devices found" in text
    assert "osc       listen 0.0.0.0:9000, 12 in (2 bad, 0 dropped), 40 out" in text
