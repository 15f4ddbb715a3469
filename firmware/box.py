"""The box: devices, show, generation, compositor and lights wired together. One `step()` per
projector frame; everything it calls either returns at once or reads a latest value.

    presence --reading--> filter --present--> show machine --Cue--> compositor --frame--> display/recorder
    camera --latest frame----------------------------^   |              ^
    generation worker <--- visitor / drift jobs ---------+              | (predictions, step by step)
                      ------------------------------------------------- +
    Cue --> lights (patch) --universe--> DMX sender (own thread, fixed rate)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from firmware.box_generation import DRIFT_FPS, VISITOR_TRIES, GenerationPlanner  # noqa: F401  (re-exported)
from firmware.box_venue import VenueSteps
from firmware.config.schema import Config
from firmware.devices.camera.sim import NoCamera
from firmware.devices.camera.table import open_camera
from firmware.devices.display.table import open_display
from firmware.devices.dmx.open import open_dmx
from firmware.devices.presence.table import open_presence
from firmware.generate.conditions import Conditions
from firmware.generate.manifest import ModelError, ModelInfo, load_model_dir
from firmware.generate.stages import Upsampler
from firmware.generate.worker import GenerationWorker
from firmware.render.camera_picture import CameraPicture, bounded_camera
from firmware.render.compositor import Compositor
from firmware.render.footage import FootageError, FootagePlayer, footage_path, load_footage
from firmware.show.lights import LightsState, safe_universe, step_lights
from firmware.show.machine import ShowState, State, Timings, step_show
from firmware.show.presence import PresenceParams, PresenceState, update_presence
from firmware.show.subjects import subject_weights

log = logging.getLogger("humus.box")


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
        self._camera_warned: set[str] = set()
        self.camera = self._open_camera(config.camera)
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
        self.compositor = Compositor(self.width, self.height, show.layout, self.model_side, show.sigma_peak)

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

        self.generation = GenerationPlanner(self.worker, self.compositor, show, self.width, self.height,
                                            threaded, self.started_at, self.subject_weights)
        self.generation.use_model(self.model, self.net, self.sigmas)
        self.camera_picture = CameraPicture(self.width, self.height)
        self._prev_state = State.IDLE
        self.lights = LightsState()
        self.frames = 0
        self.frame_times: list[float] = []
        self.recorder = None
        # Where each composed frame goes, in order: the projector, then (with --record) the file.
        self.sinks = [self.display.present]
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

    def _open_camera(self, section):
        """The camera at no more than the show can use (render/camera_picture.py), scaled at the
        source; what was cut is said once, not at every hot-plug."""
        section, warning = bounded_camera(section, self.config.display)
        if warning and warning not in self._camera_warned:
            self._camera_warned.add(warning)
            log.warning("%s", warning)
        return self._open_or_none("camera", lambda: open_camera(section, self.clock), NoCamera)

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
        from firmware.generate.providers import for_stage

        # The stage runs where the generator runs (the GPU on a Jetson), not always on the CPU.
        up = Upsampler(self.model.upsampler, threads=max(1, self.config.model.threads),
                       providers=for_stage(self.engine.providers if self.engine is not None else ()))
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
                self.engine.denoise(x, self.sigmas[0], Conditions(self.config.show.decay))
            except Exception as exc:  # an engine that cannot run once will not run for a visitor
                self._fault(f"model: warm-up failed ({type(exc).__name__}: {exc}); showing footage only")
                self.worker.engine = self.engine = self.model = self.net = None
                self.sigmas = ()
                self.generation.use_model(None, None, ())
                self.worker.health.ok, self.worker.health.detail = False, "no model: warm-up failed"

    # ------------------------------------------------------------------ the frame
    def step(self) -> np.ndarray:
        """One projector frame: read the latest inputs, advance the show, ask for generation,
        compose, and hand the frame to the sinks and the lights."""
        now = self.clock.now()
        self._follow_plugs()
        self.venue_now = self.venue.update()
        if not self.venue_now.open:
            return self._closed_step(now)
        present = self._read_presence(now)
        cue = self._advance_show(present, now)
        self.generation.request(cue, now, self.show_state.state, self.camera_picture.picture,
                                self.conditions)
        if not self.threaded:
            self.worker.process_pending()
        frame = self._compose(cue, now)
        self._to_sinks(frame)
        self._lights(cue, now)
        self._prev_state = cue.state
        self.frames += 1
        return frame

    def _follow_plugs(self) -> None:
        if self.auto is not None:
            for role, section in self.auto.changes():
                self._swap(role, section)

    def _read_presence(self, now: float) -> bool:
        """Whether someone is there: the filtered sensor, an OSC visitor, or a triggered sequence."""
        reading = self.presence.latest()
        self.presence_state = update_presence(
            self.presence_params, self.presence_state,
            # No reading yet counts from start-up: a sensor still opening is not stale at the first frame.
            reading.distance_m if reading else None, reading.t if reading else self.started_at, now)
        self.presence.follow_filter(self.presence_state.stale, self.presence_params.stale_after_s)
        inputs = self.venue.inputs
        if inputs.triggers != self._triggers_seen:
            self._triggers_seen = inputs.triggers
            if self.show_state.state == State.IDLE:   # a trigger starts a sequence, cooldown or not
                self.show_state = ShowState(State.APPROACH, now, self.show_state.visitor + 1)
                self._forced_visitor = self.show_state.visitor
        # a triggered sequence plays in full, as if its visitor stayed until the hold was over
        forced = (self._forced_visitor == self.show_state.visitor
                  and self.show_state.state in (State.APPROACH, State.IMMERSION, State.EMERGENCE, State.HOLD))
        return self.presence_state.present or inputs.visitor or forced

    def _advance_show(self, present: bool, now: float):
        self.show_state, cue = step_show(self.timings, self.show_state, present, now)
        self.cue = cue
        self._note_state(now, cue.state, cue.visitor)
        self.venue.publish(cue.state, present, cue.noise_level, self.trace.faults)
        self.venue.publish_health(now, self.devices_health)
        return cue

    def _compose(self, cue, now: float) -> np.ndarray:
        camera = self.camera_picture.update(self.camera.latest(), self.config.camera.mirror)
        idle = self._idle_picture(now)
        generated, gen_key, eps = self.generation.visitor_pictures(cue)
        return self.compositor.compose(cue, idle, camera, eps, generated, gen_key)

    def _to_sinks(self, frame: np.ndarray) -> None:
        for sink in self.sinks:
            sink(frame)

    def attach_recorder(self, recorder) -> None:
        """Record every frame the projector shows from now on; the box closes the recorder."""
        self.recorder = recorder
        self.sinks.append(recorder.write)

    def _note_state(self, now: float, state: str, visitor: int) -> None:
        if state != self._prev_state:
            self.trace.states.append((now, state, visitor))
            if len(self.trace.states) > 4_000:   # months unattended: keep the recent history only
                del self.trace.states[:2_000]
            log.info("state %s -> %s (visitor %d)", self._prev_state, state, visitor)

    def _idle_picture(self, now: float) -> np.ndarray:
        t = now - self.started_at
        foot, foot_key = None, None
        if self.footage is not None:
            foot_key = self.footage.index_at(t)
            foot = self.footage.frames[foot_key]
        drift, drift_key = self.generation.drift_pictures()
        return self.compositor.idle_picture(t, foot, foot_key, drift, drift_key)

    # ------------------------------------------------------------------ lights
    def _lights(self, cue, now: float) -> None:
        self.lights, level = step_lights(self.config.lights.looks, self.lights, cue.state,
                                         now - self.show_state.since, self.config.lights.fade_s, cue.noise_level)
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
            self.dmx.send_final(safe_universe(self.config.lights, self.config.dmx.safe_look,
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
        self.generation.close()
        if self.recorder is not None:
            self.recorder.close()
