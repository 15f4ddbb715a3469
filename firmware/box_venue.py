"""The box's part at a venue, split from box.py to keep it short: the closed-hours frame, hot-plug
swaps of auto-detected devices, the OSC inputs the show reads (subject, decay, light master), and the
universe every frame ends with. Mixed into `Box`; everything here uses the box's own fields.
"""
from __future__ import annotations

import logging

import numpy as np

from firmware.devices.dmx.open import open_dmx
from firmware.devices.presence.table import open_presence
from firmware.generate.conditions import Conditions, show_conditions
from firmware.show.lights import LightLevel, follow_show, render_universe
from firmware.show.machine import ShowState, State, make_cue

log = logging.getLogger("humus.box")


class VenueSteps:
    def _closed_step(self, now: float) -> np.ndarray:
        """Outside opening hours the show rests: no generation, the wall dark, the closed look."""
        self.show_state = ShowState(State.IDLE, now, self.show_state.visitor)   # no cooldown at opening
        self.cue = make_cue(self.timings, self.show_state, now)
        self._note_state(now, State.CLOSED, self.show_state.visitor)
        self._triggers_seen = self.venue.inputs.triggers   # a trigger while closed does not wait for opening
        self.venue.publish(State.CLOSED, False, 0.0, self.trace.faults)
        if self._dark is None:
            self._dark = np.zeros((self.height, self.width, 3), np.uint8)
        self._to_sinks(self._dark)
        look = self.config.schedule.closed_look if self.config.schedule else None
        level = LightLevel(look.intensity, tuple(look.color), 0.0) if look else LightLevel(0.0, (0, 0, 0), 0.0)
        self._send_universe(level)
        self.lights = follow_show(self.lights, State.CLOSED)
        self._prev_state = State.CLOSED
        self.frames += 1
        return self._dark

    def _swap(self, role: str, section) -> None:
        """Hot-plug: open the device found for `role` and drop the one in use (none, or gone)."""
        old = getattr(self, role)
        if role == "camera":
            new = self._open_camera(section)
        elif role == "presence":
            new = open_presence(section, self.clock)
        else:
            new = open_dmx(section, self.clock, isolate=self.threaded_dmx)
            if self.threaded_dmx:
                new.start()
        setattr(self, role, new)
        self.config = self.config.model_copy(update={role: section})
        try:
            old.close()
        except Exception as exc:   # the old device may be half gone already
            log.warning("closing %s: %s", old.name, exc)

    @property
    def subject(self) -> str | None:
        """What the visitor's images should grow into (/humus/subject), when the model has it."""
        return self.venue.inputs.subject

    @property
    def decay(self) -> float:
        """/humus/decay when a controller has set it, else the config's."""
        d = self.venue.inputs.decay
        return self.config.show.decay if d is None else d

    @property
    def conditions(self) -> Conditions:
        """The show's conditions for the model this frame, made once here from the show's inputs and
        the manifest's subject names."""
        return show_conditions(self.decay, self.subject, self.model.subjects if self.model else ())

    def _send_universe(self, level: LightLevel) -> None:
        inputs = self.venue.inputs
        level = LightLevel(level.intensity * inputs.intensity, level.color, level.strobe)   # OSC master
        universe = bytes(self.dmx.channels) if inputs.blackout else \
            render_universe(self.config.lights.fixtures, level, self.dmx.channels)
        self.dmx.set_universe(universe)
        if not self.threaded_dmx:
            self.dmx.catch_up()

