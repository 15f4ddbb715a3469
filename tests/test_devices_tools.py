"""`humus calibrate` and the live `doctor` device checks, against emulated devices."""
from __future__ import annotations

import argparse
import io


from firmware.check_result import CheckResult
from firmware.config.load import parse_config
from firmware.config.schema import Config
from firmware.devices.emulators.radar import LD2410Emulator
from firmware.devices.emulators.widget import EnttecEmulator


def _run_cli(argv):
    from firmware.devices.calibrate import register
    p = argparse.ArgumentParser(prog="humus")
    register(p.add_subparsers())
    args = p.parse_args(argv)
    return args.func(args)


def test_calibrate_with_radar_shows_readings_and_thresholds(tmp_path, capsys):
    emu = LD2410Emulator(tmp_path / "radar", distance_cm=150).start()
    try:
        cfgfile = tmp_path / "humus.toml"
        cfgfile.write_text(f'[presence]\ntype = "ld2410"\nport = "{emu.port.path}"\n'
                           "[show]\ntrigger_m = 1.8\nrelease_m = 2.6\ndwell_s = 0.1\n")
        rc = _run_cli(["calibrate", "--config", str(cfgfile), "--duration", "0.6", "--rate", "20"])
    finally:
        emu.close()
    out = capsys.readouterr().out
    assert rc == 0
    assert "trigger < 1.80 m (T), release > 2.60 m (R)" in out
    lines = [ln for ln in out.splitlines() if ln.strip().endswith(("PRESENT", "absent")) or " m |" in ln]
    assert any(" 1.50 m |" in ln and "NEAR: would trigger" in ln for ln in lines)
    assert "PRESENT" in out                      # the show's own filter, after the dwell


def test_calibrate_silent_sensor_exits_1(tmp_path, capsys):
    cfg = parse_config({"presence": {"type": "ld2410", "port": str(tmp_path / "none")}})
    from firmware.devices.calibrate import calibrate
    buf = io.StringIO()
    assert calibrate(cfg, duration=0.3, rate_hz=20, out=buf) == 1
    assert "no readings" in buf.getvalue() and "cannot open" in buf.getvalue()


def test_calibrate_bad_config_exits_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[presence]\ntype = "ld2410"\nprot = "/dev/x"\n')
    assert _run_cli(["calibrate", "--config", str(bad), "--duration", "0.1"]) == 2


def test_doctor_queries_enttec_serial(tmp_path):
    from firmware.devices.doctor import check_dmx
    emu = EnttecEmulator(tmp_path / "dmx").start()
    try:
        row = check_dmx(parse_config({"dmx": {"type": "enttec-pro", "port": emu.port.path}}))
    finally:
        emu.close()
    assert row.ok is True and "serial 12345678" in row.detail and "firmware 1.68" in row.detail


def test_doctor_silent_widget_and_missing_port(tmp_path):
    from firmware.devices.emulators.pty import PtyPort
    from firmware.devices.doctor import check_dmx
    dev = PtyPort(tmp_path / "ftdi")            # opens, never answers: an FTDI cable, not a Pro
    try:
        row = check_dmx(parse_config({"dmx": {"type": "enttec-pro", "port": dev.path}}), timeout=0.2)
    finally:
        dev.close()
    assert row.ok is False and "no label 10 reply" in row.detail and "open-dmx" in row.fix_hint
    row = check_dmx(parse_config({"dmx": {"type": "enttec-pro", "port": str(tmp_path / "gone")}}))
    assert row.ok is False and "does not exist" in row.detail and "udev" in row.fix_hint


def test_doctor_presence_and_network_and_camera(tmp_path):
    from firmware.devices.doctor import check_camera, check_dmx, check_presence
    emu = LD2410Emulator(tmp_path / "radar", distance_cm=220).start()
    try:
        row = check_presence(parse_config({"presence": {"type": "ld2410", "port": emu.port.path}}))
    finally:
        emu.close()
    assert row == CheckResult("presence ld2410", True, "reading: target at 2.20 m", "")
    row = check_dmx(parse_config({"dmx": {"type": "artnet", "host": "127.0.0.1"}}))
    assert row.ok is True and "from 127.0.0.1" in row.detail
    rows = check_camera(parse_config({"camera": {"type": "file", "path": str(tmp_path / "nope.mp4")}}))
    assert rows[0].ok is False and "missing" in rows[0].detail


def test_doctor_projector_from_sysfs(tmp_path):
    from firmware.devices.doctor import check_display
    cfg = parse_config({"display": {"type": "pygame"}})
    for name, status in (("card0-HDMI-A-1", "disconnected"), ("card0-DP-1", "disconnected")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "status").write_text(status + "\n")
    row = check_display(cfg, sysfs=str(tmp_path))
    assert row.ok is False and "HDMI-A-1" in row.detail and "switch the projector on" in row.fix_hint
    (tmp_path / "card0-HDMI-A-1" / "status").write_text("connected\n")
    assert check_display(cfg, sysfs=str(tmp_path)) == CheckResult("projector", True, "connected on HDMI-A-1", "")


def test_run_device_checks_never_crashes():
    from firmware.devices.doctor import run_device_checks

    def boom(config):
        raise RuntimeError("driver exploded")

    rows = run_device_checks(Config(), checks=[boom])
    # the same crash row the appliance checks get: one loop runs both
    assert rows == [CheckResult("boom", False, "check crashed: RuntimeError('driver exploded')",
                                "report this as a firmware bug")]
    assert all(r.ok is None for r in run_device_checks(Config())[:2])   # sim devices: not applicable
