"""Camera backends and the frame watchdog: file sources, OpenCV (V4L2/Argus) with scripted captures
that stall, freeze, hang and die, picamera2 against a stand-in module, and the escalation command."""
from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest

from firmware.clock import RealClock
from firmware.config.devices import CameraArgus, CameraAuto, CameraFile, CameraPicamera2, CameraV4L2
from firmware.devices.camera.table import open_camera
from firmware.devices.camera.watchdog import FrameWatchdog, frame_hash
from waiting import wait_for

FAST = dict(width=64, height=48, fps=50, stall_timeout_s=0.3, frozen_timeout_s=0.3,
            reconnect_backoff_s=(0.05, 0.2))


def test_a_type_without_a_backend_is_named_with_the_ones_there_are():
    # "auto" is hotplug's to resolve; handed to the table as it is, it must not be a bare KeyError
    with pytest.raises(ValueError, match=r"\[camera\] type = 'auto' has no backend.*argus, file, none, "
                                         r"picamera2, sim, v4l2"):
        open_camera(CameraAuto(type="auto"), RealClock())


def test_watchdog_verdicts():
    w = FrameWatchdog(stall_timeout_s=2.0, frozen_timeout_s=3.0)
    w.reset(10.0)
    assert w.verdict(11.9) is None
    assert w.verdict(12.1).startswith("stalled: no frame for 2.1")
    for t in np.arange(12.0, 16.0, 0.5):
        w.observe(float(t), 42)              # same hash every frame
    assert w.verdict(15.6).startswith("frozen: identical frames for 3.6")
    w.observe(16.0, 43)
    assert w.verdict(16.1) is None
    assert w.verdict(18.5).startswith("stalled: no new frame")
    still = FrameWatchdog(2.0, 3.0, detect_frozen=False)
    still.reset(0)
    for t in range(10):
        still.observe(t * 0.5, 7)
    assert still.verdict(4.6) is None


def test_frame_hash_sees_noise_not_copies():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    b = a.copy()
    assert frame_hash(a) == frame_hash(b)
    b[::10, ::10] ^= 1                       # sensor noise on the sampled grid
    assert frame_hash(a) != frame_hash(b)


def test_argus_pipeline_matches_protocols_doc():
    from firmware.devices.camera.opencv import argus_pipeline
    assert argus_pipeline(1, 1280, 720, 30.0) == (
        "nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 ! "
        "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
        "appsink drop=true max-buffers=1")


def test_argus_without_gstreamer_faults_and_show_runs_on():
    import cv2
    from firmware.devices.camera.opencv import opencv_has_gstreamer
    if opencv_has_gstreamer(cv2):
        pytest.skip("this OpenCV has GStreamer")
    cam = open_camera(CameraArgus(type="argus", **FAST), RealClock())
    try:
        assert wait_for(lambda: not cam.health.ok)
        assert "GStreamer" in cam.health.detail and cam.latest() is None
    finally:
        cam.close()
        cam.close()


def test_v4l2_missing_device_is_a_fault_not_a_crash(tmp_path):
    cam = open_camera(CameraV4L2(type="v4l2", device=str(tmp_path / "video-nothing"), **FAST), RealClock())
    try:
        assert wait_for(lambda: not cam.health.ok)
        assert "cannot open" in cam.health.detail and cam.latest() is None
    finally:
        cam.close()


def test_file_camera_video_loops_in_rgb(tmp_path):
    import cv2
    path = tmp_path / "clip.avi"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (80, 60))
    for i in range(5):
        bgr = np.zeros((60, 80, 3), np.uint8)
        bgr[..., 2] = 200                    # red in BGR
        bgr[:, : 10 + 10 * i, 1] = 100
        out.write(bgr)
    out.release()
    cam = open_camera(CameraFile(type="file", path=path, **FAST), RealClock())
    try:
        assert wait_for(lambda: cam.latest() is not None and cam.latest().seq > 8)  # looped past 5
        f = cam.latest()
        assert f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8
        assert f.image[..., 0].mean() > 150 and f.image[..., 2].mean() < 40   # RGB order
        assert cam.health.ok
    finally:
        cam.close()


def test_file_camera_image_folder_is_never_frozen(tmp_path):
    import cv2
    img = np.full((48, 64, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "only.png"), img)
    cam = open_camera(CameraFile(type="file", path=tmp_path, **FAST), RealClock())
    try:
        time.sleep(0.7)                      # longer than frozen_timeout_s with identical frames
        assert cam.latest() is not None and cam.health.ok and cam.reconnects == 0
    finally:
        cam.close()


class ScriptedCapture:
    """Stands in for cv2.VideoCapture. mode: ok (noisy frames), freeze (one frame forever),
    hang (read blocks until released), dead (every read fails)."""

    def __init__(self, world):
        self.world, self.released, self.props = world, False, {}
        self.rng = np.random.default_rng(len(world.opened))
        self.frozen = self.rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)

    def isOpened(self):
        return True

    def read(self):
        mode = self.world.mode
        time.sleep(0.01)
        if mode == "hang":
            self.world.unhang.wait()
            return False, None
        if mode == "dead":
            return False, None
        if mode == "freeze":
            return True, self.frozen
        return True, self.rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def release(self):
        self.released = True


class World:
    def __init__(self):
        self.mode, self.opened, self.refuse = "ok", [], False
        self.unhang = threading.Event()
        self.commands = []

    def opener(self):
        if self.refuse:
            raise OSError("device busy")
        cap = ScriptedCapture(self)
        self.opened.append(cap)
        return cap


def scripted_camera(world, **cfg):
    from firmware.devices.camera.opencv import OpenCVCamera
    c = CameraV4L2(type="v4l2", device="/dev/humus-camera", **{**FAST, **cfg})
    return OpenCVCamera.v4l2(c, RealClock(), opener=world.opener,
                             run_command=lambda cmd: world.commands.append(cmd) or 0)


def test_frozen_pipeline_is_reconnected():
    w = World()
    cam = scripted_camera(w)
    try:
        assert wait_for(lambda: cam.latest() is not None)
        import cv2
        assert w.opened[0].props == {cv2.CAP_PROP_FRAME_WIDTH: 64, cv2.CAP_PROP_FRAME_HEIGHT: 48,
                                     cv2.CAP_PROP_FPS: 50, cv2.CAP_PROP_BUFFERSIZE: 1}
        w.mode = "freeze"
        assert wait_for(lambda: not cam.health.ok)
        assert cam.health.detail.startswith("frozen") and cam.latest() is None
        assert wait_for(lambda: w.opened[0].released)
        w.mode = "ok"
        assert wait_for(lambda: cam.health.ok and cam.latest() is not None)
        assert len(w.opened) >= 2 and cam.health.recoveries >= 1
    finally:
        cam.close()


def test_hung_read_is_abandoned_and_a_new_session_opened():
    w = World()
    cam = scripted_camera(w)
    try:
        assert wait_for(lambda: cam.latest() is not None)
        w.mode = "hang"
        assert wait_for(lambda: not cam.health.ok)
        assert cam.health.detail.startswith("stalled")
        w.mode = "ok"                        # the old read is still stuck; a new session must win
        assert wait_for(lambda: cam.health.ok and cam.latest() is not None)
        assert not w.opened[0].released
        w.unhang.set()
        assert wait_for(lambda: w.opened[0].released)   # the abandoned reader cleans up on return
    finally:
        w.unhang.set()
        cam.close()


def test_dead_camera_escalates_after_n_failures_and_recovers():
    w = World()
    cam = scripted_camera(w, escalation_command="systemctl restart nvargus-daemon", escalate_after=3)
    try:
        assert wait_for(lambda: cam.latest() is not None)
        w.mode, w.refuse = "dead", True      # reads fail, reopening fails: the daemon is wedged
        assert wait_for(lambda: w.commands, timeout=6)
        assert w.commands[0] == "systemctl restart nvargus-daemon" and cam.failures >= 3
        assert cam.latest() is None
        w.mode, w.refuse = "ok", False
        assert wait_for(lambda: cam.health.ok and cam.latest() is not None, timeout=6)
        assert wait_for(lambda: cam.failures == 0)
    finally:
        cam.close()


def test_real_escalation_runs_the_command(tmp_path):
    from firmware.devices.camera.watchdog import _run_escalation
    marker = tmp_path / "restarted"
    assert _run_escalation(f"touch {marker}") == 0 and marker.exists()
    assert _run_escalation("/nonexistent/command") == -1


def test_picamera2_backend_with_stand_in_module(monkeypatch):
    calls = []

    class FakePicamera2:
        def __init__(self):
            self.n = 0

        def create_video_configuration(self, main, controls):
            calls.append(("config", main["size"], main["format"], controls["FrameRate"]))
            return {"main": main}

        def configure(self, conf): calls.append("configure")
        def start(self): calls.append("start")
        def stop(self): calls.append("stop")
        def close(self): calls.append("close")

        def capture_array(self, name):
            time.sleep(0.01)
            self.n += 1
            arr = np.zeros((48, 64, 3), np.uint8)
            arr[..., 0] = 250                # libcamera RGB888 = B first in memory
            arr[0, 0, 1] = self.n % 256      # a live sensor: frames differ
            return arr

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    cam = open_camera(CameraPicamera2(type="picamera2", **FAST), RealClock())
    try:
        assert wait_for(lambda: cam.latest() is not None)
        img = cam.latest().image
        assert img[..., 2].mean() > 240 and img[..., 0].mean() < 5   # blue stays blue
    finally:
        cam.close()
    assert calls[0] == ("config", (64, 48), "RGB888", 50.0) and calls[-2:] == ["stop", "close"]
