"""The camera backend table: config `type` -> constructor.

A camera publishes only its newest frame; the show reads `latest()` and never waits. Real backends
(argus, v4l2, picamera2, file) live in their own modules and import their vendor library lazily.
"""
from __future__ import annotations

from firmware.devices.backend_table import BackendTable, lazy
from firmware.devices.camera.interface import Camera
from firmware.devices.camera.sim import NoCamera, SimCamera


# The explicit backend table: config `type` -> constructor. No registries, no import side effects.
BACKENDS: BackendTable[Camera] = BackendTable("camera", {
    "sim": SimCamera,
    "none": NoCamera,
    "file": lazy("firmware.devices.camera.file", "FileCamera"),
    "v4l2": lazy("firmware.devices.camera.opencv", "OpenCVCamera.v4l2"),
    "argus": lazy("firmware.devices.camera.opencv", "OpenCVCamera.argus"),
    "picamera2": lazy("firmware.devices.camera.picamera2", "Picamera2Camera"),
})
open_camera = BACKENDS.open   # (cfg, clock) -> Camera
