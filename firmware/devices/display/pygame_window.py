"""`[display] type = "pygame"`: the projector, fullscreen through pygame-ce (SDL2).

Kiosk rules: fullscreen, no cursor, no window decoration, no desktop ever (SDL must not minimise the
window when focus moves). Runs under a minimal X server (`x11`) or straight on KMS/DRM (`kmsdrm`).
The box often boots before the projector is switched on: if SDL finds no display, frames are kept
(headless) and opening is retried every `reconnect_s`; a display lost mid-show is handled the same
way. `present` never raises for a device problem, only for a frame of the wrong shape (a bug).
"""
from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from firmware.devices.display.interface import Display

log = logging.getLogger("humus.display")


@contextmanager
def sdl_env(name: str, value: str):
    """`name` set to `value` while SDL reads it (at display.init() / set_mode), then as it was."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def drivers_for(choice: str) -> list[str]:
    """SDL video drivers to try, in order, for the configured `driver`."""
    if choice != "auto":
        return [choice]
    if os.environ.get("SDL_VIDEODRIVER"):      # the environment (a unit file, tests) decides
        return [os.environ["SDL_VIDEODRIVER"]]
    if os.environ.get("DISPLAY"):
        return ["x11"]
    if os.environ.get("WAYLAND_DISPLAY"):
        return ["wayland"]
    return ["kmsdrm"]


def gpu_present(dev: Path = Path("/dev")) -> bool:
    """A GPU the X server or KMS can render with: Jetson (nvhost/nvmap), desktop NVIDIA, or DRM."""
    return any(dev.glob("nvhost-*")) or any(dev.glob("nvidia[0-9]*")) or any((dev / "dri").glob("renderD*"))


def framebuffer_for(choice: str, driver: str, needs_scaling: bool, gpu: bool) -> str:
    """"renderer" (SDL's accelerated renderer: scales, waits for vsync) or "direct" (the X11 window
    surface in shared memory: one 8 MB copy per 1080p frame, no scaling).

    Without a GPU SDL's renderer is OpenGL in software (Mesa llvmpipe): under Xvfb on the 2-core
    development machine a 1080p flip cost 12.5 ms of CPU that way against 1.1 ms direct, so with no
    GPU and nothing to scale, X11 goes direct. KMS/DRM and Wayland have no direct surface here.
    """
    if choice != "auto":
        return choice
    return "direct" if driver == "x11" and not needs_scaling and not gpu else "renderer"


class PygameDisplay(Display):
    def __init__(self, cfg, clock, drivers: list[str] | None = None) -> None:
        super().__init__()
        import pygame                       # vendor library: only for this backend
        self._pg = pygame
        self.cfg, self.clock = cfg, clock
        self.width, self.height = cfg.width, cfg.height
        self.name = "display[pygame]"
        self.drivers = drivers or drivers_for(cfg.driver)
        self.driver: str | None = None
        self.framebuffer: str | None = None     # "renderer" or "direct", chosen at each open
        self.frames_shown = 0
        self.frames_dropped = 0              # presented while no display was there
        self.opens = 0
        self.last: np.ndarray | None = None
        self._screen = None
        self._retry_at = clock.now()
        self._open()

    @property
    def connected(self) -> bool:
        return self._screen is not None

    def _open(self) -> bool:
        pg, last_error = self._pg, "no driver"
        for drv in self.drivers:
            os.environ["SDL_VIDEO_MINIMIZE_ON_FOCUS_LOSS"] = "0"
            try:
                with sdl_env("SDL_VIDEODRIVER", drv):
                    pg.display.init()
                if pg.display.get_num_displays() < 1:
                    raise pg.error("no display connected")
                self._screen = self._set_mode(drv)
                pg.mouse.set_visible(False)
                pg.display.set_caption("humus")
                self.driver = drv
                self.opens += 1
                w, h = pg.display.get_desktop_sizes()[0] if self.cfg.fullscreen else (self.width, self.height)
                self.recover(f"{drv}, {self.width}x{self.height} shown on {w}x{h} ({self.framebuffer})")
                log.info("display open: %s", self.health.detail)
                return True
            except pg.error as exc:
                last_error = f"{drv}: {exc}"
                pg.display.quit()
        self._screen = None
        self._retry_at = self.clock.now() + self.cfg.reconnect_s
        self.fault(f"no display ({last_error}); running headless, retrying every {self.cfg.reconnect_s:g} s")
        return False

    def _set_mode(self, driver: str):
        """Our frame size as the logical size; SDL's renderer scales it to the projector's mode, or the
        frame goes straight into the window's shared-memory surface (see framebuffer_for)."""
        pg = self._pg
        fullscreen = pg.FULLSCREEN | pg.NOFRAME if self.cfg.fullscreen else 0
        desktop = tuple(pg.display.get_desktop_sizes()[0])
        needs_scaling = bool(self.cfg.fullscreen) and desktop != (self.width, self.height)
        self.framebuffer = framebuffer_for(self.cfg.framebuffer, driver, needs_scaling, gpu_present())
        if self.framebuffer == "direct":
            # Read by SDL when the window surface is made: 0 = the platform's own framebuffer (XShm).
            with sdl_env("SDL_FRAMEBUFFER_ACCELERATION", "0"):
                return pg.display.set_mode((self.width, self.height), fullscreen)
        flags = pg.SCALED | fullscreen
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # "no fast renderer available" on software SDL
            try:
                return pg.display.set_mode((self.width, self.height), flags, vsync=1)
            except pg.error:
                return pg.display.set_mode((self.width, self.height), flags & ~pg.SCALED)

    def _lost(self, why: str) -> None:
        self._screen = None
        try:
            self._pg.display.quit()
        except self._pg.error:
            pass
        self._retry_at = self.clock.now() + self.cfg.reconnect_s
        self.fault(f"display lost ({why}); running headless, retrying every {self.cfg.reconnect_s:g} s")

    def present(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3):
            raise ValueError(f"frame {frame.shape} does not match display {(self.height, self.width, 3)}")
        self.last = frame
        if self._screen is None and (self.closed or self.clock.now() < self._retry_at or not self._open()):
            self.frames_dropped += 1
            return
        pg = self._pg
        try:
            surf = pg.image.frombuffer(np.ascontiguousarray(frame, dtype=np.uint8), (self.width, self.height),
                                       "RGB")
            self._screen.blit(surf, (0, 0))
            pg.display.flip()
            pg.event.pump()                 # keeps the window alive for the window manager
            self.frames_shown += 1
        except pg.error as exc:
            self._lost(str(exc))
            self.frames_dropped += 1

    def poll_quit(self) -> bool:
        """A development window can be closed (or Esc); the fullscreen kiosk ignores both."""
        if self._screen is None or self.cfg.fullscreen:
            return False
        pg = self._pg
        try:
            for ev in pg.event.get((pg.QUIT, pg.KEYDOWN)):
                if ev.type == pg.QUIT or ev.key == pg.K_ESCAPE:   # only QUIT and KEYDOWN are fetched
                    return True
        except pg.error:
            pass
        return False

    def _close(self) -> None:
        self._screen = None
        try:
            self._pg.display.quit()
        except self._pg.error:
            pass
