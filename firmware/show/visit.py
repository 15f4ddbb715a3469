"""The show's rules for one frame, from that frame's inputs. Pure.

The show machine (machine.py) only knows "someone is there" and the time. Around it, this module
decides what "someone is there" means and when the show rests:

- the presence filter (presence.py) turns the sensor's newest reading into present / absent;
- an OSC `/humus/visitor 1` counts as someone there;
- a new `/humus/trigger` starts a sequence from idle, cooldown or not, and that visitor then counts
  as present until the hold is over, so a button press always plays in full;
- outside opening hours the show rests in idle with no cooldown (the first visitor after opening is
  not kept waiting), the presence filter is left as it was, and a trigger received while closed is
  spent, not kept for the opening.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from firmware.show.control import ShowInputs
from firmware.show.machine import Cue, ShowState, State, Timings, make_cue, step_show
from firmware.show.presence import PresenceParams, PresenceState, update_presence
from firmware.show.schedule import VenueNow

# The states a triggered sequence holds its visitor present through.
TRIGGER_HOLDS = (State.APPROACH, State.IMMERSION, State.EMERGENCE, State.HOLD)


@dataclass(frozen=True)
class VisitRules:
    timings: Timings
    presence: PresenceParams

    @classmethod
    def from_config(cls, config) -> "VisitRules":
        show = config.show
        return cls(Timings.from_config(show),
                   PresenceParams(show.trigger_m, show.release_m, show.dwell_s, show.leave_grace_s,
                                  config.presence.stale_after_s))


@dataclass(frozen=True)
class Visit:
    """Where the show is: the machine's state, the presence filter's, and what the rules remember."""
    show: ShowState = field(default_factory=ShowState)
    presence: PresenceState = field(default_factory=PresenceState)
    triggers_seen: int = 0
    forced_visitor: int = -1           # a /humus/trigger's visitor: present through the hold
    shown: State = State.IDLE          # what the last frame showed: a show state, or CLOSED
    present: bool = False              # whether the last frame counted someone there

    def rewound(self, now: float) -> "Visit":
        """Idle from `now`, no cooldown, nobody there: a bench's next trial."""
        return Visit(ShowState(since=now, visitor=self.show.visitor), PresenceState(),
                     self.triggers_seen, -1, self.shown, False)


@dataclass(frozen=True)
class FrameInputs:
    """Everything a frame reads from outside, read once at its start: the clock, the venue's verdict
    (open or closed), the OSC show inputs, the presence sensor's newest reading and the camera's
    newest frame (either None when there is none yet)."""
    now: float
    venue: VenueNow
    osc: ShowInputs
    reading: object | None = None      # firmware.devices.presence.interface.Reading: distance_m, t
    camera: object | None = None       # the camera's newest frame, for the compositor


def step_visit(rules: VisitRules, visit: Visit, inputs: FrameInputs, started_at: float) -> tuple[Visit, Cue]:
    """The visit after one frame, and the Cue the frame shows."""
    now, osc, reading = inputs.now, inputs.osc, inputs.reading
    if not inputs.venue.open:
        show = ShowState(State.IDLE, now, visit.show.visitor)
        return (Visit(show, visit.presence, osc.triggers, visit.forced_visitor, State.CLOSED, False),
                make_cue(rules.timings, show, now))
    # No reading yet counts from start-up: a sensor still opening is not stale at the first frame.
    presence = update_presence(rules.presence, visit.presence, reading.distance_m if reading else None,
                               reading.t if reading else started_at, now)
    show, forced = visit.show, visit.forced_visitor
    if osc.triggers != visit.triggers_seen and show.state == State.IDLE:
        show = ShowState(State.APPROACH, now, show.visitor + 1)
        forced = show.visitor
    held = forced == show.visitor and show.state in TRIGGER_HOLDS
    present = presence.present or osc.visitor or held
    show, cue = step_show(rules.timings, show, present, now)
    return Visit(show, presence, osc.triggers, forced, cue.state, present), cue
