"""The box: devices, show, generation, compositor and lights wired together. One `step()` per
projector frame; everything it calls either returns at once or reads a latest value.

    presence --reading--> filter --present--> show machine --Cue--> compositor --frame--> display/recorder
    camera --latest frame----------------------------^   |              ^
    generation worker <--- visitor / drift jobs ---------+              | (predictions, step by step)
                      ------------------------------------------------- +
    Cue --> lights (patch) --universe--> DMX sender (own thread, fixed rate)
"""
from __future__ import annotations

import json
import logging
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware.box_venue import VenueSteps
from firmware.config import Config
from firmware.devices.camera import NoCamera, open_camera
from firmware.devices.display import open_display
from firmware.devices.dmx import open_dmx
from firmware.devices.presence import NoPresence, open_presence
from firmware.generate.manifest import ModelError, ModelInfo, load_model_dir
from firmware.generate.stages import Upsampler
from firmware.generate.worker import DriftJob, GenerationWorker, VisitorJob, seeded_sigmas, slerp
from firmware.render import noise as nz
from firmware.render.compositor import Compositor
from firmware.render.footage import FootageError, FootagePlayer, footage_path, load_footage
from firmware.show.lights import light_level, safe_universe
from firmware.show.machine import ShowState, State, Timings, step_show
from firmware.show.presence import PresenceParams, PresenceState, update_presence
from firmware.show.subjects import drift_subject, pick_subject, subject_weights

log = logging.getLogger("humus.box")

VISITOR_TRIES = 3  # generations started per visitor before the emergence gives up on them
DRIFT_FPS = 8.0   # drift images per second requested while idle (the walk is slow; 8 looks fluid)


@dataclass
class Trace:
    """What happened, for the preview, tests and the field tech: state changes and DMX frames."""
    states: list[tuple[float, State, int]] = field(default_factory=list)
    faults: list[tuple[float, str]] = field(default_factory=list)


class Box(VenueSteps):
    def __init__(self, config: Config, clock, *, threaded: bool = True, threaded_dmx: bool | None = None,
                 engine=None, model: ModelInfo | None = None,
                 footage_frames: list[np.ndarray] | None = None, wall_start=None) -> None:
        """threaded: generation (and, unless threaded_dmx says otherwise, DMX) on their own threads;
        False runs them inline from step() - exact and repeatable with a FakeClock.
        wall_start: the wall-clock instant of clock.now() at start (the schedule's time); default now."""
        # type = "auto": detect before opening anything, then open what was found like any config
        self.auto = None
        from firmware.devices.hotplug import AutoDevices, auto_roles
        if auto_roles(config):
            self.auto = AutoDevices(config)
            config = self.auto.resolved(config)
            if threaded:
                self.auto.start()
        self.config = config
        self.clock = clock
        self.threaded = threaded
        self.threaded_dmx = threaded if threaded_dmx is None else threaded_dmx
        self.trace = Trace()
        self.started_at = clock.now()
        show = config.show
        self.timings = Timings.from_config(show)
        self.presence_params = PresenceParams(show.trigger_m, show.release_m, show.dwell_s,
                                              show.leave_grace_s, config.presence.stale_after_s)
        self.show_state = ShowState(since=clock.now())
        self.presence_state = PresenceState()
        self.cue = None

        self.display = open_display(config.display, clock)
        self.width, self.height = config.display.width, config.display.height
        self.camera = self._open_or_none("camera", lambda: open_camera(config.camera, clock), NoCamera)
        self.presence = open_presence(config.presence, clock)
        self.dmx = open_dmx(config.dmx, clock, isolate=self.threaded_dmx)
        if self.threaded_dmx:
            self.dmx.start()

        self.model, self.engine, self.net, self.sigmas = model, engine, None, ()
        model_problem = None
        if self.engine is None:
            self.model, self.engine, model_problem = self._open_model()
        if self.model is not None:
            self.net = self.model.network(config.model.network)
            self.sigmas = self.net.sigmas(config.model.steps)
        self.model_side = self.model.resolution[1] if self.model else 64
        self.upsampler = self._open_upsampler()
        self.subject_weights, unknown = subject_weights(show.subjects, self.model.subjects if self.model else ())
        if unknown and self.model is not None:
            self._fault(f"show.subjects: {', '.join(unknown)} not among the model's subjects "
                        f"({', '.join(self.model.subjects) or 'it has none'}); ignored")
        self.worker = GenerationWorker(self.engine, threaded=threaded, upsampler=self.upsampler)
        if model_problem:
            self.worker.health.ok, self.worker.health.detail = False, model_problem
        self.compositor = Compositor(self.width, self.height, show.layout, self.model_side)

        self.footage = None
        frames = footage_frames
        source = footage_path(show.footage)
        if frames is None and source is not None:
            try:
                frames = load_footage(source)
            except FootageError as exc:
                self._fault(f"footage: {exc}")
        if frames:
            self.footage = FootagePlayer(frames, show.footage_fps)

        self._prep = ThreadPoolExecutor(1, thread_name_prefix="visitor-prep") if threaded else None
        self._noise_future: Future | None = None
        self._noise: nz.VisitorNoise | None = None
        self._noise_visitor = -1
        self._job_visitor = -1
        self._job_tries = 0
        self._cam_key = None
        self._cam_display: np.ndarray | None = None
        self._drift_requested_at = -math.inf
        self._prev_state = State.IDLE
        self._u8_cache: dict[str, tuple] = {}
        self.frames = 0
        self.frame_times: list[float] = []
        self.recorder = None
        from firmware.venue import Venue
        self.venue = Venue(config, clock, wall_start, t0=self.started_at)   # --start is the box's start
        self.venue_now = self.venue.update()
        self._forced_visitor = -1         # a /humus/trigger's visitor: present through the hold
        self._triggers_seen = 0
        self._dark: np.ndarray | None = None

    # ------------------------------------------------------------------ set-up
    def _open_or_none(self, what, opener, fallback):
        try:
            return opener()
        except Exception as exc:  # any backend failure: run on without the device
            self._fault(f"{what}: cannot open ({exc}); running without it")
            return fallback(None, self.clock)

    def _open_model(self):
        """(model, engine, None), or (None, None, why): a model that fails validation, the reference
        check or even the engine's own loader never stops the show; the footage and the dissolve
        run on, and the fault is one log line and one entry in the status file."""
        from firmware.generate.engines import EngineError, open_engine
        cfg = self.config.model
        engine = None
        try:
            model = load_model_dir(cfg.dir)
            model.network(cfg.network).sigmas(cfg.steps)   # [model] steps must exist in the manifest
            engine = open_engine(model, cfg.network, cfg.engine, cache_dir=cfg.engine_cache,
                                 threads=cfg.threads)
            log.info("model %s: %s on %s", model.name, cfg.network, engine.describe())
            return model, engine, None
        except (ModelError, EngineError, OSError, MemoryError) as exc:
            problem = str(exc)
        except Exception as exc:  # vendor runtimes raise their own types; still only a model fault
            problem = f"{type(exc).__name__}: {exc}"
        if engine is not None:
            engine.close()
        problem = problem.replace("\n  ", "; ")
        self._fault(f"model: {problem}; showing footage only")
        return None, None, f"no model: {problem[:200]}"

    def _open_upsampler(self) -> Upsampler | None:
        """The cascade's stage, when the model has one; a broken one is a fault, never a stop."""
        if self.model is None or (self.model.upsampler is None and not self.model.stage_errors):
            return None
        up = Upsampler(self.model.upsampler, threads=max(1, self.config.model.threads))
        if self.model.stage_errors:
            up.fault(self.model.stage_errors[0])
        problem = self.model.stage_errors[0] if self.model.stage_errors else up.failed
        if problem:
            self._fault(f"model stage: {problem}; showing the base image upscaled")
        return up

    def _fault(self, text: str) -> None:
        log.warning("%s", text)
        self.trace.faults.append((self.clock.now(), text))

    def warm_up(self) -> None:
        """Run the model once before READY, so the first visitor does not pay for lazy init."""
        if self.engine is not None and self.net is not None:
            x = np.zeros(self.net.inputs["x"], np.float32)
            try:
                self.engine.denoise(x, self.sigmas[0], self.config.show.decay)
            except Exception as exc:  # an engine that cannot run once will not run for a visitor
                self._fault(f"model: warm-up failed ({type(exc).__name__}: {exc}); showing footage only")
                self.worker.engine = self.engine = self.model = self.net = None
                self.sigmas = ()
                self.worker.health.ok, self.worker.health.detail = False, "no model: warm-up failed"

    # ------------------------------------------------------------------ the frame
    def step(self) -> np.ndarray:
        now = self.clock.now()
        if self.auto is not None:
            for role, section in self.auto.changes():
                self._swap(role, section)
        self.venue_now = self.venue.update()
        if not self.venue_now.open:
            return self._closed_step(now)
        reading = self.presence.latest()
        self.presence_state = update_presence(
            self.presence_params, self.presence_state,
            # No reading yet counts from start-up: a sensor still opening is not stale at the first frame.
            reading.distance_m if reading else None, reading.t if reading else self.started_at, now)
        if self.presence_state.stale and not isinstance(self.presence, NoPresence):
            self.presence.fault("stale sensor: no reading for "
                                f"{self.config.presence.stale_after_s:g} s")
        elif reading is not None and self.presence.health.detail.startswith("stale sensor"):
            # Undo only the stale verdict: a fault the sensor raised itself (its port lost, say)
            # is the sensor's to clear, or the health (and the log) would flap every frame.
            self.presence.recover()
        inputs = self.venue.inputs
        if inputs.triggers != self._triggers_seen:
            self._triggers_seen = inputs.triggers
            if self.show_state.state == State.IDLE:   # a trigger starts a sequence, cooldown or not
                self.show_state = ShowState(State.APPROACH, now, self.show_state.visitor + 1)
                self._forced_visitor = self.show_state.visitor
        # a triggered sequence plays in full, as if its visitor stayed until the hold was over
        forced = (self._forced_visitor == self.show_state.visitor
                  and self.show_state.state in (State.APPROACH, State.IMMERSION, State.EMERGENCE, State.HOLD))
        present = self.presence_state.present or inputs.visitor or forced
        self.show_state, cue = step_show(self.timings, self.show_state, present, now)
        self.cue = cue
        self._note_state(now, cue.state, cue.visitor)
        self.venue.publish(cue.state, present, cue.noise_level, self.trace.faults)
        self.venue.publish_health(now, self.devices_health)
        self._visitor_work(cue, now)
        self._drift_work(now)
        if not self.threaded:
            self.worker.process_pending()

        camera = self._camera_picture()
        idle = self._idle_picture(now)
        vres = self.worker.visitor_result.get()
        generated, gen_key = None, None
        if vres is not None and vres.visitor == cue.visitor and vres.preds and vres.failed is None:
            k = self._shown_step(cue, len(vres.sigmas), len(vres.preds))
            gen_key = (cue.visitor, k)
            generated = self._u8(("gen", gen_key), vres.preds[k])
        eps = self._noise.screen_u8 if self._noise is not None and self._noise_visitor == cue.visitor else None
        if (vres is not None and vres.visitor == cue.visitor and vres.failed is not None
                and cue.state in (State.EMERGENCE, State.HOLD)):
            eps = None  # this visitor's generation failed: show the idle, not a still sea of noise
        frame = self.compositor.compose(cue, idle, camera, eps, generated, gen_key)
        self.display.present(frame)
        if self.recorder is not None:
            self.recorder.write(frame)
        self._lights(cue, now)
        self._prev_state = cue.state
        self.frames += 1
        return frame

    def _note_state(self, now: float, state: str, visitor: int) -> None:
        if state != self._prev_state:
            self.trace.states.append((now, state, visitor))
            if len(self.trace.states) > 4_000:   # months unattended: keep the recent history only
                del self.trace.states[:2_000]
            log.info("state %s -> %s (visitor %d)", self._prev_state, state, visitor)

    def _u8(self, key, images: np.ndarray) -> list[np.ndarray]:
        """Model outputs as pictures, converted once per new image, not once per frame."""
        if self._u8_cache.get(key[0], (None,))[0] != key:
            self._u8_cache[key[0]] = (key, [nz.to_u8(img) for img in images])
        return self._u8_cache[key[0]][1]

    @staticmethod
    def _shown_step(cue, n_steps: int, n_done: int) -> int:
        """Which prediction the emergence shows: reveal walks through the steps; never one not done."""
        want = n_steps - 1 if cue.state != State.EMERGENCE else min(n_steps - 1, int(cue.reveal * n_steps))
        return min(want, n_done - 1)

    def _camera_picture(self) -> np.ndarray | None:
        frame = self.camera.latest()
        if frame is None:
            # Forget the last picture: a visitor must never be seeded with an earlier one (no camera:
            # generation from pure noise).
            self._cam_display = self._cam_key = None
            return None
        if self._cam_key != frame.seq:
            img = frame.image[:, ::-1] if getattr(self.config.camera, "mirror", False) else frame.image
            # live video: bilinear is enough and half the cost of bicubic at projector size
            self._cam_display = nz.cover(img, self.width, self.height, smooth=False)
            self._cam_key = frame.seq
        return self._cam_display

    def _idle_picture(self, now: float) -> np.ndarray:
        t = now - self.started_at
        foot, foot_key = None, None
        if self.footage is not None:
            foot_key = self.footage.index_at(t)
            foot = self.footage.frames[foot_key]
        dres = self.worker.drift_result.get()
        drift = self._u8(("drift", dres.key), dres.images) if dres is not None else None
        return self.compositor.idle_picture(t, foot, foot_key, drift, dres.key if dres else None)

    # ------------------------------------------------------------------ generation requests
    def _visitor_work(self, cue, now: float) -> None:
        self._noise_work(cue)
        if cue.state == State.IDLE or self.model is None:
            return
        # Once the visitor is immersed, grow their images from their noise (off this thread).
        # A failed generation (a transient engine error) is tried again while there is still
        # a sequence to show it in; after VISITOR_TRIES the emergence shows the idle instead.
        if cue.state not in (State.IMMERSION, State.EMERGENCE) or self._noise_visitor != cue.visitor:
            return
        if self._job_visitor == cue.visitor:
            res = self.worker.visitor_result.get()
            failed = res is not None and res.visitor == cue.visitor and res.failed is not None
            if not failed or self._job_tries >= VISITOR_TRIES:
                return
        if self.worker.available:
            self._job_tries = self._job_tries + 1 if self._job_visitor == cue.visitor else 1
            self._job_visitor = cue.visitor
            self.worker.submit_visitor(self._visitor_job(cue))

    def _noise_work(self, cue) -> None:
        """Each visitor gets one noise field, at display and model resolution. It is made while the
        box is idle, for the visitor who has not come yet, so a trigger costs the display nothing."""
        want = cue.visitor + 1 if cue.state == State.IDLE else cue.visitor
        if self._noise_visitor == want:
            return
        future = self._noise_future
        if future is not None:
            if not future.done():
                return
            self._noise_future = None
            noise, visitor = future.result()
            if visitor == want:
                self._noise, self._noise_visitor = noise, visitor
                return
        make = (lambda v=want: (self._make_noise(v), v))
        if self._prep is not None:
            self._noise_future = self._prep.submit(make)
        else:
            self._noise, self._noise_visitor = make()

    def _make_noise(self, visitor: int) -> nz.VisitorNoise:
        # Without a model the dissolve still runs (it is the show's forward process, not the model's
        # output); the model-resolution half of the noise is then simply unused.
        model_hw = self.model.resolution if self.model is not None else (64, 64)
        return nz.make_visitor_noise(visitor * 1_000_003 + 17, self.compositor.tiles, self.width,
                                     self.height, model_hw)

    def _visitor_job(self, cue) -> VisitorJob:
        show = self.config.show
        seed = None
        sigmas = self.sigmas
        if show.seed_strength > 0 and self._cam_display is not None:
            side = self.model_side
            seed = np.stack([nz.from_u8(nz.resize(self._cam_display[t.y:t.y + t.h, t.x:t.x + t.w],
                                                   side, side, smooth=False))
                             for t in self.compositor.tiles])
            sigmas = seeded_sigmas(self.sigmas, show.seed_strength, self.model.sigma_max)
        return VisitorJob(visitor=cue.visitor, eps=self._noise.model_eps, sigmas=sigmas,
                          sampler=self.net.sampler, decay=self.decay, seed_image=seed,
                          strength=show.seed_strength, subject=self._subject_for(cue.visitor))

    def _subject_for(self, visitor: int) -> int | None:
        """The visitor's subject: the one a show controller named (/humus/subject), if the model has
        it, else drawn by the configured weights."""
        if self.model is not None and self.subject in self.model.subjects:
            return self.model.subjects.index(self.subject)
        return pick_subject(self.subject_weights, visitor)

    def _drift_work(self, now: float) -> None:
        if self.model is None or self.show_state.state not in (State.IDLE, State.RELEASE, State.APPROACH):
            return
        if now - self._drift_requested_at < 1.0 / DRIFT_FPS or self.worker.busy:
            return
        self._drift_requested_at = now
        t = (now - self.started_at) / self.config.show.drift_period_s
        j, p = int(math.floor(t)), t - math.floor(t)
        n = len(self.compositor.tiles)
        shape = (n, self.model.channels, *self.model.resolution)
        a = np.random.default_rng(j).standard_normal(shape, dtype=np.float32)
        b = np.random.default_rng(j + 1).standard_normal(shape, dtype=np.float32)
        sigmas = self.net.sigmas(min(self.net.steps)) if self.net.sampler == "consistency" else self.sigmas
        self.worker.submit_drift(DriftJob(key=t, noise=slerp(a, b, p),
                                          sigmas=sigmas, sampler=self.net.sampler,
                                          decay=self.decay,
                                          subject=drift_subject(self.subject_weights, j)))

    # ------------------------------------------------------------------ lights
    def _lights(self, cue, now: float) -> None:
        looks = self.config.lights.looks
        since = now - self.show_state.since
        prev = self.trace.states[-2][1] if len(self.trace.states) >= 2 else State.IDLE
        if prev == State.CLOSED:
            prev = State.IDLE   # opening: fade up from the idle look's place
        level = light_level(looks, cue.state, prev, since, self.config.lights.fade_s, cue.noise_level)
        self._send_universe(level)

    # ------------------------------------------------------------------ lifecycle
    def devices_health(self) -> dict:
        devs = {"camera": self.camera, "presence": self.presence, "dmx": self.dmx,
                "display": self.display, "generator": self.worker}
        if self.upsampler is not None:
            devs["upsampler"] = self.upsampler
        if self.venue.projector is not None:
            devs["projector"] = self.venue.projector
        return {k: {"ok": d.health.ok, "detail": d.health.detail} for k, d in devs.items()}

    def close(self) -> None:
        try:
            self.dmx.send_final(safe_universe(self.config.lights, self.config.dmx.safe_look
                                              if hasattr(self.config.dmx, "safe_look") else "blackout",
                                              self.dmx.channels))
        except Exception as exc:  # shutting down: report, never raise
            log.warning("could not send the safe look: %s", exc)
        for dev in (self.venue, self.auto) if self.auto else (self.venue,):
            dev.close()   # neither raises: they report their own trouble
        for dev in (self.worker, self.upsampler, self.camera, self.presence, self.dmx, self.display):
            if dev is None:
                continue
            try:
                dev.close()
            except Exception as exc:
                log.warning("closing %s: %s", dev.name, exc)
        if self._prep is not None:
            self._prep.shutdown(wait=False, cancel_futures=True)
        if self.recorder is not None:
            self.recorder.close()
