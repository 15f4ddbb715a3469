"""Running the box: the real-time loop (projector rate, watchdog, status) and the offline render
used for previews (a stepped clock, so a recording is exact however slow the machine)."""
from __future__ import annotations

import json
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from firmware.box.conductor import Box
from firmware.clock import FakeClock, RealClock
from firmware.devices.projector.sim import SimProjector

log = logging.getLogger("humus.run")


class Stopper:
    """SIGTERM/SIGINT -> a clean stop (the safe look goes out, the recording is finalised)."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> "Stopper":
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, lambda *_: self.event.set())
            except ValueError:  # not the main thread (tests)
                pass
        return self


class Cadence:
    """Frame deadlines every `period` on `clock`, as the projector presents them. A frame that ends more
    than a whole period late counts as missed and the cadence re-anchors to now: frames are never
    waited for. `humus bench` paces its trigger trials with this same cadence."""

    def __init__(self, clock, period: float, wait) -> None:
        self.clock, self.period, self.wait = clock, period, wait
        self.next_t = clock.now()
        self.missed = 0

    def wait_next(self) -> None:
        """After a frame: wait until the next one is due (at once when late)."""
        self.next_t += self.period
        late = self.clock.now() - self.next_t
        if late > self.period:
            self.missed += int(late / self.period)
            self.next_t = self.clock.now()
        else:
            self.wait(max(0.0, self.next_t - self.clock.now()))


def run_realtime(box: Box, duration_s: float | None, notifier=None, status=None,
                 stopper: Stopper | None = None) -> dict:
    """Present a frame every 1/fps on the real clock. Frames are never waited for; late frames count."""
    import sys
    # The GIL is handed over every 5 ms by default; the DMX sender and capture threads should not
    # wait that long behind a numpy call on the display thread.
    sys.setswitchinterval(0.0005)
    clock = box.clock
    period = 1.0 / box.config.display.fps
    stopper = stopper or Stopper()
    start = clock.now()
    box.warm_up()
    if notifier:
        notifier.ready()
    prev = None
    cadence = Cadence(clock, period, stopper.event.wait)
    while not stopper.event.is_set():
        now = clock.now()
        if duration_s is not None and now - start >= duration_s:
            break
        box.step()
        if prev is not None:
            box.frame_times.append(now - prev)  # presentation intervals: 1/mean is the real fps
        prev = now
        if len(box.frame_times) > 10_000:
            del box.frame_times[:5_000]
        if box.devices.display.poll_quit():
            break
        cadence.wait_next()
        if notifier:
            # Pinged from the frame loop itself: a hung loop stops the pings and systemd restarts
            # it. A missing projector does not: the loop keeps running and picks it up when it
            # is switched on (a restart would not bring it any sooner).
            notifier.watchdog()
        if status is not None:
            status(box)
    elapsed = clock.now() - start
    return {"frames": box.frames, "seconds": elapsed, "fps": box.frames / elapsed if elapsed else 0.0,
            "missed": cadence.missed}


def run_offline(box: Box, duration_s: float) -> dict:
    """Render `duration_s` of show at exactly the display rate on a stepped clock; generation is run
    synchronously when requested (the preview shows what an ideal box would show)."""
    assert isinstance(box.clock, FakeClock), "offline render needs a FakeClock"
    period = 1.0 / box.config.display.fps
    n = int(round(duration_s / period))
    box.warm_up()
    for _ in range(n):
        box.step()
        box.clock.advance(period)
    return {"frames": box.frames, "seconds": duration_s, "fps": box.config.display.fps, "missed": 0}


@dataclass(frozen=True)
class RunOptions:
    """How `humus run` runs the box, once its arguments are read."""
    duration_s: float | None          # None: until stopped
    offline: bool                     # a stepped clock, generation inline: an exact preview
    appliance: bool                   # sd_notify and the status file `humus status` reads
    record: str | Path | None = None  # every projector frame to this file
    record_scale: float = 1.0


def appliance_hooks(config):
    """sd_notify (a no-op off systemd) and the status file `humus status` reads."""
    from firmware.appliance.sdnotify import Notifier
    from firmware.appliance.statusfile import StatusWriter
    from firmware.status_publisher import StatusPublisher
    return Notifier(), StatusPublisher(StatusWriter(config.status.path))


def run_box(config, options: RunOptions, wall_start=None) -> tuple[Box, dict]:
    """Build the box, wire its hooks and recorder, run it and close it; returns it (closed) and the
    run's figures."""
    clock = FakeClock() if options.offline else RealClock()
    box = Box(config, clock, threaded=not options.offline, wall_start=wall_start)
    notifier, status = appliance_hooks(config) if options.appliance else (None, None)
    if options.record:
        from firmware.render.recorder import Recorder
        d = config.display
        box.attach_recorder(Recorder(options.record, d.width, d.height, d.fps, scale=options.record_scale))
    try:
        if options.offline:
            stats = run_offline(box, options.duration_s)
        else:
            stats = run_realtime(box, options.duration_s, notifier, status, Stopper().install())
    finally:
        box.close()
    return box, stats


def run_summary(box: Box, stats: dict, rehearsed_start: bool) -> list[str]:
    """What `humus run` says when the run is over: frames and states, the model, the wall clock
    (with a schedule or --start), and the projector's power commands (when simulated)."""
    lines = [f"humus: {stats['frames']} frames in {stats['seconds']:.1f} s "
             f"({stats['fps']:.1f} fps, {stats['missed']} missed); states: "
             + " -> ".join(s for _, s, _ in box.trace.states)]
    session = box.session
    if session.net is not None:
        lines.append(f"humus: model {session.model.name}/{session.net.name} on {session.engine.describe()}, "
                     f"{session.worker.images_done} images generated")
    if box.config.schedule is not None or rehearsed_start:
        now = box.venue_now
        sync = box.venue.clock_sync
        lines.append(f"humus: wall clock {box.venue.wall().isoformat(timespec='seconds')}"
                     + ("" if sync.synced else f" (NOT synchronised: {sync.detail})")
                     + f"; {'open' if now.open else 'closed'}"
                     + (f" until {now.next_change.isoformat()}" if now.next_change else "")
                     + (f" by [schedule] unsynced = {box.venue.unsynced!r}" if now.by_policy else ""))
    proj = box.venue.projector
    if proj is not None and isinstance(proj.backend, SimProjector):   # only the sim keeps its commands
        lines.append("humus: projector power " + (" -> ".join("on" if on else "off" for _, on in proj.backend.commands)
                                                  or "(no command)"))
    return lines


def write_traces(box: Box, prefix: Path) -> list[Path]:
    """The DMX trace (every universe sent) and the state-change log, next to the recording."""
    written = []
    states = prefix.with_suffix(".states.jsonl")
    with open(states, "w") as f:
        for t, state, visitor in box.trace.states:
            f.write(json.dumps({"t": round(t - box.started_at, 4), "state": state,
                                "visitor": visitor}) + "\n")
        for t, text in box.trace.faults:
            f.write(json.dumps({"t": round(t - box.started_at, 4), "fault": text}) + "\n")
    written.append(states)
    frames = box.devices.dmx.recorded
    if frames is not None:
        dmx = prefix.with_suffix(".dmx.jsonl")
        with open(dmx, "w") as f:
            last = None
            for fr in frames:
                # Every frame went on the wire at the fixed rate; the trace lists each change once.
                if fr.data != last:
                    used = fr.data.rstrip(b"\0")
                    f.write(json.dumps({"t": round(fr.t - box.started_at, 4), "slots": list(used)}) + "\n")
                    last = fr.data
        written.append(dmx)
    return written
