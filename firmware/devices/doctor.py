"""Live device checks for `humus doctor`: talk to each configured device and say what is wrong.

Each check takes the loaded Config and returns `CheckResult(name, ok, detail, fix_hint)` rows, the
doctor's one result type (`ok=None`: not applicable, e.g. a simulated device). They open real ports, so run them with the show
stopped (`systemctl stop humus`) or expect "busy" answers. `live_checks(ctx)` adapts them to
firmware.appliance.doctor's CHECKS list.
"""
from __future__ import annotations

import glob
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

from firmware.check_result import CheckResult, run_guarded
from firmware.clock import RealClock
from firmware.config.devices import PresenceSerial

SERIAL_HINT = ("check the USB cable and `ls -l /dev/humus-*`; the udev rule in /etc/udev/rules.d/99-humus.rules "
               "must match the adapter (`lsusb`); the user needs the dialout group")


def _port_missing(name: str, port: str) -> CheckResult | None:
    if "://" in port or Path(port).exists():
        return None
    return CheckResult(name, False, f"{port} does not exist", SERIAL_HINT)


# ------------------------------------------------------------------------------------------ DMX
def _enttec_answers(name: str, cfg, t, timeout: float) -> CheckResult:
    """An open DMX USB Pro asked for its serial number and parameters; a plain FTDI cable never answers."""
    try:
        serial_no = t.serial_number(timeout)
        p = t.parameters(timeout)
    except TimeoutError as exc:
        return CheckResult(name, False, f"{cfg.port} opens but {exc}",
                           "not a DMX USB Pro? A plain FTDI cable is type = \"open-dmx\"; "
                           "otherwise unplug and replug the widget")
    return CheckResult(name, True, f"Enttec widget serial {serial_no}, firmware "
                       f"{p.firmware >> 8}.{p.firmware & 0xFF:02d}, break {p.break_us:.0f} us, "
                       f"MAB {p.mab_us:.0f} us, {p.rate_hz} Hz")


def check_dmx(config, timeout: float = 1.0) -> CheckResult:
    cfg = config.dmx
    name = f"dmx {cfg.type}"
    if cfg.type in ("sim", "none"):
        return CheckResult(name, None, "no DMX interface configured")
    if cfg.type in ("enttec-pro", "open-dmx"):
        missing = _port_missing(name, cfg.port)
        if missing:
            return missing
        from firmware.devices.dmx.usb import EnttecProTransport, OpenDmxTransport
        enttec = cfg.type == "enttec-pro"
        t = EnttecProTransport(cfg) if enttec else OpenDmxTransport(cfg)
        try:
            t.open()
            if enttec:
                return _enttec_answers(name, cfg, t, timeout)
        except (OSError, ValueError) as exc:
            return CheckResult(name, False, f"{cfg.port}: {exc}", SERIAL_HINT)
        finally:
            t.close()
        # Open DMX has nothing to ask: a port that opens is all there is to check.
        return CheckResult(name, True, f"{cfg.port} opens at 250000 8N2 (Open DMX timing is best-effort; "
                           "a Pro-style widget or Art-Net/sACN node flickers less)")
    # Network: does the kernel have a route to where we send? (connect() on UDP sends nothing.)
    if cfg.type == "artnet":
        dest = cfg.host
    else:
        from firmware.devices.protocols import sacn
        dest = cfg.host or sacn.multicast_group(cfg.universe)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if cfg.type == "sacn" and cfg.host is None and cfg.interface:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(cfg.interface))
        s.connect((dest, cfg.port))
        src = s.getsockname()[0]
    except OSError as exc:
        hint = ("give the box an address on the lighting network (e.g. 2.0.0.10/8 for Art-Net) "
                + ("and set [dmx] interface to it" if cfg.type == "sacn" else "or use the subnet's broadcast "
                   "address (e.g. 2.255.255.255) as host"))
        return CheckResult(name, False, f"no route to {dest}: {exc.strerror or exc}", hint)
    finally:
        s.close()
    return CheckResult(name, True, f"sending to {dest}:{cfg.port} from {src}")


# ------------------------------------------------------------------------------------- presence
def check_presence(config, timeout: float = 1.5) -> CheckResult:
    cfg = config.presence
    name = f"presence {cfg.type}"
    if cfg.type == "sim":
        return CheckResult(name, None, "simulated visitor")
    if cfg.type == "none":
        return CheckResult(name, None, "no sensor (visitors only through OSC, or auto found none)")
    if isinstance(cfg, PresenceSerial):
        missing = _port_missing(name, cfg.port)
        if missing:
            return missing
    from firmware.devices.presence.table import open_presence
    try:
        sensor = open_presence(cfg, RealClock())
    except Exception as exc:  # GPIO libraries raise their own types
        hint = ("on a Jetson install Jetson.GPIO (pip install humus[jetson]) and add the user to the gpio group"
                if cfg.type in ("distance", "motion") else SERIAL_HINT)
        return CheckResult(name, False, f"cannot open: {exc}", hint)
    try:
        end = time.monotonic() + timeout
        while time.monotonic() < end and sensor.latest() is None:
            time.sleep(0.05)
        r = sensor.latest()
        rejected = f", {sensor.rejected} bad frames" if sensor.rejected else ""
    finally:
        sensor.close()
    if r is None:
        hint = {"ld2410": "the radar talks at 256000 baud; check TX/RX are crossed and it has 5 V",
                "tfmini": "the TFmini talks at 115200 baud; check TX/RX and the 5 V supply",
                "distance": "check echo/trigger pins (echo needs a 5 V -> 3.3 V divider)",
                }.get(cfg.type, "check the wiring")
        return CheckResult(name, False, f"no valid reading within {timeout:g} s{rejected}", hint)
    what = "nobody in range" if r.distance_m is None else f"target at {r.distance_m:.2f} m"
    return CheckResult(name, True, f"reading: {what}{rejected}")


# --------------------------------------------------------------------------------------- camera
def _service_active(unit: str) -> bool | None:
    try:
        out = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() == "active"


def check_camera(config) -> list[CheckResult]:
    cfg = config.camera
    name = f"camera {cfg.type}"
    if cfg.type in ("sim", "none"):
        return [CheckResult(name, None, "no camera configured" if cfg.type == "none" else "simulated camera")]
    if cfg.type == "file":
        ok = Path(cfg.path).exists()
        return [CheckResult(name, ok, f"{cfg.path} {'exists' if ok else 'is missing'}",
                            "" if ok else "set [camera] path to a video file or an image folder")]
    if cfg.type == "picamera2":
        try:
            import picamera2  # noqa: F401
        except ImportError as exc:
            return [CheckResult(name, False, f"picamera2 not importable: {exc}",
                                "picamera2 exists only on Raspberry Pi OS (apt install python3-picamera2)")]
        return [CheckResult(name, True, "picamera2 available")]
    out = []
    if cfg.type == "argus":
        try:
            import cv2
            from firmware.devices.camera.opencv import opencv_has_gstreamer
            gst = opencv_has_gstreamer(cv2)
        except ImportError:
            gst = False
        out.append(CheckResult("camera opencv", gst, "OpenCV with GStreamer" if gst else
                               "this OpenCV has no GStreamer (pip's opencv never does)",
                               "" if gst else "use JetPack's python3-opencv: recreate the venv with "
                               "--system-site-packages and uninstall opencv-python-headless from it"))
        active = _service_active("nvargus-daemon")
        out.append(CheckResult("camera nvargus-daemon", active,
                               {True: "running", False: "not running", None: "cannot ask systemd"}[active],
                               "" if active else "sudo systemctl restart nvargus-daemon"))
    else:
        exists = Path(cfg.device).exists()
        out.append(CheckResult(name, exists, f"{cfg.device} " + (f"-> {os.path.realpath(cfg.device)}" if exists
                                                                 else "does not exist"),
                               "" if exists else "plug the USB camera in; the udev rule names it "
                               "/dev/humus-camera (or use /dev/v4l/by-path/...)"))
    return out


# -------------------------------------------------------------------------------------- display
def projector_connectors(sysfs: str = "/sys/class/drm") -> dict[str, str]:
    """DRM connector -> 'connected' / 'disconnected' (HDMI-A-1 etc.), from sysfs."""
    out = {}
    for status in sorted(glob.glob(f"{sysfs}/card*-*/status")):
        try:
            out[Path(status).parent.name.split("-", 1)[1]] = Path(status).read_text().strip()
        except OSError:
            continue
    return out


def check_display(config, sysfs: str = "/sys/class/drm") -> CheckResult:
    cfg = config.display
    if cfg.type != "pygame":
        return CheckResult("display", None, f"{cfg.type}: no projector used")
    conns = projector_connectors(sysfs)
    if not conns:
        return CheckResult("projector", False, "no DRM connectors found", "is the display driver loaded? (nvidia-drm)")
    on = [c for c, s in conns.items() if s == "connected"]
    if not on:
        return CheckResult("projector", False, "nothing connected on " + ", ".join(conns),
                           "switch the projector on and check the HDMI cable; the show picks it up by itself")
    return CheckResult("projector", True, f"connected on {', '.join(on)}")


def check_projector(config) -> CheckResult:
    """[projector]: PJLink asked for its power state (harmless); for CEC the tool and the adapter."""
    cfg = config.projector
    if cfg.type in ("none", "sim"):
        return CheckResult(f"projector {cfg.type}", None, "projector power not controlled")
    if cfg.type == "cec":
        import shutil
        if shutil.which(cfg.command) is None:
            return CheckResult("projector cec", False, f"{cfg.command} not found", "sudo apt install v4l-utils")
        ok = Path(cfg.device).exists()
        return CheckResult("projector cec", ok, f"{cfg.device} " + ("present" if ok else "missing"),
                           None if ok else "is the HDMI-CEC adapter enabled in the device tree?")
    from firmware.devices.projector.pjlink import PJLinkProjector
    try:
        on = PJLinkProjector(cfg).is_on()
    except OSError as exc:
        return CheckResult("projector pjlink", False, str(exc),
                           "check the address, that network standby (PJLink) is enabled, and the password")
    return CheckResult("projector pjlink", True, f"{cfg.host} answers: power {'on' if on else 'off'}")


CHECKS: list[Callable] = [check_dmx, check_presence, check_camera, check_display, check_projector]


def run_device_checks(config, checks: list[Callable] | None = None) -> list[CheckResult]:
    """Every check, in order; a check that raises becomes a failed row (the doctor never crashes).
    `type = "auto"` sections are checked as what a scan finds now."""
    from firmware.devices.hotplug import resolve_config
    config, detection = resolve_config(config)
    rows: list[CheckResult] = []
    if detection is not None:
        rows.extend(CheckResult(f"auto {role}", None, what) for role, what in detection.summary().items())
        rows.extend(CheckResult("auto", False, w, "unplug the one not wanted, or pin it: humus doctor --detect")
                    for w in detection.warnings)
    return rows + run_guarded(CHECKS if checks is None else checks, config)


def live_checks(ctx) -> list:
    """Adapter for firmware.appliance.doctor.CHECKS: loads the box config, runs the device checks."""
    from firmware.config.errors import ConfigError
    from firmware.config.load import load_config
    if not ctx.on_box:
        return [CheckResult("devices (live)", None, "not checked in a --root rehearsal")]
    try:
        config = load_config(ctx.config if Path(ctx.config).is_file() else None, search=False)
    except ConfigError as exc:
        return [CheckResult("devices (live)", None, f"config does not load: {exc}")]
    return run_device_checks(config)
