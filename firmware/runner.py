"""Running the box: the real-time loop (projector rate, watchdog, status) and the offline render
used for previews (a stepped clock, so a recording is exact however slow the machine)."""
from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path

from firmware.box import Box
from firmware.clock import FakeClock, RealClock

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
    next_t = start
    missed = 0
    box.warm_up()
    if notifier:
        notifier.ready()
    prev = None
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
        if box.display.poll_quit():
            break
        next_t += period
        late = clock.now() - next_t
        if late > period:  # more than a whole frame late: count the miss, re-anchor the cadence
            missed += int(late / period)
            next_t = clock.now()
        else:
            stopper.event.wait(max(0.0, next_t - clock.now()))
        if notifier:
            # Pinged from the frame loop itself: a hung loop stops the pings and systemd restarts
            # it. A missing projector does not: the loop keeps running and picks it up when it
            # is switched on (a restart would not bring it any sooner).
            notifier.watchdog()
        if status is not None:
            status(box)
    elapsed = clock.now() - start
    return {"frames": box.frames, "seconds": elapsed, "fps": box.frames / elapsed if elapsed else 0.0,
            "missed": missed}


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
    frames = getattr(box.dmx.transport, "frames", None)
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
