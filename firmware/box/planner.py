"""The box's generation planning: what the generation worker is asked for and which
of its results the compositor shows.

Per visitor: one noise field (made ahead, while idle, for the visitor who has not come yet), one
visitor job once they are immersed, tried again after a failure while there is still a sequence to
show it in, and seeded from the camera picture when `seed_strength` asks for it. While idle: a slow
drift of images through the model's noise space. Per frame: which denoising step the emergence
shows, and the model outputs as pictures, converted once per new image.
"""
from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from firmware.generate.conditions import Conditions, snap_decay
from firmware.generate.worker import DriftJob, VisitorJob, seeded_sigmas, slerp
from firmware.render import noise as nz
from firmware.show.machine import State
from firmware.show.subjects import drift_subject, pick_subject

VISITOR_TRIES = 3  # generations started per visitor before the emergence gives up on them
DRIFT_FPS = 8.0   # drift images per second requested while idle (the walk is slow; 8 looks fluid)


class GenerationPlanner:
    """Owns the noise-prep pool, the retries, the drift pacing and the picture caches.

    The box calls `request` once per frame and reads `visitor_pictures` and `drift_pictures` when it
    composes; without a model (footage only) nothing is requested.
    """

    def __init__(self, session, compositor, show, width: int, height: int, threaded: bool,
                 started_at: float) -> None:
        """session: the ModelSession, the one owner of the model, read here and never copied (a
        model dropped at warm-up is gone for the planner at once)."""
        self.session, self.compositor, self.show = session, compositor, show
        self.worker = session.worker
        self.width, self.height, self.started_at = width, height, started_at
        self._prep = ThreadPoolExecutor(1, thread_name_prefix="visitor-prep") if threaded else None
        self._noise_future: Future | None = None
        self.noise: nz.VisitorNoise | None = None   # the newest visitor noise field ...
        self.noise_visitor = -1                     # ... and whose it is
        self._job_visitor = -1
        self.job_tries = 0                          # generations started for the current visitor
        self.drift_requested_at = -math.inf
        self._u8_cache: dict[str, tuple] = {}

    @property
    def model(self):
        return self.session.model

    @property
    def net(self):
        return self.session.net

    def hold_drift(self) -> None:
        """Request no more drift images (bench: the idle picture stands still, so a change is ours)."""
        self.drift_requested_at = math.inf

    # ------------------------------------------------------------------ requests
    def request(self, cue, now: float, show_state: State, camera_picture, cond: Conditions) -> None:
        """The frame's generation requests: the visitor's noise and job, and the idle drift, under
        the show's conditions (generate.conditions.show_conditions)."""
        self._noise_work(cue)
        self._visitor_work(cue, camera_picture, cond)
        self._drift_work(now, show_state, cond)

    def _visitor_work(self, cue, camera_picture, cond: Conditions) -> None:
        if cue.state == State.IDLE or self.model is None:
            return
        # Once the visitor is immersed, grow their images from their noise (off this thread).
        # A failed generation (a transient engine error) is tried again while there is still
        # a sequence to show it in; after VISITOR_TRIES the emergence shows the idle instead.
        if cue.state not in (State.IMMERSION, State.EMERGENCE) or self.noise_visitor != cue.visitor:
            return
        if self._job_visitor == cue.visitor:
            res = self.worker.visitor_result.get()
            failed = res is not None and res.visitor == cue.visitor and res.failed is not None
            if not failed or self.job_tries >= VISITOR_TRIES:
                return
        if self.worker.available:
            self.job_tries = self.job_tries + 1 if self._job_visitor == cue.visitor else 1
            self._job_visitor = cue.visitor
            self.worker.submit_visitor(self._visitor_job(cue, camera_picture, cond))

    def _noise_work(self, cue) -> None:
        """Each visitor gets one noise field, at display and model resolution. It is made while the
        box is idle, for the visitor who has not come yet, so a trigger costs the display nothing."""
        want = cue.visitor + 1 if cue.state == State.IDLE else cue.visitor
        if self.noise_visitor == want:
            return
        future = self._noise_future
        if future is not None:
            if not future.done():
                return
            self._noise_future = None
            noise, visitor = future.result()
            if visitor == want:
                self.noise, self.noise_visitor = noise, visitor
                return
        make = (lambda v=want: (self._make_noise(v), v))
        if self._prep is not None:
            self._noise_future = self._prep.submit(make)
        else:
            self.noise, self.noise_visitor = make()

    def _make_noise(self, visitor: int) -> nz.VisitorNoise:
        # Without a model the dissolve still runs (it is the show's forward process, not the model's
        # output); the model-resolution half of the noise is then simply unused.
        model_hw = self.model.resolution if self.model is not None else (64, 64)
        return nz.make_visitor_noise(visitor * 1_000_003 + 17, self.compositor.tiles, self.width,
                                     self.height, model_hw)

    def _visitor_job(self, cue, camera_picture, cond: Conditions) -> VisitorJob:
        show = self.show
        seed = None
        sigmas = self.session.sigmas
        if show.seed_strength > 0 and camera_picture is not None:
            side = self.session.model_side
            seed = np.stack([nz.from_u8(nz.resize(camera_picture[t.y:t.y + t.h, t.x:t.x + t.w],
                                                   side, side, smooth=False))
                             for t in self.compositor.tiles])
            sigmas = seeded_sigmas(self.session.sigmas, show.seed_strength, self.model.sigma_max)
        # The visitor's subject: the one a show controller named, else drawn by the configured weights.
        if cond.subject is None:
            cond = replace(cond, subject=pick_subject(self.session.subject_weights, cue.visitor))
        cond = snap_decay(cond, self.model.decay_support)
        return VisitorJob(visitor=cue.visitor, eps=self.noise.model_eps, sigmas=sigmas,
                          sampler=self.net.sampler, cond=cond, seed_image=seed,
                          strength=show.seed_strength, fresh=self.net.fresh)

    def _drift_work(self, now: float, show_state: State, cond: Conditions) -> None:
        if self.model is None or show_state not in (State.IDLE, State.RELEASE, State.APPROACH):
            return
        if now - self.drift_requested_at < 1.0 / DRIFT_FPS or self.worker.busy:
            return
        self.drift_requested_at = now
        t = (now - self.started_at) / self.show.drift_period_s
        j, p = int(math.floor(t)), t - math.floor(t)
        n = len(self.compositor.tiles)
        shape = (n, self.model.channels, *self.model.resolution)
        a = np.random.default_rng(j).standard_normal(shape, dtype=np.float32)
        b = np.random.default_rng(j + 1).standard_normal(shape, dtype=np.float32)
        sigmas = self.net.sigmas(min(self.net.steps)) if self.net.sampler == "consistency" else self.session.sigmas
        # The idle wanders through the configured subjects, whichever one a controller named.
        self.worker.submit_drift(DriftJob(key=t, noise=slerp(a, b, p), sigmas=sigmas,
                                          sampler=self.net.sampler, fresh=self.net.fresh,
                                          cond=snap_decay(replace(cond, subject=drift_subject(
                                              self.session.subject_weights, j)), self.model.decay_support)))

    # ------------------------------------------------------------------ what to show
    def visitor_pictures(self, cue):
        """(generated pictures, their key, the visitor's screen noise) for the compositor."""
        vres = self.worker.visitor_result.get()
        generated, gen_key = None, None
        if vres is not None and vres.visitor == cue.visitor and vres.preds and vres.failed is None:
            k = shown_step(cue, len(vres.sigmas), len(vres.preds))
            gen_key = (cue.visitor, k)
            generated = self._u8(("gen", gen_key), vres.preds[k])
        eps = self.noise.screen_u8 if self.noise is not None and self.noise_visitor == cue.visitor else None
        if (vres is not None and vres.visitor == cue.visitor and vres.failed is not None
                and cue.state in (State.EMERGENCE, State.HOLD)):
            eps = None  # this visitor's generation failed: show the idle, not a still sea of noise
        return generated, gen_key, eps

    def drift_pictures(self):
        """(the newest drift images as pictures, their key), or (None, None)."""
        dres = self.worker.drift_result.get()
        if dres is None:
            return None, None
        return self._u8(("drift", dres.key), dres.images), dres.key

    def _u8(self, key, images: np.ndarray) -> list[np.ndarray]:
        """Model outputs as pictures, converted once per new image, not once per frame."""
        if self._u8_cache.get(key[0], (None,))[0] != key:
            self._u8_cache[key[0]] = (key, [nz.to_u8(img) for img in images])
        return self._u8_cache[key[0]][1]

    def close(self) -> None:
        if self._prep is not None:
            self._prep.shutdown(wait=False, cancel_futures=True)


def shown_step(cue, n_steps: int, n_done: int) -> int:
    """Which prediction the emergence shows: reveal walks through the steps; never one not done."""
    want = n_steps - 1 if cue.state != State.EMERGENCE else min(n_steps - 1, int(cue.reveal * n_steps))
    return min(want, n_done - 1)
