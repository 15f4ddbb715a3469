"""Cameras through OpenCV: `v4l2` (a USB camera by its stable udev name) and `argus` (a CSI camera
through NVIDIA's ISP with GStreamer's nvarguscamerasrc, which needs an OpenCV built with GStreamer:
JetPack's, seen from a venv made with --system-site-packages; pip's opencv lacks GStreamer)."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from firmware.devices.camera.watchdog import CaptureCamera


def argus_pipeline(sensor_id: int, width: int, height: int, fps: float) -> str:
    """The GStreamer pipeline for one CSI sensor, BGR out, newest frame only (no queue build-up)."""
    return (f"nvarguscamerasrc sensor-id={sensor_id} ! "
            f"video/x-raw(memory:NVMM),width={width},height={height},framerate={max(1, round(fps))}/1 ! "
            "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
            "appsink drop=true max-buffers=1")


def opencv_has_gstreamer(cv2) -> bool:
    info = cv2.getBuildInformation()
    for line in info.splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


class _CvSource:
    """One cv2.VideoCapture session; `opener` builds it (injected in tests)."""

    detect_frozen = True

    def __init__(self, opener: Callable, what: str, configure: Callable | None = None) -> None:
        self._opener, self.what, self._configure, self._cap = opener, what, configure, None
        self._misses = 0

    def open(self) -> None:
        cap = self._opener()
        if cap is None or not cap.isOpened():
            raise OSError(f"cannot open {self.what}")
        if self._configure is not None:
            self._configure(cap)
        self._cap = cap

    def read(self) -> np.ndarray | None:
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            # An unplugged V4L2 device fails every read at once: back off, then give up the session.
            self._misses += 1
            if self._misses > 50:
                raise OSError(f"{self.what}: reads keep failing")
            time.sleep(0.02)
            return None
        self._misses = 0
        return np.ascontiguousarray(bgr[..., 2::-1])   # BGR -> RGB

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class OpenCVCamera(CaptureCamera):
    @classmethod
    def v4l2(cls, cfg, clock, opener: Callable | None = None, **kw) -> "OpenCVCamera":
        def default_opener():
            import cv2
            return cv2.VideoCapture(cfg.device, cv2.CAP_V4L2)

        def configure(cap):
            import cv2
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
            cap.set(cv2.CAP_PROP_FPS, cfg.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)   # the newest frame, not one from a second ago

        return cls(cfg, clock, lambda: _CvSource(opener or default_opener, cfg.device, configure),
                   f"camera[v4l2 {cfg.device}]", **kw)

    @classmethod
    def argus(cls, cfg, clock, opener: Callable | None = None, **kw) -> "OpenCVCamera":
        pipeline = argus_pipeline(cfg.sensor_id, cfg.width, cfg.height, cfg.fps)

        def default_opener():
            import cv2
            if not opencv_has_gstreamer(cv2):
                raise OSError("this OpenCV has no GStreamer: use JetPack's python3-opencv "
                              "(venv with --system-site-packages)")
            return cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)

        cam = cls(cfg, clock, lambda: _CvSource(opener or default_opener, f"argus sensor {cfg.sensor_id}"),
                  f"camera[argus {cfg.sensor_id}]", **kw)
        cam.pipeline = pipeline
        return cam
