"""The cameras with no hardware behind them: `sim` (a rendered visitor) and `none`."""
from __future__ import annotations

import math

import numpy as np

from firmware.devices.camera.interface import Camera, Frame
from firmware.devices.fault_injection import FaultInjectable


class NoCamera(Camera):
    """No camera configured: the show runs on without the visitor's image."""

    def __init__(self, cfg=None, clock=None) -> None:
        super().__init__()
        self.health.detail = "no camera configured"

    def latest(self) -> Frame | None:
        return None


class SimCamera(FaultInjectable, Camera):
    """A moving figure against a textured wall, rendered on demand at the clock's time.

    Deterministic for a given time, so tests with a fake clock see exactly reproducible frames.
    `inject("stall" | "unplug" | "frozen")` injects the field failures a real camera has.
    """

    name = "camera[sim]"
    FAULTS = ("stall", "unplug", "frozen")
    _MODE_OF = {"stall": "stalled", "unplug": "unplugged", "frozen": "frozen"}

    def __init__(self, cfg, clock) -> None:
        super().__init__()
        self.clock = clock
        self.width, self.height, self.fps = cfg.width, cfg.height, cfg.fps
        # Rendered at a quarter of the size and scaled up: a sim camera must cost the box next to
        # nothing, like a real one whose frames arrive from the driver.
        h, w = max(8, self.height // 4), max(8, self.width // 4)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self._yy, self._xx = yy / h, xx / w
        wall = 0.35 + 0.1 * np.sin(self._xx * 23.0) * np.cos(self._yy * 17.0)
        self._wall = np.stack([wall * 1.0, wall * 0.9, wall * 0.8], axis=-1)
        self._mode = "ok"
        self._last: Frame | None = None
        self._t0 = clock.now()
        # The same pure watchdog the real capture loop runs, so an injected stall or freeze looks to
        # the box exactly like a real one: frames for a while, then None and a camera fault.
        from firmware.devices.camera.watchdog import FrameWatchdog, frame_hash
        self._hash = frame_hash
        self._watchdog = FrameWatchdog(cfg.stall_timeout_s, cfg.frozen_timeout_s)
        self._watchdog.reset(self._t0)

    def _switch(self, fault: str, on: bool) -> None:
        if on:
            self._mode = self._MODE_OF[fault]
        elif self._mode == self._MODE_OF[fault]:
            self._mode = "ok"

    def render(self, t: float) -> np.ndarray:
        """A person-like figure (head + body) swaying in front of a wall."""
        cx = 0.5 + 0.12 * math.sin(t * 0.7)
        head = ((self._xx - cx) / 0.07) ** 2 + ((self._yy - 0.3) / 0.09) ** 2 < 1.0
        body = (np.abs(self._xx - cx - 0.02 * np.sin(self._yy * 9 + t)) < 0.13 - 0.05 * (1 - self._yy)) & \
               (self._yy > 0.38)
        img = self._wall.copy()
        skin = np.array([0.85, 0.65, 0.5], np.float32)
        coat = np.array([0.2, 0.3, 0.55], np.float32) * (0.8 + 0.2 * np.sin(self._yy * 30.0))[..., None]
        img[head] = skin
        img[body] = coat[body]
        from firmware.render.noise import resize
        return resize((np.clip(img, 0, 1) * 255).astype(np.uint8), self.width, self.height)

    def latest(self) -> Frame | None:
        if self.closed:
            return None
        now = self.clock.now()
        if self._mode == "unplugged":      # a real read() raises: the session ends at once
            self.fault("unplugged")
            return None
        seq = int((now - self._t0) * self.fps)
        if self._mode != "stalled" and (self._last is None or seq != self._last.seq):
            # frozen: new frames keep coming, all with the same picture (a dead pipeline)
            image = self._last.image if self._mode == "frozen" and self._last else self.render(seq / self.fps)
            self._last = Frame(image, now, seq)
            self._watchdog.observe(now, self._hash(image))
        verdict = self._watchdog.verdict(now)
        if verdict is not None:
            self.fault(verdict)
            return None
        self.recover("frames")
        return self._last
