"""Auto-detection for `type = "auto"`: which serial port holds which device, and which camera to use.

Serial ports come from `[devices] serial_ports` globs, tried in order, so a stable name
(/dev/serial/by-id/...) is found before the kernel name it points to (/dev/ttyUSB0), which is then
skipped. Each port is probed without harm, listening before talking:
1. at 256000 baud, listen for LD2410 report frames (the radar streams them unasked);
2. at 115200 baud, listen for TFmini 0x59 0x59 frames (it streams them unasked, too);
3. ask for an Enttec USB Pro's serial number (label 10) and wait for the answer.
A port answering none of these is "unknown": it becomes Open DMX only if the config says so, and is
never sent a DMX break before that (the probe only writes one 5-byte label-10 request).

Cameras: an Argus CSI sensor (a Tegra "vi-output" video node) first, then V4L2 nodes with the
video-capture capability, then none. The capability comes from VIDIOC_QUERYCAP (passed in, so the
fake /dev trees of the tests can answer for their plain files).

Two devices of one kind: the first by path order wins, with a warning naming the other.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from firmware.devices.protocols import enttec, ld2410, tfmini
from firmware.devices.serial_port import close_quietly, open_serial

log = logging.getLogger("humus.detect")

KIND_OF = {"ld2410": "presence", "tfmini": "presence", "enttec-pro": "dmx", "open-dmx": "dmx",
           "argus": "camera", "v4l2": "camera"}
V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_DEVICE_CAPS = 0x80000000
# A sensor powered by the same plug as its adapter may start streaming a moment after its port
# appears: a silent port is probed again a few times, a few seconds apart, before it counts as unknown.
UNKNOWN_RETRIES = 3
UNKNOWN_RETRY_S = 2.0


@dataclass(frozen=True)
class Found:
    kind: str          # ld2410 | tfmini | enttec-pro | open-dmx | argus | v4l2
    path: str          # the stable path it was found under
    detail: str = ""   # e.g. the widget's serial number, the sensor's name
    index: int = 0     # argus: the sensor_id

    @property
    def role(self) -> str:
        return KIND_OF[self.kind]


@dataclass(frozen=True)
class Detection:
    """Everything found, per role, in path order; `chosen` is what the box uses."""
    found: tuple[Found, ...] = ()
    unknown: tuple[str, ...] = ()            # serial ports that answered no probe
    warnings: tuple[str, ...] = ()

    def chosen(self, role: str) -> Found | None:
        return next((f for f in self.found if f.role == role), None)

    def summary(self) -> dict:
        return {role: (f"{c.kind} {c.path}" + (f" ({c.detail})" if c.detail else "") if (c := self.chosen(role))
                       else "none found") for role in ("camera", "presence", "dmx")}


# ----------------------------------------------------------------------------------- serial ports
def serial_ports(globs: list[str]) -> list[str]:
    """Existing ports in glob order, each device once (under its first, most stable, name)."""
    seen, out = set(), []
    for pattern in globs:
        for path in sorted(glob.glob(pattern)):
            real = os.path.realpath(path)
            if real in seen or not os.path.exists(real):
                continue
            seen.add(real)
            out.append(path)
    return out


def _listen(port, parser, seconds: float, want) -> object | None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        data = port.read(port.in_waiting or 1)
        if data:
            for msg in parser.feed(data):
                if want(msg):
                    return msg
    return None


def probe_serial(path: str, probe_s: float = 0.3, opener: Callable = open_serial) -> Found | None:
    """What answers on `path`: Found, or None for an adapter that answered nothing.

    Raises OSError when the port cannot be opened at all (gone again, or held by another process)."""
    port = opener(path, 256000, timeout=0.02, write_timeout=0.5)
    try:
        port.reset_input_buffer()
        if _listen(port, ld2410.Parser(), probe_s, lambda m: isinstance(m, ld2410.Report)):
            return Found("ld2410", path)
        port.baudrate = 115200
        port.reset_input_buffer()
        # TFmini frames pass a checksum; two in a row rule out line noise that happens to fit one.
        seen = []
        if _listen(port, tfmini.Parser(), probe_s, lambda m: seen.append(m) or len(seen) >= 2):
            return Found("tfmini", path)
        port.reset_input_buffer()
        port.write(enttec.encode_get_serial())
        reply = _listen(port, enttec.Parser(), probe_s, lambda m: m.label == enttec.LABEL_GET_SERIAL)
        if reply is not None:
            try:
                serial = enttec.decode_serial(reply.data)
            except ValueError:
                serial = reply.data.hex()
            return Found("enttec-pro", path, f"serial {serial}")
        return None
    finally:
        close_quietly(port)


# ---------------------------------------------------------------------------------------- cameras
def v4l2_querycap(path: str) -> int:
    """The node's capabilities (device_caps when present), by the VIDIOC_QUERYCAP ioctl."""
    import fcntl
    import struct
    buf = bytearray(104)   # struct v4l2_capability
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, 0x80685600, buf)   # _IOR('V', 0, struct v4l2_capability)
    finally:
        os.close(fd)
    caps, device_caps = struct.unpack_from("<II", buf, 84)
    return device_caps if caps & V4L2_CAP_DEVICE_CAPS else caps


def find_cameras(globs: list[str], sysfs: Path, querycap: Callable[[str], int] = v4l2_querycap) -> list[Found]:
    """Argus CSI sensors, then V4L2 capture devices, each under its first (stable) name."""
    argus, v4l2, seen = [], [], set()
    for path in serial_ports(globs):          # the same "first name wins" walk
        real = os.path.realpath(path)
        node = os.path.basename(real)
        if not re.fullmatch(r"video\d+", node) or real in seen:
            continue
        seen.add(real)
        name = _read(sysfs / "class" / "video4linux" / node / "name")
        if name.startswith("vi-output"):
            # Tegra VI: the CSI sensor behind it is reached through Argus, in node order
            argus.append((int(node[5:]), path, name))
            continue
        try:
            caps = querycap(real)
        except OSError:
            continue
        if caps & V4L2_CAP_VIDEO_CAPTURE:
            v4l2.append(Found("v4l2", path, name))
    argus.sort()
    return [Found("argus", p, n, index=i) for i, (_, p, n) in enumerate(argus)] + v4l2


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------- a scan
@dataclass
class Scanner:
    """One pass over the ports and cameras. Remembers what each port was, so a rescan probes only
    ports that are new (or were re-plugged: the kernel name changed)."""
    serial_globs: list[str]
    camera_globs: list[str]
    sysfs: Path
    probe_s: float = 0.3
    unknown_as_open_dmx: bool = False
    roles: frozenset = frozenset({"camera", "presence", "dmx"})
    querycap: Callable[[str], int] = v4l2_querycap
    opener: Callable = open_serial
    _known: dict = field(default_factory=dict)   # path -> (realpath, Found | None, probes, last probe)

    def scan(self, busy: dict[str, Found] | None = None) -> Detection:
        """`busy`: ports the box holds open (path -> what it is); never probed, still reported."""
        busy = busy or {}
        found, unknown, warnings = [], [], []
        present = serial_ports(self.serial_globs) if self.roles & {"presence", "dmx"} else []
        now = time.monotonic()
        for path in present:
            real = os.path.realpath(path)
            known = self._known.get(path)
            if path in busy:
                self._known[path] = (real, busy[path], 0, 0.0)
            elif known is None or known[0] != real or (
                    known[1] is None and known[2] < UNKNOWN_RETRIES and now - known[3] >= UNKNOWN_RETRY_S):
                probes = known[2] + 1 if known is not None and known[0] == real else 1
                try:
                    self._known[path] = (real, probe_serial(path, self.probe_s, self.opener), probes, now)
                except OSError as exc:
                    log.debug("probe %s: %s", path, exc)
                    continue                     # held elsewhere or gone: try again next scan
            what = self._known[path][1]
            if what is None:
                unknown.append(path)
            elif what.role in self.roles:
                found.append(what)
        for gone in set(self._known) - set(present):
            del self._known[gone]
        if "dmx" in self.roles and self.unknown_as_open_dmx and unknown and not any(
                f.role == "dmx" for f in found):
            found.append(Found("open-dmx", unknown.pop(0), "answered no probe; configured as Open DMX"))
        if "camera" in self.roles:
            found.extend(find_cameras(self.camera_globs, self.sysfs, self.querycap))
        for role in ("camera", "presence", "dmx"):
            mine = [f for f in found if f.role == role]
            if len(mine) > 1:
                warnings.append(f"{len(mine)} {role} devices found; using {mine[0].kind} {mine[0].path}, "
                                f"ignoring " + ", ".join(f"{f.kind} {f.path}" for f in mine[1:]))
        return Detection(tuple(found), tuple(unknown), tuple(warnings))


def scanner_for(config, roles=None) -> Scanner:
    dev = config.devices
    if roles is None:
        roles = {r for r in ("camera", "presence", "dmx") if getattr(config, r).type == "auto"}
    # Only an auto [dmx] section has the switch: a pinned one never turns a silent port into Open DMX.
    unknown_as_open_dmx = config.dmx.type == "auto" and config.dmx.unknown_as_open_dmx
    return Scanner(list(dev.serial_ports), list(dev.cameras), dev.sysfs, dev.probe_s,
                   unknown_as_open_dmx, frozenset(roles))
