"""Fault injection for the soak: the kinds, the record of one fault, the switches that break the
model and the disk, and for each kind how to inject it, heal it and see that the box is back.

Each kind breaks one device through the one fault API (`inject(fault)`, `heal()`): a simulated
device of the box, a pty emulator, or a proxy here (the engine, the disk).
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

import numpy as np

from firmware.devices.fault_injection import FaultInjectable

SIM_KINDS = ("camera_stall", "camera_unplug", "camera_frozen", "sensor_garbage", "sensor_silent",
             "dmx_unplug", "model_nan", "model_raise", "display_gone", "disk_full")
PTY_KINDS = SIM_KINDS + ("radar_unplug",)
DEVICE_OF = {"camera_stall": "camera", "camera_unplug": "camera", "camera_frozen": "camera",
             "sensor_garbage": "presence", "sensor_silent": "presence", "radar_unplug": "presence",
             "dmx_unplug": "dmx", "model_nan": "generator", "model_raise": "generator",
             "display_gone": "display", "disk_full": "status"}


@dataclass
class Fault:
    kind: str
    start: float
    heal_at: float
    healed: float | None = None
    detected: bool = False
    recovered: float | None = None
    mark: dict = field(default_factory=dict)   # counters at the heal, to see the box come back


class FaultyEngine(FaultInjectable):
    """The real engine behind a switch: `mode` None (pass through), "nan" or "raise"."""

    FAULTS = ("nan", "raise")

    def __init__(self, engine) -> None:
        self.engine = engine
        self.mode: str | None = None
        self.calls = 0

    def denoise(self, x, sigma, cond):
        # The conditions pass through as one value: a model with a new condition needs nothing here.
        self.calls += 1
        if self.mode == "raise":
            raise RuntimeError("injected engine failure (CUDA error: an illegal memory access)")
        out = self.engine.denoise(x, sigma, cond)
        return np.full_like(out, np.nan) if self.mode == "nan" else out

    def _switch(self, fault: str, on: bool) -> None:
        if on:
            self.mode = fault
        elif self.mode == fault:
            self.mode = None

    def describe(self) -> str:
        return f"soak proxy over {self.engine.describe()}"

    @property
    def providers(self) -> tuple[str, ...]:
        """Where the real engine runs (the cascade's stage follows it)."""
        return self.engine.providers

    def close(self) -> None:
        self.engine.close()


class FullDisk(FaultInjectable):
    """While `full`, the status file's atomic write fails with ENOSPC, as on a full /run or /var."""

    FAULTS = ("full",)

    def __init__(self) -> None:
        from firmware.appliance import statusfile
        self.module, self.real = statusfile, statusfile.write_atomic
        self.full = False
        self.refused = 0

    def __enter__(self):
        def write_atomic(path, data, mode=0o644):
            if self.full:
                self.refused += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            return self.real(path, data, mode)
        self.module.write_atomic = write_atomic
        return self

    def _switch(self, fault: str, on: bool) -> None:
        self.full = on

    def __exit__(self, *exc) -> None:
        self.module.write_atomic = self.real


def _sensor(rig):
    return rig.radar if rig.pty else rig.box.devices.presence


def _dmx(rig):
    return rig.widget if rig.pty else rig.box.devices.dmx.transport


# kind -> (the device it breaks: the box's sim device, or the pty emulator when the soak runs --pty;
# the fault that device gets). Every one of them takes `inject(fault)` and `heal()`.
BREAKS = {
    "camera_stall": (lambda rig: rig.box.devices.camera, "stall"),
    "camera_unplug": (lambda rig: rig.box.devices.camera, "unplug"),
    "camera_frozen": (lambda rig: rig.box.devices.camera, "frozen"),
    "sensor_garbage": (_sensor, "garbage"),
    "sensor_silent": (_sensor, "silent"),
    "radar_unplug": (lambda rig: rig.radar, "unplug"),
    "dmx_unplug": (_dmx, "unplug"),
    "model_nan": (lambda rig: rig.engine, "nan"),
    "model_raise": (lambda rig: rig.engine, "raise"),
    "display_gone": (lambda rig: rig.box.devices.display, "gone"),
    "disk_full": (lambda rig: rig.disk, "full"),
}


def inject(rig, f: Fault) -> None:
    device, fault = BREAKS[f.kind]
    device(rig).inject(fault)


def heal(rig, f: Fault) -> None:
    # The schedule never breaks one device twice at once, so healing the device heals this fault.
    device, _ = BREAKS[f.kind]
    device(rig).heal()
    box = rig.box
    f.mark = {"cam": box.camera_picture.key, "sent": box.devices.dmx.sent, "shown": box.devices.display.frames_shown,
              "opens": getattr(box.devices.presence, "opens", 0),
              "widget": rig.widget.state.universes if rig.widget else 0,
              "write": rig.writer._last_write or 0.0}


def unhealthy(rig, kind: str) -> bool:
    dev = DEVICE_OF[kind]
    if dev == "status":
        return rig.writer._failing
    return not rig.box.parts()[dev].health.ok


def is_back(rig, f: Fault, now: float, last_success: float) -> bool:
    """The device is healthy again and the box uses it again."""
    box, k, m = rig.box, f.kind, f.mark
    if unhealthy(rig, k):
        return False
    if k.startswith("camera"):
        return box.camera_picture.key is not None and box.camera_picture.key != m["cam"]
    if k in ("sensor_garbage", "sensor_silent", "radar_unplug"):
        ps = box.visit.presence
        if ps.stale or (k == "radar_unplug" and box.devices.presence.opens <= m["opens"]):
            return False
        truth = rig.truth(now)
        seen = ps.distance_m
        far = truth > rig.config.show.release_m
        return (seen is None or seen > rig.config.show.release_m) if far else \
            (seen is not None and abs(seen - truth) < 0.5)
    if k == "dmx_unplug":
        return box.devices.dmx.sent > m["sent"] and (not rig.pty or rig.widget.state.universes > m["widget"])
    if k.startswith("model"):
        return last_success > f.healed
    if k == "display_gone":
        return box.devices.display.frames_shown > m["shown"]
    if k == "disk_full":
        return (rig.writer._last_write or 0.0) > m["write"]
    return True
