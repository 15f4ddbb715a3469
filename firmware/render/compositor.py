"""The compositor: a Cue plus the newest inputs -> one projector frame. Never waits for anything.

Inputs it may lack at any moment (no camera, generation not finished, no footage, no model) each have
a defined fallback, so the projector always gets a picture:
  idle       footage | drift (diptych) or footage crossfaded with drift (full); drift alone if no footage
  approach   idle -> the visitor's live image
  immersion  the live image dissolving into the visitor's noise (the model's forward process)
  emergence  the newest prediction of the generation under the receding noise
  hold       the grown images
  release    the last picture -> idle
Upscaled pictures are cached by identity, so each new image is upscaled once, not once per frame.
"""
from __future__ import annotations

import numpy as np

from firmware.render import noise as nz
from firmware.show.machine import Cue, State


CACHE_BYTES = 64 * 2**20


class Compositor:
    def __init__(self, width: int, height: int, layout: str, model_side: int, sigma_peak: float = 80.0) -> None:
        self.width, self.height = width, height
        self.sigma_peak = sigma_peak        # [show] sigma_peak: the sea of noise the immersion ends in
        self.layout = layout
        self.model_side = model_side
        self.tiles = nz.layout_tiles(layout, width, height)
        self.frame = np.zeros((height, width, 3), np.uint8)
        self._scratch = np.zeros_like(self.frame)
        self._cache: dict[tuple, np.ndarray] = {}
        # Bounded in bytes, not only in entries: 64 full frames are 400 MB at 1920x1080 (the idle
        # adds two new ones per drift image, 8 a second), a sawtooth a Jetson's shared RAM must not see.
        self._cache_max = max(4, min(64, CACHE_BYTES // self.frame.nbytes))
        self._snapshot: np.ndarray | None = None
        self._last_state = State.IDLE
        self._grey = np.full((height, width, 3), 40, np.uint8)

    # -- cached upscaling --
    def _cached(self, key: tuple, make) -> np.ndarray:
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) >= self._cache_max:  # bounded: old visitors' pictures go
                self._cache.clear()
            hit = self._cache[key] = make()
        return hit

    def _tiles_from_model(self, key: tuple, images_u8: list[np.ndarray]) -> np.ndarray:
        def make():
            out = np.empty((self.height, self.width, 3), np.uint8)
            for i, tile in enumerate(self.tiles):
                img = images_u8[i % len(images_u8)]
                out[tile.y:tile.y + tile.h, tile.x:tile.x + tile.w] = nz.model_to_tile(img, tile, self.model_side)
            return out
        return self._cached(key, make)

    def idle_picture(self, t: float, footage: np.ndarray | None, footage_key,
                     drift: list[np.ndarray] | None, drift_key) -> np.ndarray:
        drift_full = self._tiles_from_model(("drift", drift_key), drift) if drift else None
        foot = self._cached(("foot", footage_key), lambda: nz.cover(footage, self.width, self.height)) \
            if footage is not None else None
        if foot is None and drift_full is None:
            return self._grey
        if foot is None:
            return drift_full
        if drift_full is None:
            return foot
        if self.layout == "diptych":
            left = self.tiles[0]
            def make():
                out = drift_full.copy()
                out[:, left.x:left.x + left.w] = nz.cover(footage, left.w, left.h)
                return out
            return self._cached(("dip", footage_key, drift_key), make)
        # full: footage breathes with the drift, a slow crossfade
        w = 0.5 + 0.5 * np.sin(t * 0.2)
        return nz.blend(foot, drift_full, 0.35 * w, out=self._scratch)

    def compose(self, cue: Cue, idle: np.ndarray, camera: np.ndarray | None,
                eps_screen: np.ndarray | None, generated: list[np.ndarray] | None, gen_key) -> np.ndarray:
        """One frame for the projector. `camera` is already at display size (or None)."""
        if cue.state != self._last_state:
            if cue.state == State.RELEASE:
                self._snapshot = self.frame.copy()
            self._last_state = cue.state
        out = self.frame
        state = cue.state
        if state == State.IDLE:
            out[...] = idle
        elif state == State.APPROACH:
            if camera is None:
                out[...] = idle
            else:
                nz.blend(idle, camera, cue.camera_mix, out=out)
        elif state == State.IMMERSION:
            base = camera if camera is not None else idle
            if eps_screen is None:
                out[...] = base
            else:
                nz.dissolve(base, eps_screen, cue.sigma, out=out)
        elif state in (State.EMERGENCE, State.HOLD):
            grown = self._tiles_from_model(("gen", gen_key), generated) if generated else None
            if grown is None:
                # Nothing generated yet: the sea of noise holds (pure noise at the peak level).
                base = camera if camera is not None else idle
                if eps_screen is not None:
                    nz.dissolve(base, eps_screen, max(cue.sigma, self.sigma_peak), out=out)
                else:
                    out[...] = idle
            elif eps_screen is not None and cue.sigma > 0:
                nz.dissolve(grown, eps_screen, cue.sigma, out=out)
            else:
                out[...] = grown
        elif state == State.RELEASE:
            src = self._snapshot if self._snapshot is not None else idle
            nz.blend(src, idle, cue.idle_mix, out=out)
        return out
