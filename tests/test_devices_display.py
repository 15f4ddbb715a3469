"""The pygame display with SDL's dummy driver: frames reach the screen surface, no cursor, a missing
projector means headless + retry, a display lost mid-show is reopened, nothing raises into the show."""
from __future__ import annotations

import numpy as np
import pytest

from firmware.clock import FakeClock
from firmware.config.devices import DisplayPygame

pygame = pytest.importorskip("pygame")


def frame(w=96, h=64, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def shown_pixels():
    """What is on the screen surface, as H x W x 3 RGB."""
    return pygame.surfarray.array3d(pygame.display.get_surface()).transpose(1, 0, 2)


@pytest.fixture
def cfg():
    return DisplayPygame(type="pygame", width=96, height=64, fullscreen=True, reconnect_s=2.0)


def test_frames_reach_the_screen_without_cursor(cfg):
    from firmware.devices.display.table import open_display
    with open_display(cfg, FakeClock()) as d:
        assert d.connected and d.driver == "dummy" and d.health.ok
        assert pygame.mouse.get_visible() is False
        for i in range(3):
            f = frame(seed=i)
            d.present(f)
            assert np.array_equal(shown_pixels(), f)
        assert d.frames_shown == 3 and d.poll_quit() is False


def test_no_projector_at_boot_then_switched_on(cfg, monkeypatch):
    from firmware.devices.display.pygame_window import PygameDisplay
    clock = FakeClock()
    real_set_mode = pygame.display.set_mode

    def no_display(*a, **k):
        raise pygame.error("No available video device")

    monkeypatch.setattr(pygame.display, "set_mode", no_display)
    d = PygameDisplay(cfg, clock)
    assert not d.connected and not d.health.ok and "headless" in d.health.detail
    for _ in range(3):
        d.present(frame())                 # never raises; frames are kept
    assert d.frames_dropped == 3 and d.last is not None
    monkeypatch.setattr(pygame.display, "set_mode", real_set_mode)   # projector switched on
    clock.advance(1.0)
    d.present(frame())
    assert not d.connected                 # not before reconnect_s
    clock.advance(1.1)
    f = frame(seed=5)
    d.present(f)
    assert d.connected and d.health.ok and d.health.recoveries == 1
    assert np.array_equal(shown_pixels(), f)
    d.close()
    d.close()


def test_display_lost_mid_show_is_reopened(cfg, monkeypatch):
    from firmware.devices.display.pygame_window import PygameDisplay
    clock = FakeClock()
    d = PygameDisplay(cfg, clock)
    d.present(frame())
    real_flip = pygame.display.flip
    monkeypatch.setattr(pygame.display, "flip", lambda: (_ for _ in ()).throw(pygame.error("DRM flip failed")))
    d.present(frame())
    assert not d.connected and "display lost (DRM flip failed)" in d.health.detail
    monkeypatch.setattr(pygame.display, "flip", real_flip)
    clock.advance(2.5)
    d.present(frame(seed=9))
    assert d.connected and d.opens == 2 and np.array_equal(shown_pixels(), frame(seed=9))
    d.close()


def test_unavailable_driver_falls_back_to_headless(cfg):
    from firmware.devices.display.pygame_window import PygameDisplay
    d = PygameDisplay(cfg.model_copy(update={"driver": "kmsdrm"}), FakeClock())
    try:
        assert not d.connected and "kmsdrm" in d.health.detail
        d.present(frame())
        assert d.frames_dropped == 1
    finally:
        d.close()


def test_wrong_frame_shape_is_a_bug(cfg):
    from firmware.devices.display.pygame_window import PygameDisplay
    with PygameDisplay(cfg, FakeClock()) as d:
        with pytest.raises(ValueError):
            d.present(np.zeros((10, 10, 3), np.uint8))


def test_windowed_development_mode_can_quit(cfg):
    from firmware.devices.display.pygame_window import PygameDisplay
    with PygameDisplay(cfg.model_copy(update={"fullscreen": False}), FakeClock()) as d:
        d.present(frame())
        pygame.event.post(pygame.event.Event(pygame.QUIT))
        assert d.poll_quit() is True


def test_drivers_for(monkeypatch):
    from firmware.devices.display.pygame_window import drivers_for
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    assert drivers_for("auto") == ["x11"]
    monkeypatch.delenv("DISPLAY")
    assert drivers_for("auto") == ["kmsdrm"]
    assert drivers_for("x11") == ["x11"]


def test_framebuffer_for():
    from firmware.devices.display.pygame_window import framebuffer_for
    # no GPU, X11, nothing to scale: the shared-memory surface, not OpenGL in software
    assert framebuffer_for("auto", "x11", needs_scaling=False, gpu=False) == "direct"
    assert framebuffer_for("auto", "x11", needs_scaling=False, gpu=True) == "renderer"
    assert framebuffer_for("auto", "x11", needs_scaling=True, gpu=False) == "renderer"   # only it scales
    for driver in ("kmsdrm", "wayland", "dummy"):
        assert framebuffer_for("auto", driver, needs_scaling=False, gpu=False) == "renderer"
    assert framebuffer_for("direct", "kmsdrm", needs_scaling=True, gpu=True) == "direct"   # the config wins
    assert framebuffer_for("renderer", "x11", needs_scaling=False, gpu=False) == "renderer"


def test_gpu_present(tmp_path):
    from firmware.devices.display.pygame_window import gpu_present
    assert gpu_present(tmp_path) is False
    (tmp_path / "nvhost-ctrl").touch()                       # a Jetson
    assert gpu_present(tmp_path) is True
    (tmp_path / "nvhost-ctrl").unlink()
    (tmp_path / "dri").mkdir()
    (tmp_path / "dri" / "card0").touch()                     # a KMS card alone renders nothing
    assert gpu_present(tmp_path) is False
    (tmp_path / "dri" / "renderD128").touch()
    assert gpu_present(tmp_path) is True


@pytest.mark.parametrize("framebuffer", ["auto", "direct", "renderer"])
def test_frames_reach_a_real_x11_window(cfg, framebuffer, monkeypatch):
    """Through a real X server (an Xvfb started for the test): with the shared-memory surface and
    with SDL's renderer the exact frame is on the window's surface and the flip goes through."""
    import shutil
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb not installed (apt install xvfb)")
    from firmware.bench.cascade import x_display
    from firmware.devices.display import pygame_window
    monkeypatch.setattr(pygame_window, "gpu_present", lambda: False)
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    with x_display(cfg.width, cfg.height):
        c = cfg.model_copy(update={"fullscreen": False, "driver": "x11", "framebuffer": framebuffer})
        with pygame_window.PygameDisplay(c, FakeClock()) as d:
            assert d.connected and d.driver == "x11", d.health.detail
            assert d.framebuffer == ("direct" if framebuffer == "auto" else framebuffer)
            for i in range(3):
                f = frame(seed=i)
                d.present(f)
                assert np.array_equal(shown_pixels(), f)
            assert d.frames_shown == 3 and d.frames_dropped == 0
