"""`humus doctor`: small checks that each say what is wrong and how to fix it.

A check is a function `check(ctx) -> CheckResult | list[CheckResult]`. Other parts of
the firmware add theirs by appending to CHECKS (an explicit list, run in order):

    from firmware.appliance.doctor import CHECKS, CheckResult
    def check_projector(ctx): ...
    CHECKS.append(check_projector)

`ok=None` means "skipped / not applicable here" (e.g. systemd checks in a --root rehearsal).
A check that raises is reported as failed, never crashes the doctor. The result type, that loop and
the rendering are firmware/check_result.py's, shared with the live device checks
(firmware/devices/doctor.py); this module only contributes checks.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from firmware.check_result import CheckResult, run_guarded

from .bundle_keys import load_trusted_keys
from .bundle_schema import BundleError
from .release_layout import Layout, current_version, previous_version, verify_release
from .service import SAFE_SERVICE, SERVICE, Systemctl
from .statusfile import read_status

DEVICE_LINKS = {  # stable names from systemd/udev/99-humus.rules
    "dmx": ("dev/humus-dmx", "DMX interface (Enttec / FTDI)"),
    "radar": ("dev/humus-radar", "presence radar (USB serial)"),
    "camera": ("dev/humus-camera", "camera (V4L2)"),
}
GROUPS = ("video", "dialout", "gpio", "render")
MIN_FREE_BYTES = 1 << 30


@dataclass
class Context:
    root: Path = Path("/")
    config_path: Path | None = None
    on_box: bool = True                      # False for --root rehearsals: skip live systemd/device checks
    systemctl: Systemctl = field(default_factory=Systemctl)

    @property
    def layout(self) -> Layout:
        return Layout(self.root)

    @property
    def config(self) -> Path:
        return self.config_path or self.root / "etc/humus/humus.toml"


def check_config(ctx: Context) -> CheckResult:
    if not ctx.config.is_file():
        return CheckResult("config", False, f"{ctx.config} is missing",
                           "run ./install.sh (it installs the example config) or copy humus.example.toml there")
    try:
        from firmware.config.errors import ConfigError
        from firmware.config.load import config_warnings, load_config
    except ImportError as exc:   # a half-installed release (pydantic missing): say so, check the rest
        return CheckResult("config", None, f"cannot validate {ctx.config}: firmware.config unavailable ({exc})")
    try:
        config = load_config(str(ctx.config))
    except ConfigError as exc:
        return CheckResult("config", False, f"{ctx.config}: {exc}", f"edit {ctx.config}; the example config documents each key")
    return CheckResult("config", True, f"{ctx.config} loads", warning="; ".join(config_warnings(config)))


def check_release(ctx: Context) -> CheckResult:
    layout = ctx.layout
    cur = current_version(layout)
    if cur is None:
        return CheckResult("release", False, f"{layout.current} does not point at an installed release",
                           "run ./install.sh, or `humus update BUNDLE`")
    problems = verify_release(layout.release_dir(cur), hashes=True)
    if problems:
        return CheckResult("release", False, f"release {cur} is damaged: {problems[0]}"
                           + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""),
                           "`humus rollback`, then re-send the bundle with `humus update`")
    prev = previous_version(layout)
    return CheckResult("release", True, f"{cur} intact" + (f", previous {prev}" if prev else ""))


def check_keys(ctx: Context) -> CheckResult:
    try:
        keys = load_trusted_keys(ctx.layout.keys_dir)
    except BundleError as exc:
        return CheckResult("update keys", False, str(exc), "replace the file with the studio's .pub key")
    if not keys:
        return CheckResult("update keys", False, f"no *.pub in {ctx.layout.keys_dir}: updates will be refused",
                           "copy the studio's public key: install.sh --key studio.pub")
    return CheckResult("update keys", True, ", ".join(f"{k.name} ({k.key_id})" for k in keys.values()))


def check_service(ctx: Context) -> list[CheckResult]:
    if not ctx.on_box:
        return [CheckResult("service", None, "not checked in a --root rehearsal")]
    if shutil.which(ctx.systemctl.binary) is None:
        return [CheckResult("service", None, "systemctl not found: not a systemd machine")]
    state = ctx.systemctl.is_active()
    safe = Systemctl(ctx.systemctl.binary, SAFE_SERVICE).is_active()
    if safe == "active":
        return [CheckResult("service", False, f"SAFE MODE: {SERVICE} crashed repeatedly and {SAFE_SERVICE} took over",
                            "read `humus logs`, fix the cause, then: sudo systemctl reset-failed humus && "
                            "sudo systemctl start humus")]
    if state != "active":
        return [CheckResult("service", False, f"{SERVICE} is {state}",
                            "sudo systemctl start humus; `humus logs` shows why it stopped")]
    return [CheckResult("service", True, f"{SERVICE} active")]


def check_status(ctx: Context) -> CheckResult:
    path = ctx.layout.status_file
    try:
        status = read_status(path)
    except ValueError as exc:
        return CheckResult("status", False, str(exc), "")
    if status is None:
        return CheckResult("status", None if not ctx.on_box else False, f"no {path}: the show has not run since boot",
                           "sudo systemctl start humus")
    age = time.time() - status.get("updated_at", 0)
    if age > 5:
        return CheckResult("status", False, f"last status {age:.0f} s ago (state {status.get('state')})",
                           "the main loop is stuck or stopped: `humus logs`")
    bad = {n: d for n, d in (status.get("devices") or {}).items() if not d.get("ok")}
    if status.get("state") in ("fault", "safe", "starting", "stopping") or bad:
        detail = f"state {status.get('state')}" + "".join(f"; {n}: {d.get('detail')}" for n, d in bad.items())
        return CheckResult("status", False, detail, "check the devices named above; `humus logs` has details")
    return CheckResult("status", True, f"{status.get('state')}, {status.get('fps')} fps on {status.get('engine')}")


def check_devices(ctx: Context) -> list[CheckResult]:
    if not ctx.on_box:
        return [CheckResult(f"device {n}", None, "not checked in a --root rehearsal") for n in DEVICE_LINKS]
    out = []
    for name, (rel_path, what) in DEVICE_LINKS.items():
        p = ctx.root / rel_path
        if p.exists():
            out.append(CheckResult(f"device {name}", True, f"/{rel_path} -> {os.path.realpath(p)}"))
        else:
            out.append(CheckResult(f"device {name}", False, f"/{rel_path} missing: {what} not plugged in or not recognised",
                                   "check the cable; `udevadm monitor` while replugging; rules in "
                                   "/etc/udev/rules.d/99-humus.rules (match the USB ids from `lsusb`)"))
    return out


def check_user(ctx: Context) -> CheckResult:
    group_file = ctx.root / "etc/group"
    try:
        lines = group_file.read_text().splitlines()
    except OSError as exc:
        return CheckResult("user", None, f"cannot read {group_file}: {exc.strerror}")
    members = {ln.split(":")[0]: ln.split(":")[3].split(",") for ln in lines if ln.count(":") >= 3}
    missing = [g for g in GROUPS if "humus" not in members.get(g, [])]
    if missing:
        return CheckResult("user", False, f"user humus is not in group(s) {', '.join(missing)}",
                           f"sudo usermod -aG {','.join(missing)} humus (or re-run install.sh)")
    return CheckResult("user", True, f"humus in {', '.join(GROUPS)}")


def check_engine(ctx: Context) -> CheckResult:
    found = []
    try:
        import tensorrt  # noqa: F401  (JetPack's, via --system-site-packages)
        found.append(f"tensorrt {getattr(tensorrt, '__version__', '?')}")
    except Exception:
        pass
    try:
        import onnxruntime
        providers = onnxruntime.get_available_providers()
        found.append(f"onnxruntime {onnxruntime.__version__} [{', '.join(providers)}]")
        gpu = any(p in providers for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider"))
    except Exception:
        gpu = False
    if not found:
        return CheckResult("engine", False, "neither tensorrt nor onnxruntime can be imported",
                           "re-run install.sh (onnxruntime-gpu comes from the Jetson wheel index)")
    if not gpu and "tensorrt" not in found[0]:
        return CheckResult("engine", False if ctx.on_box else None, "; ".join(found) + ": CPU only, the model will be slow",
                           "install onnxruntime-gpu for JetPack 6: HUMUS_ORT_INDEX=... ./install.sh")
    return CheckResult("engine", True, "; ".join(found))


def check_gpu_nodes(ctx: Context) -> CheckResult:
    if not ctx.on_box:
        return CheckResult("gpu", None, "not checked in a --root rehearsal")
    nodes = [p for p in ("dev/nvmap", "dev/nvgpu/igpu0/ctrl", "dev/dri/renderD128") if (ctx.root / p).exists()]
    if not nodes:
        return CheckResult("gpu", False, "no /dev/nvmap, /dev/nvgpu or /dev/dri render node",
                           "this is not a Jetson, or the NVIDIA driver did not load (dmesg | grep -i nvgpu)")
    return CheckResult("gpu", True, ", ".join("/" + n for n in nodes))


def check_display(ctx: Context) -> CheckResult:
    target = ctx.root / "etc/systemd/system/default.target"
    desktop = os.path.realpath(target).endswith("graphical.target") if target.is_symlink() else None
    if desktop:
        return CheckResult("display", False, "boots into the desktop (default.target is graphical.target)",
                           "re-run install.sh (kiosk step), or: sudo systemctl set-default multi-user.target")
    if ctx.on_box and not list((ctx.root / "dev/dri").glob("card*")):
        return CheckResult("display", False, "no /dev/dri/card*: no KMS display device",
                           "check the HDMI cable and that nvidia-drm is loaded with modeset=1")
    return CheckResult("display", True, "kiosk: no desktop" + (", KMS device present" if ctx.on_box else ""))


def check_disk(ctx: Context) -> list[CheckResult]:
    out = []
    for rel_path in ("opt/humus", "var/lib/humus"):
        p = ctx.root / rel_path
        if not p.exists():
            continue
        free = shutil.disk_usage(p).free
        ok = free >= MIN_FREE_BYTES
        out.append(CheckResult(f"disk /{rel_path}", ok, f"{free / 2**30:.1f} GiB free",
                               "" if ok else "humus releases; old ones are pruned on update (keep 3)"))
    return out


def check_clock(ctx: Context) -> CheckResult:
    """Is the wall clock synchronised? A warning, never a failure: the show runs either way, and
    `[schedule] unsynced` says what it does meanwhile. Asks what the show asks (the timesyncd files,
    under --root in a rehearsal) and, on the box, the kernel too: the doctor is not under the
    show's ProtectClock."""
    try:
        from firmware.config.errors import ConfigError
        from firmware.config.load import load_config
        from firmware.config.venue import TimeSyncSystem
        from firmware.devices.timesync.system import gather, judge, kernel_maxerror_s
    except ImportError as exc:   # a half-installed release: say so, check the rest
        return CheckResult("clock", None, f"cannot check: {exc}")
    try:
        config = load_config(ctx.config) if ctx.config.is_file() else None
    except ConfigError:
        config = None   # the config row says why; the clock is still worth a look
    source = config.timesync if config is not None else TimeSyncSystem()
    if source.type != "system":
        return CheckResult("clock", None if source.type == "sim" else True, f'[timesync] type = "{source.type}": '
                           + ("simulated" if source.type == "sim" else "trusted without asking"))
    root = source.root if source.root != Path("/") else ctx.root
    synced, detail = judge(gather(root, kernel_maxerror_s if ctx.on_box and source.kernel else None))
    if synced:
        return CheckResult("clock", True, f"synchronised: {detail}")
    schedule = config.schedule if config is not None else None
    if schedule is None:
        return CheckResult("clock", True, f"NOT synchronised: {detail} (no [schedule]: the show does not "
                           "depend on it)")
    return CheckResult("clock", True, f"NOT synchronised: {detail}",
                       warning=f'the opening hours wait for it: [schedule] unsynced = "{schedule.unsynced}" '
                       "decides meanwhile. Give the box NTP (`timedatectl set-ntp true` and a network "
                       "with a time server) or, with an RTC battery and no network, set the clock once "
                       '(`timedatectl set-time`) and write [timesync] type = "trusted"')


CHECKS: list[Callable[[Context], CheckResult | list[CheckResult]]] = [
    check_config, check_release, check_keys, check_service, check_status, check_clock, check_devices,
    check_user, check_engine, check_gpu_nodes, check_display, check_disk,
]


def live_device_checks() -> list[Callable[[Context], list[CheckResult]]]:
    """The device team's checks that open the real ports (firmware.devices.doctor), if present.
    They are run only with the show stopped (it holds the ports) or on request: see cmd_doctor."""
    try:
        from firmware.devices.doctor import live_checks
    except ImportError:
        return []
    return [live_checks]


def run_checks(ctx: Context, checks=None) -> list[CheckResult]:
    return run_guarded(CHECKS if checks is None else checks, ctx)
