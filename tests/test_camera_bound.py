"""A wrong camera size costs nothing (issue 23): the camera is opened at no more than the show can use,
the picture covering the display (render/camera_picture.py), said once, never refused."""
from __future__ import annotations

import logging

from hypothesis import given, settings, strategies as st

from firmware import cli
from firmware.box.conductor import Box
from firmware.clock import FakeClock
from firmware.config.load import config_warnings, parse_config
from firmware.devices.camera.sim import SimCamera
from firmware.render import noise as nz
from firmware.render.camera_picture import bounded_camera, capture_bound
from scenario import run_frames

HUGE = {"width": 7680, "height": 4320, "fps": 240.0}


def test_capture_bound_covers_the_display_and_no_more():
    assert capture_bound(7680, 4320, 240.0, 1920, 1080, 60.0) == (1920, 1080, 60.0)
    assert capture_bound(4000, 3000, 30.0, 1920, 1080, 60.0) == (1920, 1440, 30.0)   # 4:3 covers by width
    assert capture_bound(3000, 4000, 30.0, 1920, 1080, 60.0) == (1920, 2560, 30.0)   # portrait: still width
    assert capture_bound(7680, 1080, 30.0, 1920, 1080, 60.0) == (7680, 1080, 30.0)   # already just covers
    assert capture_bound(640, 480, 30.0, 1920, 1080, 60.0) == (640, 480, 30.0)       # smaller: as it is
    assert capture_bound(1001, 999, 30.0, 333, 331, 60.0) == (334, 334, 30.0)   # 333 x 332.3, up to even


@settings(max_examples=500, deadline=None)
@given(st.integers(16, 7680), st.integers(16, 4320), st.floats(0.5, 240), st.integers(64, 7680),
       st.integers(64, 4320), st.floats(1, 240))
def test_capture_bound_properties(cw, ch, fps, dw, dh, dfps):
    w, h, f = capture_bound(cw, ch, fps, dw, dh, dfps)
    assert w <= cw and h <= ch and f == min(fps, dfps)
    if (w, h) != (cw, ch):
        assert w >= dw and h >= dh               # still covers the display: the picture loses nothing
        assert min(w - dw, h - dh) <= 1          # and no more than that (one side is the display's)
        assert abs(w * ch - h * cw) <= 2 * (cw + ch)   # the camera's aspect ratio, to the rounding
    assert capture_bound(w, h, f, dw, dh, dfps) == (w, h, f)   # a bound is within itself


def huge_config(tiny_model, camera):
    return parse_config({"display": {"type": "headless", "width": 640, "height": 360, "fps": 30.0},
                         "model": {"dir": str(tiny_model), "engine": "onnxruntime", "engine_cache": "/tmp/humus-engines"},
                         "camera": camera}, "<test>")


def test_huge_camera_passes_check_config_with_a_warning(tmp_path, capsys):
    path = tmp_path / "humus.toml"
    path.write_text("[camera]\nwidth = 7680\nheight = 4320\nfps = 240\n")
    assert cli.main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "width = 7680" in out
    assert "humus: warning: camera: [camera] asks for 7680x4320 at 240 fps, but the show uses at most " \
           "1920x1080 at 60 fps" in err
    assert config_warnings(parse_config({})) == []          # the defaults: no warning


def test_sim_camera_at_the_bound_and_said_once(tiny_model, caplog):
    config = huge_config(tiny_model, HUGE)
    section, warning = bounded_camera(config.camera, config.display)
    assert (section.width, section.height, section.fps) == (640, 360, 30.0) and "7680x4320" in warning
    with caplog.at_level(logging.WARNING, logger="humus.box"):
        box = Box(config, FakeClock(), threaded=False)
        try:
            assert isinstance(box.devices.camera, SimCamera)
            run_frames(box, 0.5)
            assert box.devices.camera.latest().image.shape == (360, 640, 3)
            box.devices.swap("camera", config.camera)            # a hot-plugged camera: bounded, not said again
            assert box.devices.camera.latest().image.shape == (360, 640, 3)
        finally:
            box.close()
    said = [r.getMessage() for r in caplog.records if "camera: [camera] asks for" in r.getMessage()]
    assert said == [warning]


def camera_work(tiny_model, camera, seconds=2.0):
    """Pixels the sim camera rendered and the picture resized from, and the largest frame, over
    `seconds` of an offline run."""
    box = Box(huge_config(tiny_model, camera), FakeClock(), threaded=False)
    work = {"pixels": 0, "largest": (0, 0)}
    render, cover = box.devices.camera.render, nz.cover

    def counted_render(t):
        img = render(t)
        work["pixels"] += img.shape[0] * img.shape[1]
        work["largest"] = max(work["largest"], img.shape[:2])
        return img

    def counted_cover(img, w, h, smooth=True):
        work["pixels"] += img.shape[0] * img.shape[1]
        return cover(img, w, h, smooth)

    box.devices.camera.render = counted_render
    import firmware.render.camera_picture as cp
    cp.nz.cover, saved = counted_cover, cp.nz.cover
    try:
        run_frames(box, seconds)
    finally:
        cp.nz.cover = saved
        box.close()
    return work


def test_a_huge_camera_costs_no_more_than_a_few_times_the_default(tiny_model):
    """Two seconds of show: 7680x4320 at 240 fps took 61 s against 6 s for the default camera, every
    frame rendered at 33 Mpx and scaled away. Now the camera's frames are at most the display's
    size, and the camera path's pixels at most a few times the default's."""
    huge = camera_work(tiny_model, HUGE)
    default = camera_work(tiny_model, {})
    assert huge["largest"] <= (360, 640)
    assert 0 < huge["pixels"] <= 3 * default["pixels"], (huge, default)
