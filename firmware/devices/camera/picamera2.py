"""`[camera] type = "picamera2"`: a Raspberry Pi camera through libcamera (Raspberry Pi boxes only)."""
from __future__ import annotations

import numpy as np

from firmware.devices.camera.watchdog import CaptureCamera


class _Picamera2Source:
    detect_frozen = True

    def __init__(self, cfg) -> None:
        self.cfg, self._cam = cfg, None

    def open(self) -> None:
        from picamera2 import Picamera2   # vendor library: only on a Pi
        cam = Picamera2()
        try:
            # libcamera's "RGB888" is B, G, R in memory; we swap below.
            conf = cam.create_video_configuration(main={"size": (self.cfg.width, self.cfg.height),
                                                        "format": "RGB888"},
                                                  controls={"FrameRate": float(self.cfg.fps)})
            cam.configure(conf)
            cam.start()
        except Exception:
            cam.close()
            raise
        self._cam = cam

    def read(self) -> np.ndarray | None:
        arr = self._cam.capture_array("main")
        return np.ascontiguousarray(arr[..., 2::-1])

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()


class Picamera2Camera(CaptureCamera):
    def __init__(self, cfg, clock, **kw) -> None:
        super().__init__(cfg, clock, lambda: _Picamera2Source(cfg), "camera[picamera2]", **kw)
