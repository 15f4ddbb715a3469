"""The box: one `step()` per projector frame; it only conducts. Everything it calls either returns at
once or reads a latest value.

    devices, venue --FrameInputs--> show rules (show/visit.py) --Cue--> model session (requests)
                                                                  |--> compositor --frame--> sinks
                                                                  '--> lights room --universe--> DMX

Its parts are opened in order on one ExitStack and closed in the reverse order, also when opening a
later one fails: the safe look goes out before the DMX sender stops, the recorder is finalised first.
"""
from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass, field, replace

import numpy as np

from firmware.box.devices import BoxDevices
from firmware.box.lights import LightsRoom
from firmware.box.session import ModelSession
from firmware.box.status import BoxStatus, health_json, newest_after
from firmware.config.schema import Config
from firmware.render.camera_picture import CameraPicture
from firmware.render.compositor import Compositor
from firmware.render.footage import FootageError, FootagePlayer, footage_path, load_footage
from firmware.show.machine import ShowState, State
from firmware.show.visit import FrameInputs, Visit, VisitRules, step_visit

log = logging.getLogger("humus.box")
STATE_HISTORY = 4_000   # months unattended: the trace keeps the recent state changes only
FAULT_HISTORY = 1_000   # ... and the recent faults, with a count of all of them
RECENT_FAULTS = 16      # the faults a status carries: more than a frame ever raises


@dataclass
class Trace:
    """What happened, for the preview, tests and the field tech: state changes and faults, the
    recent ones (a box runs for months), and how many faults there were in all."""
    states: list[tuple[float, State, int]] = field(default_factory=list)
    faults: list[tuple[float, str]] = field(default_factory=list)
    faults_total: int = 0

    def add_fault(self, t: float, text: str) -> None:
        self.faults.append((t, text))
        self.faults_total += 1
        if len(self.faults) > FAULT_HISTORY:
            del self.faults[:FAULT_HISTORY // 2]

    def faults_after(self, seen: int) -> list[tuple[float, str]]:
        """The faults after the first `seen` of all of them, as far as the trace still keeps them."""
        return newest_after(self.faults, self.faults_total, seen)


class Box:
    def __init__(self, config: Config, clock, *, threaded: bool = True, threaded_dmx: bool | None = None,
                 engine=None, model=None, footage_frames: list[np.ndarray] | None = None,
                 wall_start=None) -> None:
        """threaded: generation (and, unless threaded_dmx says otherwise, DMX) on their own threads;
        False runs them inline from step() - exact and repeatable with a FakeClock.
        engine, model: an engine already open, used instead of opening [model] dir.
        wall_start: the wall-clock instant of clock.now() at start (the schedule's time); default now."""
        from firmware.venue import Venue
        self.clock = clock
        self.trace = Trace()
        self.started_at = clock.now()
        self.frames = 0
        self.frame_times: list[float] = []
        threaded_dmx = threaded if threaded_dmx is None else threaded_dmx
        self._stack = stack = ExitStack()
        with stack:   # a part that fails to open closes those opened before it
            self.devices = stack.enter_context(_closing(
                BoxDevices(config, clock, self._fault, threaded=threaded, threaded_dmx=threaded_dmx)))
            config = self.devices.config   # auto sections made concrete
            self.session = stack.enter_context(_closing(
                ModelSession(config, self._fault, threaded=threaded, engine=engine, model=model)))
            self.compositor = Compositor(config.display.width, config.display.height, config.show.layout,
                                         self.session.model_side, config.show.sigma_peak)
            self.session.plan(self.compositor, config.display.width, config.display.height, self.started_at)
            self.venue = stack.enter_context(_closing(Venue(config, clock, wall_start, t0=self.started_at)))
            self.lights = stack.enter_context(_closing(LightsRoom(config, self.devices,
                                                                  threaded_dmx=threaded_dmx)))
            self.footage = self._open_footage(footage_frames)
            self._stack = stack.pop_all()
        self.rules = VisitRules.from_config(config)
        self.visit = Visit(show=ShowState(since=self.started_at))
        self.cue = None
        self.venue_now = self.venue.update()
        self.camera_picture = CameraPicture(config.display.width, config.display.height)
        # Where each composed frame goes, in order: the projector, then (with --record) the file.
        self.sinks = [self.devices.display.present]
        self._dark = np.zeros((config.display.height, config.display.width, 3), np.uint8)

    @property
    def config(self) -> Config:
        """The running config: auto-detected devices made concrete, updated on each hot-plug."""
        return self.devices.config

    def _open_footage(self, frames):
        source = footage_path(self.config.show.footage)
        if frames is None and source is not None:
            try:
                frames = load_footage(source)
            except FootageError as exc:
                self._fault(f"footage: {exc}")
        return FootagePlayer(frames, self.config.show.footage_fps) if frames else None

    def _fault(self, text: str) -> None:
        log.warning("%s", text)
        self.trace.add_fault(self.clock.now(), text)

    def warm_up(self) -> None:
        """Run the model once before READY, so the first visitor does not pay for lazy init."""
        self.session.warm_up()

    # ------------------------------------------------------------------ the frame
    def read_inputs(self) -> FrameInputs:
        """The frame's inputs, each read once: hot-plugs swapped in, the venue's verdict, the OSC
        inputs, the newest presence reading and camera frame."""
        now = self.clock.now()   # the frame's instant: before the hot-plugs and the venue are looked at
        self.devices.follow_plugs()
        self.venue_now = self.venue.update()
        devices = self.devices
        if not self.venue_now.open:   # the show rests: the sensor and camera are not read
            return FrameInputs(now, self.venue_now, self.venue.inputs)
        return FrameInputs(now, self.venue_now, self.venue.inputs, devices.presence.latest(), devices.camera.latest())

    def step(self) -> np.ndarray:
        """One projector frame: read the inputs, advance the show, ask for generation, compose, and
        hand the frame to the sinks and the lights."""
        inputs = self.read_inputs()
        before = self.visit
        self.visit, cue = step_visit(self.rules, before, inputs, self.started_at)
        self.cue, now = cue, inputs.now
        if inputs.venue.open:
            self.devices.presence.follow_filter(self.visit.presence.stale, self.rules.presence.stale_after_s,
                                                inputs.reading)
        self._note_state(now, before.shown, self.visit.shown, cue.visitor)
        self.venue.publish(self.visit.shown, self.visit.present, cue.noise_level, self.trace)
        if inputs.venue.open:
            self.venue.publish_health(now, self.devices_health)
            self.session.request(cue, now, self.camera_picture.picture, inputs.osc)
            frame = self._compose(cue, inputs)
        else:   # outside opening hours the show rests: no generation, the wall dark
            frame = self._dark
        for sink in self.sinks:
            sink(frame)
        self.lights.frame(self.visit.shown, now - self.visit.show.since, cue.noise_level, inputs.osc)
        self.frames += 1
        return frame

    def _compose(self, cue, inputs: FrameInputs) -> np.ndarray:
        camera = self.camera_picture.update(inputs.camera, self.config.camera.mirror)
        t = inputs.now - self.started_at
        foot, foot_key = None, None
        if self.footage is not None:
            foot_key = self.footage.index_at(t)
            foot = self.footage.frames[foot_key]
        drift, drift_key = self.session.generation.drift_pictures()
        idle = self.compositor.idle_picture(t, foot, foot_key, drift, drift_key)
        generated, gen_key, eps = self.session.generation.visitor_pictures(cue)
        return self.compositor.compose(cue, idle, camera, eps, generated, gen_key)

    def _note_state(self, now: float, was: State, state: State, visitor: int) -> None:
        if state != was:
            self.trace.states.append((now, state, visitor))
            if len(self.trace.states) > STATE_HISTORY:
                del self.trace.states[:STATE_HISTORY // 2]
            log.info("state %s -> %s (visitor %d)", was, state, visitor)

    def rewind(self) -> None:
        """The show back to idle from now, with no cooldown and nobody there (a bench's next trial)."""
        self.visit = self.visit.rewound(self.clock.now())

    def attach_recorder(self, recorder) -> None:
        """Record every frame the projector shows from now on; the box closes the recorder."""
        self.sinks.append(recorder.write)
        self._stack.enter_context(_closing(recorder))

    # ------------------------------------------------------------------ status, end
    def parts(self) -> dict:
        """{role: part} for every device and model part with a health (and the projector, when
        controlled): camera, presence, dmx, display, generator, upsampler, projector."""
        parts = {**self.devices.by_role(), **self.session.by_role()}
        if self.venue.projector is not None:
            parts["projector"] = self.venue.projector
        return parts

    def devices_health(self) -> dict:
        """{role: {ok, detail}} for every part."""
        return health_json({k: d.health for k, d in self.parts().items()})

    def status(self) -> BoxStatus:
        recent = self.frame_times[-60:]
        venue = self.venue.status()
        if self.devices.auto is not None:
            venue["detected"] = self.devices.auto.status()
        engine, model = self.session.describe()
        shown = self.visit.shown if self.cue is not None else None
        return BoxStatus(show=shown, fps=round(len(recent) / max(1e-6, sum(recent)), 1) if recent else 0.0,
                         engine=engine, model=model,
                         devices={k: replace(d.health) for k, d in self.parts().items()},
                         venue=venue, faults_total=self.trace.faults_total,
                         recent_faults=tuple(text for _, text in self.trace.faults[-RECENT_FAULTS:]))

    def close(self) -> None:
        self._stack.close()


class _closing:
    """A part as a context manager that closes it on exit and never raises while shutting down."""

    def __init__(self, part) -> None:
        self.part = part

    def __enter__(self):
        return self.part

    def __exit__(self, *exc) -> None:
        try:
            self.part.close()
        except Exception as e:   # shutting down: report, never raise
            log.warning("closing %s: %s", type(self.part).__name__, e)
