"""type = "auto": probes on pty emulators behind a fake /dev tree, cameras in a fake sysfs, a device
plugged after start picked up by the rescan, the box swapping it in, and `humus doctor --detect`."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from firmware.config.load import parse_config
from firmware.devices.detect import V4L2_CAP_VIDEO_CAPTURE, Scanner, find_cameras, probe_serial
from firmware.devices.emulators.lidar import TFminiEmulator
from firmware.devices.emulators.pty import PtyPort
from firmware.devices.emulators.radar import LD2410Emulator
from firmware.devices.emulators.widget import EnttecEmulator
from firmware.devices.hotplug import Hotplug, pin_lines
from firmware.devices.presence.uart import LD2410Sensor

GET_SERIAL = bytes.fromhex("7e 0a 00 00 e7")   # Enttec API: label 10, no data


@pytest.fixture
def dev(tmp_path):
    d = tmp_path / "dev"
    (d / "serial" / "by-id").mkdir(parents=True)
    return d


def scanner(dev, tmp_path, **kw):
    return Scanner([str(dev / "serial" / "by-id" / "*"), str(dev / "ttyUSB*")], [str(dev / "video*")],
                   tmp_path / "sys", probe_s=0.25, **kw)


def test_each_device_is_recognised_without_harm(dev):
    radar = LD2410Emulator(dev / "serial/by-id/usb-radar").start()
    lidar = TFminiEmulator(dev / "serial/by-id/usb-lidar").start()
    widget = EnttecEmulator(dev / "serial/by-id/usb-widget").start()
    try:
        assert probe_serial(radar.port.path, 0.25).kind == "ld2410"
        assert radar.commands == []                      # identified by listening: nothing written
        assert probe_serial(lidar.port.path, 0.25).kind == "tfmini"
        found = probe_serial(widget.port.path, 0.25)
        assert (found.kind, found.detail) == ("enttec-pro", "serial 12345678")
        assert widget.state.messages == [(10, b"")]      # the one request; no universe, no set-up
    finally:
        for d in (radar, lidar, widget):
            d.close()


def test_silent_adapter_gets_only_the_serial_request(dev):
    silent = PtyPort(dev / "ttyUSB0")
    try:
        assert probe_serial(silent.path, 0.1) is None
        assert silent.read(0.1) == GET_SERIAL             # no DMX universe, no start code, nothing else
    finally:
        silent.close()


def test_unknown_adapter_is_open_dmx_only_when_configured(dev, tmp_path):
    silent = PtyPort(dev / "ttyUSB0")
    try:
        det = scanner(dev, tmp_path).scan()
        assert det.chosen("dmx") is None and det.unknown == (str(dev / "ttyUSB0"),)
        det = scanner(dev, tmp_path, unknown_as_open_dmx=True).scan()
        assert det.chosen("dmx").kind == "open-dmx"
    finally:
        silent.close()


def test_stable_name_first_and_two_of_a_kind_warn(dev, tmp_path):
    a = LD2410Emulator(dev / "serial/by-id/usb-radar-a").start()
    b = LD2410Emulator(dev / "serial/by-id/usb-radar-b").start()
    # the kernel name of radar b, as udev would also show it: found once, under its by-id name
    os.symlink(os.path.realpath(b.port.path), dev / "ttyUSB0")
    try:
        det = scanner(dev, tmp_path).scan()
        assert [f.path for f in det.found] == [a.port.path, b.port.path]
        assert det.chosen("presence").path == a.port.path
        assert len(det.warnings) == 1 and "usb-radar-b" in det.warnings[0]
    finally:
        a.close()
        b.close()


def fake_cameras(tmp_path, nodes):
    """nodes: {index: (sysfs name, caps)}; /dev/videoN are plain files, caps answered by querycap."""
    caps = {}
    for i, (name, cap) in nodes.items():
        d = tmp_path / "sys" / "class" / "video4linux" / f"video{i}"
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
        node = tmp_path / "dev" / f"video{i}"
        node.parent.mkdir(exist_ok=True)
        node.write_bytes(b"")
        caps[str(node)] = cap
    return lambda path: caps[path]


def test_cameras_argus_then_v4l2_capture_then_none(tmp_path):
    q = fake_cameras(tmp_path, {0: ("vi-output, imx219 9-0010", 0), 1: ("UVC Camera", V4L2_CAP_VIDEO_CAPTURE),
                                2: ("UVC Camera", 0x00800000)})       # 2: the UVC metadata node
    found = find_cameras([str(tmp_path / "dev" / "video*")], tmp_path / "sys", q)
    assert [(f.kind, os.path.basename(f.path)) for f in found] == [("argus", "video0"), ("v4l2", "video1")]
    assert found[0].index == 0
    (tmp_path / "sys/class/video4linux/video0/name").write_text("something else\n")
    found = find_cameras([str(tmp_path / "dev" / "video*")], tmp_path / "sys", lambda p: {
        str(tmp_path / "dev/video0"): 0}.get(p, q(p)))
    assert [f.kind for f in found] == ["v4l2"]
    assert find_cameras([str(tmp_path / "nothing*")], tmp_path / "sys", q) == []


def auto_config(dev, tmp_path, **extra):
    data = {"presence": {"type": "auto", "stale_after_s": 1.0}, "dmx": {"type": "auto"},
            "camera": {"type": "auto"},
            "devices": {"serial_ports": [str(dev / "serial/by-id/*"), str(dev / "ttyUSB*")],
                        "cameras": [str(dev / "video*")], "sysfs": str(tmp_path / "sys"),
                        "rescan_s": 0.2, "probe_s": 0.25}}
    data.update(extra)
    return parse_config(data, "<test>")


def test_a_radar_plugged_after_start_is_found(dev, tmp_path):
    hp = Hotplug(auto_config(dev, tmp_path))
    radar = None
    try:
        assert hp.scan_now().chosen("presence") is None
        hp.start()
        radar = LD2410Emulator(dev / "serial/by-id/usb-radar").start()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5.0:
            det = hp.latest.get()
            if det.chosen("presence") is not None:
                break
            time.sleep(0.02)
        assert det.chosen("presence").kind == "ld2410"
        print(f"found after {time.monotonic() - t0:.2f} s")
    finally:
        hp.close()
        if radar:
            radar.close()


def test_box_swaps_in_a_plugged_radar_and_widget(dev, tmp_path, tiny_model):
    from firmware.box.conductor import Box
    from firmware.clock import RealClock
    config = auto_config(dev, tmp_path, display={"type": "headless", "width": 64, "height": 64, "fps": 20.0},
                         model={"dir": str(tmp_path / "no-model")})
    box = Box(config, RealClock(), threaded=False)
    radar = widget = None
    try:
        assert box.config.presence.type == "none" and box.config.dmx.type == "none"
        assert box.config.camera.type == "none"
        box.step()
        box.devices.auto.start()                                  # the rescan thread (a threaded box starts it)
        radar = LD2410Emulator(dev / "serial/by-id/usb-radar", distance_cm=150).start()
        widget = EnttecEmulator(dev / "serial/by-id/usb-widget").start()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5 and not (isinstance(box.devices.presence, LD2410Sensor)
                                                 and box.config.dmx.type == "enttec-pro"):
            box.step()
            time.sleep(0.02)
        assert isinstance(box.devices.presence, LD2410Sensor) and box.config.presence.port == radar.port.path
        assert box.config.dmx.type == "enttec-pro"
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3 and (box.devices.presence.latest() is None or not widget.state.frames):
            box.step()
            time.sleep(0.05)
        assert box.devices.presence.latest().distance_m == 1.5
        assert widget.state.frames                        # universes on the wire of the new widget
        # the ports in use are never probed again
        probes_before = len(widget.state.messages)
        box.devices.auto.hotplug.scan_now()
        assert [m for m in widget.state.messages[probes_before:] if m[0] == 10] == []
        assert box.devices.auto.status()["presence"].startswith("ld2410 ")
    finally:
        box.close()
        for d in (radar, widget):
            if d:
                d.close()


def test_doctor_detect_prints_pinning_lines(dev, tmp_path):
    radar = LD2410Emulator(dev / "serial/by-id/usb-radar").start()
    try:
        cfg = tmp_path / "humus.toml"
        cfg.write_text(f'[presence]\ntype = "auto"\n[devices]\nserial_ports = ["{dev}/serial/by-id/*"]\n'
                       f'cameras = ["{dev}/video*"]\nsysfs = "{tmp_path}/sys"\nprobe_s = 0.25\n')
        r = subprocess.run([sys.executable, "-m", "firmware.cli", "doctor", "--detect", "--config", str(cfg)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert f'[presence]\ntype = "ld2410"\nport = "{radar.port.path}"' in r.stdout
        assert '[camera]\ntype = "none"' in r.stdout and '[dmx]\ntype = "none"' in r.stdout
        # the lines it prints are a valid config
        pinned = tmp_path / "pinned.toml"
        pinned.write_text("\n".join(ln for ln in r.stdout.splitlines() if not ln.startswith("#")))
        from firmware.config.load import load_config
        assert load_config(pinned).presence.port == radar.port.path
    finally:
        radar.close()


def test_pin_lines_for_a_camera_and_warnings(dev, tmp_path):
    q = fake_cameras(tmp_path, {0: ("vi-output, imx477 9-001a", 0)})
    config = auto_config(dev, tmp_path)
    det = Scanner([], [str(tmp_path / "dev" / "video*")], tmp_path / "sys", querycap=q).scan()
    text = pin_lines(det, config)
    assert '[camera]\ntype = "argus"\nsensor_id = 0' in text


def test_bench_detection_runs_its_plugs():
    from firmware.bench.venue import bench_detection
    r = bench_detection(plugs=2, rescan_s=0.2, probe_s=0.1)
    assert r["plugs"] == 2 and 0 < r["median_s"] <= r["max_s"]


def test_a_sensor_that_starts_late_is_probed_again(dev, tmp_path, monkeypatch):
    import firmware.devices.detect as detect
    radar = LD2410Emulator(dev / "ttyUSB0")             # its port is there, the radar still booting
    sc = scanner(dev, tmp_path)
    try:
        assert sc.scan().unknown == (radar.port.path,)
        radar.start()
        assert sc.scan().unknown == (radar.port.path,)      # not probed again at once
        monkeypatch.setattr(detect, "UNKNOWN_RETRY_S", 0.0)
        assert sc.scan().chosen("presence").kind == "ld2410"
        silent = PtyPort(dev / "ttyUSB1")                # a port that stays silent is probed a
        for _ in range(detect.UNKNOWN_RETRIES + 2):          # bounded number of times
            sc.scan()
        writes = silent.read(0.1)
        assert writes == GET_SERIAL * detect.UNKNOWN_RETRIES
        silent.close()
    finally:
        radar.close()


def test_doctor_checks_auto_devices_as_found(dev, tmp_path):
    from firmware.devices.doctor import check_camera, check_dmx, check_presence, run_device_checks
    radar = LD2410Emulator(dev / "serial/by-id/usb-radar", distance_cm=250).start()
    try:
        rows = {r.name: r for r in run_device_checks(auto_config(dev, tmp_path),
                                                     [check_presence, check_dmx, check_camera])}
        assert rows["auto presence"].detail == f"ld2410 {radar.port.path}"
        assert rows["presence ld2410"].ok is True and "2.50 m" in rows["presence ld2410"].detail
        assert rows["auto dmx"].detail == "none found" and rows["dmx none"].ok is None
    finally:
        radar.close()


def test_safe_mode_finds_the_widget(dev, tmp_path):
    from firmware.clock import RealClock
    from firmware.safe import run_safe
    from firmware.show.lights import safe_universe
    widget = EnttecEmulator(dev / "serial/by-id/usb-widget").start()
    try:
        config = auto_config(dev, tmp_path, display={"type": "headless", "width": 64, "height": 64})
        assert run_safe(config, duration_s=0.6, clock=RealClock(), stopper=_Stopper()) == 0
        want = safe_universe(config.lights, "calm", 512)
        assert widget.state.frames and widget.state.frames[-1][1] == want
    finally:
        widget.close()


class _Stopper:
    def __init__(self):
        import threading
        self.event = threading.Event()


def test_an_event_rescans_at_once(dev, tmp_path):
    """What a udev event does (kick): a rescan now, not at the next rescan_s."""
    config = auto_config(dev, tmp_path)
    config = config.model_copy(update={"devices": config.devices.model_copy(update={"rescan_s": 60.0})})
    hp = Hotplug(config)
    radar = None
    try:
        hp.scan_now()
        hp.start()
        radar = LD2410Emulator(dev / "serial/by-id/usb-radar").start()
        hp.kick()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5 and hp.latest.get().chosen("presence") is None:
            time.sleep(0.02)
        assert hp.latest.get().chosen("presence").kind == "ld2410" and hp.scans >= 2
    finally:
        hp.close()
        if radar:
            radar.close()
