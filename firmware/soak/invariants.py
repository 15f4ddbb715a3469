"""What must hold on every frame of a soak, whatever the faults: a frame of the right shape is
presented while the projector is there; no state outlasts its duration; idle never ignores a visitor
the sensor can see; the picture never stands still while the show says it moves; DMX keeps its rate
while the interface is plugged. And per visitor cycle: images keep being generated while no model
fault is on. Each breach is counted, and the first few are kept as samples."""
from __future__ import annotations

import math
import zlib
from collections import Counter

import numpy as np

from firmware.show.machine import State
from firmware.soak.faults import DEVICE_OF
from firmware.soak.schedule import SHOW, FaultSchedule

STILL_S = 1.0            # the picture may not stand still longer than this (except in hold)


class Invariants:
    """The per-frame checks, with what they remember from one frame to the next."""

    def __init__(self, rig, schedule: FaultSchedule, height: int, width: int, now: float) -> None:
        self.rig, self.schedule, self.shape = rig, schedule, (height, width, 3)
        self.violations: Counter = Counter()
        self.violation_samples: list[str] = []
        self.prev_state, self.prev_hash, self.still_since = State.IDLE, None, now
        self.near_since, self.presence_ok_since, self.dmx_window = None, now, None
        self.shown = 0
        self.images_at_cycle_start, self.model_fault_in_cycle = rig.box.session.worker.images_done, False
        self.barren_cycles = 0

    def violate(self, what: str, now: float, detail: str = "") -> None:
        self.violations[what] += 1
        if len(self.violation_samples) < 30:
            faults = ",".join(f.kind for f in self.schedule.active) or "no fault active"
            self.violation_samples.append(f"t={now - 1000.0:.2f} {what} {detail} ({faults})")

    def check_frame(self, now: float, frame, state: State, period: float) -> None:
        box, rig = self.rig.box, self.rig
        if frame is not None:
            if frame.shape != self.shape or frame.dtype != np.uint8:
                self.violate("frame shape", now, str(frame.shape))
            h = zlib.crc32(frame.data)
            if h != self.prev_hash or state != self.prev_state or state == State.HOLD:
                self.still_since = now
            elif now - self.still_since > STILL_S:
                self.violate("picture stands still", now, state)
                self.still_since = now
            self.prev_hash = h
        if not box.devices.display.gone and box.devices.display.frames_shown != self.shown + 1:
            self.violate("frame not presented", now)
        self.shown = box.devices.display.frames_shown
        dur = {State.APPROACH: SHOW["approach_s"], State.IMMERSION: SHOW["immersion_s"],
               State.EMERGENCE: SHOW["emergence_s"], State.HOLD: SHOW["hold_s"], State.RELEASE: SHOW["release_s"]}
        if state in dur and now - box.visit.show.since > dur[state] + 1.5 * period:
            self.violate("state held too long", now, state)
        # Idle only while nobody is there: a visitor the sensor can see (no presence fault lately)
        # who has stood within the trigger distance for the dwell must start a cycle.
        self.near_since = (self.near_since or now) if rig.truth(now) < SHOW["trigger_m"] else None
        if any(DEVICE_OF[f.kind] == "presence" for f in self.schedule.on()) or \
                not box.devices.presence.health.ok:
            self.presence_ok_since = now
        wait = SHOW["dwell_s"] + 0.5 + (0.5 if rig.pty else 0.0)
        if state == State.IDLE and self.near_since is not None and now - self.near_since > wait and \
                now - self.presence_ok_since > wait and now > box.visit.show.cooldown_until + wait:
            self.violate("idle with a visitor", now)
            self.near_since = now
        self.dmx_window = self._check_dmx(now, self.dmx_window)
        self.prev_state = state

    def check_images(self, now: float, cycle_ended: bool) -> None:
        """Every stretch from one visitor cycle's end to the next in which no model fault was on must
        finish at least one image (drift images in the idle and approach, the visitor's own). The
        show degrades to footage when generation fails, by design, so a box whose every generation
        fails looks healthy to every other check."""
        worker = self.rig.box.session.worker
        self.model_fault_in_cycle = self.model_fault_in_cycle or any(
            DEVICE_OF[f.kind] == "generator" for f in self.schedule.on())
        if not cycle_ended:
            return
        if worker.images_done == self.images_at_cycle_start and not self.model_fault_in_cycle:
            self.barren_cycles += 1
            self.violate("no images generated", now, f"in a visitor cycle with no model fault ({worker.health.detail})")
        self.images_at_cycle_start, self.model_fault_in_cycle = worker.images_done, False

    def _check_dmx(self, now: float, window):
        """Per second of show time in which the interface stayed plugged and healthy, the sender
        must have sent at its rate (the inline sender catches up every frame)."""
        box = self.rig.box
        plugged = not any(f.kind == "dmx_unplug" for f in self.schedule.active) and box.devices.dmx.health.ok
        if window is None or not plugged:
            return (now, box.devices.dmx.sent, box.devices.dmx.health.faults) if plugged else None
        t0, sent0, faults0 = window
        if now - t0 >= 1.0:
            dmx = box.devices.dmx
            rate = 1.0 / dmx.period
            if dmx.health.faults == faults0 and dmx.sent - sent0 < math.floor(rate * (now - t0)) - 1:
                self.violate("dmx below rate", now, f"{dmx.sent - sent0} frames in {now - t0:.2f} s")
            return (now, box.devices.dmx.sent, box.devices.dmx.health.faults)
        return window
