"""`type = "auto"` at run time: detect at start, turn what was found into concrete config sections,
and keep looking (udev events, plus a rescan every `[devices] rescan_s`) so a device plugged in after
boot is used within seconds.

The rescans run on a thread of their own (a probe listens for up to ~1 s per new port); the box only
takes the newest `Detection` in its frame loop and swaps a device in when its role had none, or when
the device in use has vanished and another one of its kind is there. A working device is never
replaced by a newly plugged one: the show does not jump between sensors.
"""
from __future__ import annotations

import logging
import os
import select
import socket
import threading

from firmware.config.devices import (CameraArgus, CameraNone, CameraV4L2, DmxEnttecPro, DmxNone, DmxOpenDmx,
                                     PresenceLD2410, PresenceNone, PresenceTFmini)
from firmware.devices.base import Latest
from firmware.devices.detect import Detection, Found, scanner_for

log = logging.getLogger("humus.detect")
ROLES = ("camera", "presence", "dmx")
UEVENT_SUBSYSTEMS = (b"SUBSYSTEM=tty", b"SUBSYSTEM=video4linux", b"SUBSYSTEM=usb-serial")
UDEV_SETTLE_S = 0.3   # udev makes the /dev/serial/by-id links a moment after the kernel event


def auto_roles(config) -> list[str]:
    return [r for r in ROLES if getattr(config, r).type == "auto"]


def resolve(role: str, section, found: Found | None):
    """The concrete config section for an auto `section`, from what was found (None: nothing)."""
    common = section.model_dump(exclude={"type", "min_energy", "min_strength", "unknown_as_open_dmx"})
    if role == "camera":
        if found is None:
            return CameraNone(type="none")
        if found.kind == "argus":
            return CameraArgus(type="argus", sensor_id=found.index, **common)
        return CameraV4L2(type="v4l2", device=found.path, **common)
    if role == "presence":
        if found is None:
            return PresenceNone(type="none", **common)
        if found.kind == "ld2410":
            return PresenceLD2410(type="ld2410", port=found.path, min_energy=section.min_energy, **common)
        return PresenceTFmini(type="tfmini", port=found.path, min_strength=section.min_strength, **common)
    if found is None:
        return DmxNone(type="none")
    model = DmxEnttecPro if found.kind == "enttec-pro" else DmxOpenDmx
    return model(type=found.kind, port=found.path, **common)


def resolve_config(config, only: tuple[str, ...] = ROLES):
    """One scan now, and `config` with its auto sections (of `only`) made concrete, for the doctor,
    calibrate and safe mode: (config, Detection or None when nothing is auto)."""
    roles = [r for r in auto_roles(config) if r in only]
    if not roles:
        return config, None
    det = scanner_for(config, roles).scan()
    return config.model_copy(update={r: resolve(r, getattr(config, r), det.chosen(r)) for r in roles}), det


def pin_lines(detection: Detection, config) -> str:
    """`humus doctor --detect`: the config lines that pin what was found (no more guessing)."""
    out = []
    for role in ROLES:
        cfg = resolve(role, _as_auto(role, getattr(config, role)), detection.chosen(role))
        out.append(f"[{role}]")
        out.append(f'type = "{cfg.type}"')
        for key in ("device", "sensor_id", "port"):
            if key in type(cfg).model_fields:
                v = getattr(cfg, key)
                out.append(f'{key} = "{v}"' if isinstance(v, str) else f"{key} = {v}")
        out.append("")
    for w in detection.warnings:
        out.append(f"# warning: {w}")
    for u in detection.unknown:
        out.append(f"# {u}: answered no probe (an Open DMX adapter? pin it with [dmx] type = \"open-dmx\")")
    return "\n".join(out).rstrip() + "\n"


def _as_auto(role, section):
    """A pinned section read as auto, so doctor --detect works whatever the config says now."""
    if section.type == "auto":
        return section
    from firmware.config.devices import CameraAuto, DmxAuto, PresenceAuto
    model = {"camera": CameraAuto, "presence": PresenceAuto, "dmx": DmxAuto}[role]
    keep = {k: v for k, v in section.model_dump().items() if k in model.model_fields and k != "type"}
    return model(type="auto", **keep)


class Hotplug:
    """Scans now (`scan_now`) and, once started, again on udev events and every rescan_s."""

    def __init__(self, config, scanner=None) -> None:
        self.scanner = scanner or scanner_for(config)
        self.rescan_s = config.devices.rescan_s
        self.latest: Latest[Detection] = Latest()
        self.busy: dict[str, Found] = {}      # ports the box holds open: never probed
        self.scans = 0
        self._last: Detection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._uevents = _uevent_socket()
        self._kick_r, self._kick_w = os.pipe()

    def scan_now(self) -> Detection:
        det = self.scanner.scan(dict(self.busy))
        self.scans += 1
        self._report(det)
        self.latest.put(det)
        return det

    def _report(self, det: Detection) -> None:
        before = set(self._last.found) if self._last else set()
        for f in det.found:
            if f not in before:
                log.info("found %s: %s %s%s", f.role, f.kind, f.path, f" ({f.detail})" if f.detail else "")
        for f in before - set(det.found):
            log.info("gone %s: %s %s", f.role, f.kind, f.path)
        for w in det.warnings:
            if not self._last or w not in self._last.warnings:
                log.warning("%s", w)
        self._last = det

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hotplug", daemon=True)
            self._thread.start()

    def kick(self) -> None:
        """Rescan now (what a udev event does)."""
        os.write(self._kick_w, b"x")

    def _run(self) -> None:
        fds = [self._kick_r] + ([self._uevents] if self._uevents else [])
        while not self._stop.is_set():
            ready, _, _ = select.select(fds, [], [], self.rescan_s)
            if self._stop.is_set():
                return
            if self._kick_r in ready:
                os.read(self._kick_r, 64)
            if self._uevents in ready and self._relevant_uevent():
                self._stop.wait(UDEV_SETTLE_S)
            try:
                self.scan_now()
            except Exception:   # a scan must never kill the thread that finds the next device
                log.exception("device scan failed")

    def _relevant_uevent(self) -> bool:
        try:
            msg = self._uevents.recv(8192)
        except OSError:
            return False
        return any(s in msg for s in UEVENT_SUBSYSTEMS)

    def close(self) -> None:
        self._stop.set()
        self.kick()
        if self._thread is not None:
            self._thread.join(timeout=3.0)
        for fd in (self._kick_r, self._kick_w):
            os.close(fd)
        if self._uevents:
            self._uevents.close()


def _uevent_socket():
    """The kernel's hotplug events (NETLINK_KOBJECT_UEVENT); None where not allowed (containers):
    the periodic rescan alone then finds new devices."""
    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15)
        s.bind((0, 1))
        s.setblocking(False)
        return s
    except (OSError, AttributeError):
        return None


class AutoDevices:
    """The box's auto roles: what each uses now, and which to switch when a scan says so."""

    def __init__(self, config, hotplug: Hotplug | None = None) -> None:
        self.sections = {r: getattr(config, r) for r in auto_roles(config)}
        self.hotplug = hotplug or Hotplug(config)
        det = self.hotplug.scan_now()
        self.using: dict[str, Found | None] = {r: det.chosen(r) for r in self.sections}
        self.detection = det
        for role, what in self.status().items():
            log.info("auto %s: %s", role, what)
        self._seq = self.latest_seq()
        self._mark_busy()

    def latest_seq(self) -> int:
        return self.hotplug.latest.get_with_seq()[1]

    def resolved(self, config):
        """`config` with each auto section replaced by the concrete one for what is in use."""
        return config.model_copy(update={r: resolve(r, s, self.using[r]) for r, s in self.sections.items()})

    def start(self) -> None:
        self.hotplug.start()

    def changes(self) -> list[tuple[str, object]]:
        """(role, new concrete section) for each role to switch since the last call. Cheap when
        nothing new was scanned: one lock, one comparison (it runs every frame)."""
        det, seq = self.hotplug.latest.get_with_seq()
        if seq == self._seq or det is None:
            return []
        self._seq = seq
        self.detection = det
        out = []
        for role, section in self.sections.items():
            new, cur = det.chosen(role), self.using[role]
            present = {f.path for f in det.found if f.role == role}
            if new is not None and (cur is None or cur.path not in present):
                log.info("%s: using %s %s", role, new.kind, new.path)
                self.using[role] = new
                out.append((role, resolve(role, section, new)))
        if out:
            self._mark_busy()
        return out

    def _mark_busy(self) -> None:
        self.hotplug.busy = {f.path: f for f in self.using.values() if f is not None and f.role != "camera"}

    def status(self) -> dict:
        summary = {r: (f"{f.kind} {f.path}" + (f" ({f.detail})" if f.detail else "") if (f := self.using[r])
                       else "none found (rescanning)") for r in self.sections}
        if self.detection.warnings:
            summary["warnings"] = list(self.detection.warnings)
        return summary

    def close(self) -> None:
        self.hotplug.close()
