"""The box at a venue: opening hours, projector power and OSC show control, for the frame loop.

`Venue.update()` runs once a frame and returns at once: it drains OSC input into `inputs`, reads the
clock source's latest answer (is the wall clock synchronised? it looks again itself, rate-limited),
asks the pure schedule whether the show is open (only when the last answer's next change has passed,
the clock's synchronisation changed, or an override came in), and tells the projector control what
to want. While the clock is not synchronised, `[schedule] unsynced` decides (show/schedule.py
`decide`); the frame after it becomes synchronised, the opening hours do. `publish()` sends the
show's state out over OSC. Everything slow (the projector's TCP or cec-ctl, the OSC socket) is on
other threads; the clock source's look is a stat or two and a syscall (about 20 us), every
`[timesync] check_s` at most, and none once the clock is synchronised.

Wall-clock time is the box clock plus an offset fixed at start, so `humus run --sim --start
2026-12-04T17:59` rehearses a closing in real time, and tests step it with a FakeClock.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from firmware.devices.projector.control import open_projector
from firmware.devices.timesync.table import open_timesync
from firmware.show.control import ShowInputs, apply_message
from firmware.show.machine import State
from firmware.show.schedule import VenueNow, compile_schedule, decide

log = logging.getLogger("humus.venue")
NOISE_STATES = (State.IMMERSION, State.EMERGENCE)


class Venue:
    def __init__(self, config, clock, wall_start: datetime | None = None, t0: float | None = None) -> None:
        """wall_start: the wall-clock time at clock time `t0` (default: now)."""
        self.clock = clock
        self._t0 = clock.now() if t0 is None else t0
        if wall_start is not None and wall_start.tzinfo is None:
            raise ValueError("the wall-clock start needs a time zone")
        self._wall0 = wall_start   # None: the system's wall clock, read each time (NTP may set it late)
        self.schedule = compile_schedule(config.schedule) if config.schedule else None
        self.unsynced = config.schedule.unsynced if config.schedule else "open"
        self.timesync = open_timesync(config.timesync, clock)
        self.clock_sync = self.timesync.read()
        if not self.clock_sync.synced:
            log.warning("clock: NOT synchronised (%s)%s", self.clock_sync.detail,
                        f"; [schedule] unsynced = {self.unsynced!r} decides until it is" if self.schedule else "")
        self.projector = open_projector(config.projector)
        self.osc = None
        if config.osc is not None:
            from firmware.osc import OscLink   # python-osc only for a box that has [osc]
            self.osc = OscLink(config.osc)
        self.noise_period = 1.0 / config.osc.noise_hz if config.osc else 1.0
        self.inputs = ShowInputs()
        self.override: tuple[bool, datetime | None] | None = None
        self.last_message_t: float | None = None   # arrival time (monotonic) of the newest applied
        self._now = VenueNow(True, None)
        self._verdict_until: datetime | None = None
        self._evaluated_at: datetime | None = None
        self._logged = False
        self._dirty = True
        self._sent_state: str | None = None
        self._sent_visitor: bool | None = None
        self._noise_next = -1e9
        self._faults_sent = 0
        self._health_at = -1e9
        self._health_ok: dict[str, bool] = {}

    def wall(self) -> datetime:
        if self._wall0 is None:
            return datetime.now(timezone.utc)
        return self._wall0 + timedelta(seconds=self.clock.now() - self._t0)

    # ------------------------------------------------------------------ in
    def update(self) -> VenueNow:
        sync = self.timesync.read()
        if sync.synced != self.clock_sync.synced:
            log.info("clock: %s (%s)%s", "synchronised" if sync.synced else "NOT synchronised", sync.detail,
                     f"; [schedule] unsynced = {self.unsynced!r} decides until it is"
                     if self.schedule and not sync.synced else "")
            if self.override is not None:   # its end was an instant on the clock that was just set
                log.info("schedule: override ends with the clock's synchronisation")
                self.override = None
            self._dirty = True
        self.clock_sync = sync
        if self.osc is not None:
            for arrived, address, args in self.osc.poll():
                new = apply_message(self.inputs, address, args)
                if new is None:
                    self.osc.bad += 1
                    continue
                if address == "/humus/open":
                    self.override = (new.open_override, self._schedule_next(self.wall()))
                    self._dirty = True
                    log.info("OSC: %s until %s", "open" if new.open_override else "closed",
                             self.override[1] or ("the clock is synchronised" if not self.clock_sync.synced
                                                  else "the next restart"))
                self.inputs = new
                self.last_message_t = arrived
        wall = self.wall()
        # also when the wall clock went back (a box without an RTC battery boots with a clock ahead
        # or behind until NTP sets it; forward jumps pass _verdict_until anyway)
        if self._dirty or (self._verdict_until is not None and wall >= self._verdict_until) or (
                self._evaluated_at is not None and wall < self._evaluated_at):
            self._now = self._evaluate(wall)
            self._dirty = False
        return self._now

    def _decision(self, wall: datetime):
        return decide(self.schedule, self.unsynced, self.clock_sync.synced, wall) if self.schedule else None

    def _schedule_next(self, wall: datetime) -> datetime | None:
        d = self._decision(wall)
        return d.show.next_change if d else None

    def _evaluate(self, wall: datetime) -> VenueNow:
        self._evaluated_at = wall
        if self.override is not None and self.override[1] is not None and wall >= self.override[1]:
            log.info("schedule: override ends at the schedule's change")
            self.override = None
        d = self._decision(wall)
        if d is None:
            verdict_open, nxt, proj_on, proj_next = True, None, True, None
        else:
            verdict_open, nxt, proj_on, proj_next = (d.show.open, d.show.next_change, d.projector.open,
                                                     d.projector.next_change)
        if self.override is not None:
            verdict_open = proj_on = self.override[0]
        # re-evaluate at the earliest thing that can change: the show, the projector, the override
        edges = [t for t in (nxt, proj_next, self.override[1] if self.override else None) if t is not None]
        self._verdict_until = min(edges) if edges else None
        if self.projector is not None:
            self.projector.want(proj_on)
        was = self._now
        by_policy = d is not None and d.by_policy and self.override is None
        now = VenueNow(verdict_open, nxt if self.override is None else self.override[1], self.override is not None,
                       by_policy)
        if was.open != now.open or was.by_policy != now.by_policy or not self._logged:
            self._logged = True
            log.info("schedule: %s%s%s", "open" if now.open else "closed",
                     f" until {now.next_change.astimezone(self._zone()):%a %Y-%m-%d %H:%M %Z}" if now.next_change else "",
                     f" (clock not synchronised: [schedule] unsynced = {self.unsynced!r})" if by_policy else "")
        return now

    def _zone(self):
        from firmware.show.schedule import load_zone
        return load_zone(self.schedule.zone) if self.schedule else timezone.utc

    # ------------------------------------------------------------------ out
    def publish(self, state: State, visitor: bool, noise: float, trace) -> None:
        """OSC out: the state on each change, the visitor on each change, the noise at noise_hz
        during immersion and emergence, and every new fault (`trace`: the box's Trace)."""
        if self.osc is None:
            return
        if state != self._sent_state:
            self.osc.send("/humus/state", state)
            self._sent_state = state
        if visitor != self._sent_visitor:
            self.osc.send("/humus/visitor", int(visitor))
            self._sent_visitor = visitor
        now = self.clock.now()
        if state in NOISE_STATES and now >= self._noise_next:
            # keep the cadence (due one period after the last was due), unless far behind
            late = now - self._noise_next
            self._noise_next = (self._noise_next if late < self.noise_period else now) + self.noise_period
            self.osc.send("/humus/noise", float(noise))
        for _, text in trace.faults_after(self._faults_sent):
            self.osc.send("/humus/fault", text)
        self._faults_sent = trace.faults_total

    def publish_health(self, now: float, health) -> None:
        """/humus/fault for a device that turns faulty (`health()`: the box's devices_health, asked
        twice a second, not every frame)."""
        if self.osc is None or now < self._health_at:
            return
        self._health_at = now + 0.5
        for name, h in health().items():
            if not h["ok"] and self._health_ok.get(name, True):
                self.osc.send("/humus/fault", f"{name}: {h['detail']}")
            self._health_ok[name] = h["ok"]

    def status(self) -> dict:
        out = {}
        n = self._now
        if self.schedule is not None or n.overridden:
            out["schedule"] = {"open": n.open, "overridden": n.overridden, "by_policy": n.by_policy,
                               "next_change": n.next_change.astimezone(self._zone()).isoformat()
                               if n.next_change else None}
        c = self.clock_sync
        out["clock"] = {"synced": c.synced, "detail": c.detail, "source": self.timesync.name,
                        "unsynced_s": None if c.synced else round(self.clock.now() - c.since, 1),
                        "policy": self.unsynced if self.schedule is not None else None}
        if self.projector is not None:
            p = self.projector
            out["projector"] = {"wanted": p.wanted, "confirmed": p.confirmed, "ok": p.health.ok,
                                "detail": p.health.detail}
        if self.osc is not None:
            out["osc"] = self.osc.status()
        return out

    def close(self) -> None:
        for part in (self.projector, self.osc, self.timesync):
            if part is not None:
                try:
                    part.close()
                except Exception as exc:   # shutting down: report, never raise
                    log.warning("closing %s: %s", type(part).__name__, exc)
