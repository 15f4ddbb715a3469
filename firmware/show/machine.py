"""The show's state machine and timeline: a pure function (state, present, now) -> (state, Cue).

    idle -> approach -> immersion -> emergence -> hold -> release -> idle

- idle: footage and the model's drift. A visitor (filtered presence) starts `approach` unless the
  cooldown after the previous visitor is still running.
- approach: the camera image fades in over the idle picture.
- immersion: the visitor dissolves into noise; sigma rises log-linearly to `sigma_peak`, so every
  second drowns the picture by the same factor (that reads as steady to the eye).
- emergence: new images grow out of that same noise; `reveal` runs 0 -> 1 through the sampler's steps.
- hold: the grown images stay. release: fade back to idle, then the cooldown starts.

Visitor leaves: during approach or immersion -> release at once (nothing to show for it); during
emergence the growth completes (it is the point of the piece) and goes straight to release; during
hold -> release. A second visitor arriving mid-sequence keeps presence up and simply joins; the
sequence is not restarted. A visitor who stays after the hold gets a new cycle once the cooldown
has passed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum


class State(StrEnum):
    """The show's states. A StrEnum: its members are their values as text, so the trace, the
    status file and OSC carry exactly the words they always did ("idle", "hold", ...)."""

    IDLE = "idle"
    APPROACH = "approach"
    IMMERSION = "immersion"
    EMERGENCE = "emergence"
    HOLD = "hold"
    RELEASE = "release"
    # Not a state of the machine: what the box shows outside opening hours (firmware.show.schedule),
    # in the trace, the status file and OSC alike.
    CLOSED = "closed"


STATES = (State.IDLE, State.APPROACH, State.IMMERSION, State.EMERGENCE, State.HOLD, State.RELEASE)
SIGMA_START = 0.02  # where the dissolve starts: invisible noise
APPROACH_FIRST = 0.2  # the visitor's image is already this visible on the approach's first frame


@dataclass(frozen=True)
class Timings:
    approach_s: float
    immersion_s: float
    emergence_s: float
    hold_s: float
    release_s: float
    cooldown_s: float
    sigma_peak: float

    @classmethod
    def from_config(cls, show) -> "Timings":
        return cls(show.approach_s, show.immersion_s, show.emergence_s, show.hold_s, show.release_s,
                   show.cooldown_s, show.sigma_peak)


@dataclass(frozen=True)
class ShowState:
    state: State = State.IDLE
    since: float = 0.0             # when the current state began
    visitor: int = 0               # increments per visitor; seeds that visitor's noise
    cooldown_until: float = -math.inf
    leaving: bool = False          # visitor left during emergence: finish growth, then release


@dataclass(frozen=True)
class Cue:
    """What the audience should see and feel now. Everything downstream renders from this alone."""
    state: State
    progress: float        # 0..1 through the current state
    visitor: int
    sigma: float           # noise level of the dissolve / emergence (0 = clean picture)
    camera_mix: float      # 0..1 weight of the visitor's picture (vs idle content)
    idle_mix: float        # 0..1 weight of the idle picture (footage + drift)
    reveal: float          # 0..1 through the emergence (which denoising step is on screen)
    noise_level: float     # 0..1, sigma normalised for the lights (0 clean, 1 all noise)


def _duration(t: Timings, state: State) -> float:
    return {State.APPROACH: t.approach_s, State.IMMERSION: t.immersion_s, State.EMERGENCE: t.emergence_s,
            State.HOLD: t.hold_s, State.RELEASE: t.release_s}.get(state, math.inf)


def _next(state: State) -> State:
    return {State.APPROACH: State.IMMERSION, State.IMMERSION: State.EMERGENCE, State.EMERGENCE: State.HOLD,
            State.HOLD: State.RELEASE, State.RELEASE: State.IDLE}[state]


def step_show(t: Timings, s: ShowState, present: bool, now: float) -> tuple[ShowState, Cue]:
    """Advance the show to `now` given the filtered presence, and say what to show."""
    s = _transition(t, s, present, now)
    return s, make_cue(t, s, now)


def _transition(t: Timings, s: ShowState, present: bool, now: float) -> ShowState:
    # Loop because a long gap (a stalled main loop, a big fake-clock jump) may cross several states.
    for _ in range(len(STATES) + 1):
        if s.state == State.IDLE:
            if present and now >= s.cooldown_until:
                return ShowState(State.APPROACH, now, s.visitor + 1, s.cooldown_until)
            return s
        if not present and s.state in (State.APPROACH, State.IMMERSION, State.HOLD):
            return replace(s, state=State.RELEASE, since=now, leaving=False)
        if not present and s.state == State.EMERGENCE:
            s = replace(s, leaving=True)
        end = s.since + _duration(t, s.state)
        if now < end:
            return s
        nxt = _next(s.state)
        if nxt == State.HOLD and s.leaving:
            nxt = State.RELEASE
        if nxt == State.IDLE:
            return ShowState(State.IDLE, end, s.visitor, end + t.cooldown_s)
        s = replace(s, state=nxt, since=end, leaving=s.leaving and nxt != State.RELEASE)
    return s


def immersion_sigma(t: Timings, progress: float) -> float:
    """Log-linear rise from SIGMA_START to sigma_peak."""
    p = min(max(progress, 0.0), 1.0)
    return math.exp(math.log(SIGMA_START) + p * (math.log(t.sigma_peak) - math.log(SIGMA_START)))


def noise_level(sigma: float) -> float:
    """Fraction of the displayed picture that is noise, in the variance-preserving view: s/sqrt(1+s^2)."""
    return sigma / math.sqrt(1.0 + sigma * sigma)


def make_cue(t: Timings, s: ShowState, now: float) -> Cue:
    dur = _duration(t, s.state)
    p = 0.0 if math.isinf(dur) else min(max((now - s.since) / dur, 0.0), 1.0)
    sigma, camera, idle, reveal = 0.0, 0.0, 1.0, 0.0
    if s.state == State.APPROACH:
        # Start at APPROACH_FIRST so the very first frame answers the visitor (no dead 1/4 second).
        camera = APPROACH_FIRST + (1.0 - APPROACH_FIRST) * p
        idle = 1.0 - camera
    elif s.state == State.IMMERSION:
        camera, idle, sigma = 1.0, 0.0, immersion_sigma(t, p)
    elif s.state == State.EMERGENCE:
        camera, idle, reveal = 0.0, 0.0, p
        sigma = immersion_sigma(t, 1.0 - p) if p < 1.0 else 0.0
    elif s.state == State.HOLD:
        camera, idle, reveal = 0.0, 0.0, 1.0
    elif s.state == State.RELEASE:
        camera, idle, reveal = 0.0, p, 1.0
    return Cue(state=s.state, progress=p, visitor=s.visitor, sigma=sigma, camera_mix=camera,
               idle_mix=idle, reveal=reveal, noise_level=noise_level(sigma))
