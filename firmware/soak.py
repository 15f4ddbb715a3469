"""`humus soak`: the real box through many visitor cycles on an accelerated clock, with faults.

The box runs exactly as in the field (`Box.step()` per projector frame, the status file written as
the runtime does) on simulated devices, or with `--pty` on the real LD2410 and Enttec Pro backends
talking to emulators on pseudo-terminals. A seeded scheduler injects the faults a venue produces --
camera stalled, unplugged or frozen; sensor garbage or silence; serial interfaces pulled and
replugged; the model returning NaN or raising; the projector gone; the disk full for the status
file -- heals them after a while, and checks that the box noticed, degraded and came back by itself.

Checked every frame: `step()` never raises; a frame of the right shape is presented while the
projector is there; no state outlasts its duration; idle never ignores a visitor the sensor can see;
the picture never stands still while the show says it moves; DMX keeps its rate while the
interface is plugged. Also: incidents are logged once (no floods), and resident memory, open file
descriptors and threads stay flat after the warm-up. The report (`--json`) holds every figure.
"""
from __future__ import annotations

import errno
import gc
import json
import logging
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware.show.machine import State

log = logging.getLogger("humus.soak")

REPO = Path(__file__).resolve().parent.parent
# Short show timings so a visitor cycle is ~8 s of show time (160 frames at 20 fps).
SHOW = {"trigger_m": 2.0, "release_m": 3.0, "dwell_s": 0.2, "leave_grace_s": 0.3, "cooldown_s": 0.5,
        "approach_s": 0.5, "immersion_s": 2.0, "emergence_s": 1.5, "hold_s": 1.0, "release_s": 0.5,
        "footage_fps": 6.0}
NEAR_M, FAR_M = 1.0, 6.0
STILL_S = 1.0            # the picture may not stand still longer than this (except in hold)
RECOVERY_LIMIT_S = 90.0  # show seconds after a heal by which the box must be back
SIM_KINDS = ("camera_stall", "camera_unplug", "camera_frozen", "sensor_garbage", "sensor_silent",
             "dmx_unplug", "model_nan", "model_raise", "display_gone", "disk_full")
PTY_KINDS = SIM_KINDS + ("radar_unplug",)
DEVICE_OF = {"camera_stall": "camera", "camera_unplug": "camera", "camera_frozen": "camera",
             "sensor_garbage": "presence", "sensor_silent": "presence", "radar_unplug": "presence",
             "dmx_unplug": "dmx", "model_nan": "generator", "model_raise": "generator",
             "display_gone": "display", "disk_full": "status"}


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# ---------------------------------------------------------------------------------- fault tools
class FaultyEngine:
    """The real engine behind a switch: `mode` None (pass through), "nan" or "raise"."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.mode: str | None = None
        self.calls = 0

    def denoise(self, x, sigma, decay):
        self.calls += 1
        if self.mode == "raise":
            raise RuntimeError("injected engine failure (CUDA error: an illegal memory access)")
        out = self.engine.denoise(x, sigma, decay)
        return np.full_like(out, np.nan) if self.mode == "nan" else out

    def describe(self) -> str:
        return f"soak proxy over {self.engine.describe()}"

    def close(self) -> None:
        self.engine.close()


class FullDisk:
    """While `full`, the status file's atomic write fails with ENOSPC, as on a full /run or /var."""

    def __init__(self) -> None:
        from firmware.appliance import statusfile
        self.module, self.real = statusfile, statusfile.write_atomic
        self.full = False
        self.refused = 0

    def __enter__(self):
        def write_atomic(path, data, mode=0o644):
            if self.full:
                self.refused += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            return self.real(path, data, mode)
        self.module.write_atomic = write_atomic
        return self

    def __exit__(self, *exc) -> None:
        self.module.write_atomic = self.real


def visitor_script(rng: random.Random, n: int) -> list[tuple[float, float]]:
    """Visitors who come and go: most stay for a whole cycle, some leave early, some linger."""
    pts, t = [(0.0, FAR_M)], 0.0
    full = SHOW["dwell_s"] + SHOW["approach_s"] + SHOW["immersion_s"] + SHOW["emergence_s"] + SHOW["hold_s"]
    for _ in range(n):
        t += rng.uniform(SHOW["cooldown_s"] + 0.6, 2.5)
        pts.append((t, FAR_M))
        t += 0.3
        pts.append((t, NEAR_M))
        r = rng.random()
        # (leaves before the images grow | lingers into a second cycle | leaves in the hold or release)
        stay = (rng.uniform(0.5, full - 1.0) if r < 0.1 else
                rng.uniform(full + 3.0, full + 6.0) if r < 0.2 else rng.uniform(full - 0.5, full + 0.4))
        t += stay
        pts.append((t, NEAR_M))
        t += 0.3
        pts.append((t, FAR_M))
    return pts


def truth_at(script_t: np.ndarray, script_d: np.ndarray, t: float) -> float:
    return float(np.interp(t, script_t, script_d))


# ------------------------------------------------------------------------------------ the record
@dataclass
class Fault:
    kind: str
    start: float
    heal_at: float
    healed: float | None = None
    detected: bool = False
    recovered: float | None = None
    mark: dict = field(default_factory=dict)   # counters at the heal, to see the box come back


class LogCounter(logging.Handler):
    """Counts every record; keeps the incident lines (warnings and recoveries) to check for floods."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.by_level: Counter = Counter()
        self.by_logger: Counter = Counter()
        self.incidents = 0
        self.samples: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.by_level[record.levelname] += 1
        self.by_logger[record.name] += 1
        msg = record.getMessage()
        if record.levelno >= logging.WARNING or "recovered" in msg or "writable again" in msg:
            self.incidents += 1
            if len(self.samples) < 40:
                self.samples.append(f"{record.levelname} {record.name}: {msg}")


# ---------------------------------------------------------------------------------------- the rig
class Rig:
    """The box and everything around it: config, model proxy, emulators, status file, full disk."""

    def __init__(self, workdir: Path, model_dir: Path, seed: int, visitors: int, pty: bool,
                 fps: float, width: int, height: int) -> None:
        from firmware.box import Box
        from firmware.clock import FakeClock
        from firmware.config import parse_config
        from firmware.generate.engines import open_engine
        from firmware.generate.manifest import load_model_dir

        self.pty = pty
        self.script = visitor_script(random.Random(seed), visitors)
        self._st = np.array([p[0] for p in self.script])
        self._sd = np.array([p[1] for p in self.script])
        self.radar = self.widget = None
        data = {"display": {"type": "headless", "width": width, "height": height, "fps": fps},
                "camera": {"type": "sim", "width": 96, "height": 72, "fps": 15.0},
                "model": {"dir": str(model_dir), "engine": "onnxruntime", "threads": 1,
                          "engine_cache": str(workdir / "engines")},
                "show": dict(SHOW), "status": {"path": str(workdir / "status.json"),
                                               "state_dir": str(workdir)}}
        if pty:
            from firmware.devices.emulators import RadarEmulator, WidgetEmulator
            self.radar = RadarEmulator(workdir / "humus-radar", seed=seed)
            self.widget = WidgetEmulator(workdir / "humus-dmx")
            data["presence"] = {"type": "ld2410", "port": str(self.radar.port.link), "stale_after_s": 2.0}
            data["dmx"] = {"type": "enttec-pro", "port": str(self.widget.port.link)}
        else:
            data["presence"] = {"type": "sim", "script": self.script, "loop": False}
        self.config = parse_config(data, "<soak>")
        self.model = load_model_dir(model_dir)
        self.engine = FaultyEngine(open_engine(self.model, "student", "onnxruntime", threads=1))
        self.clock = FakeClock(1000.0)
        # Decay footage for the idle (the box's "no model: footage only" fallback): a slow pulse.
        footage = [np.full((72, 96, 3), (40 + 12 * i, 30 + 8 * i, 20), np.uint8) for i in range(6)]
        self.box = Box(self.config, self.clock, threaded=False, engine=self.engine, model=self.model,
                       footage_frames=footage)
        if not pty:  # the sim transport records for tests; a soak keeps only a little of it
            self.box.dmx.transport.max_frames = 2048
        self.disk = FullDisk().__enter__()
        self.status, self.writer = self._status_hook(workdir / "status.json")

    def _status_hook(self, path: Path):
        """What the runtime does every frame (cli._appliance_hooks), with the writer on show time so
        an accelerated soak writes (and meets a full disk) as often as a box does."""
        from firmware.appliance.statusfile import StatusWriter
        clock = self.clock
        writer = StatusWriter(path, clock=lambda: 1.7e9 + clock.now(), min_interval=1.0)
        reported = [0]

        def status(box) -> None:
            health = box.devices_health()
            writer.update(state="running" if all(d["ok"] for d in health.values()) else "degraded",
                          show=box.cue.state if box.cue else None, engine=box.engine.describe(),
                          devices=health, model={"name": box.model.name, "network": box.net.name})
            for _, text in box.trace.faults[reported[0]:]:
                writer.fault(text)
            reported[0] = len(box.trace.faults)
            writer.flush()
        return status, writer

    def truth(self, t: float) -> float:
        return truth_at(self._st, self._sd, t - 1000.0)

    # -- faults: inject, heal, and what "back" means for each --
    def inject(self, f: Fault) -> None:
        box, k = self.box, f.kind
        if k == "camera_stall":
            box.camera.stall()
        elif k == "camera_unplug":
            box.camera.unplug()
        elif k == "camera_frozen":
            box.camera.freeze()
        elif k == "sensor_garbage":
            if self.pty:
                self.radar.garbage = True
            else:
                box.presence.garbage()
        elif k == "sensor_silent":
            if self.pty:
                self.radar.silent = True
            else:
                box.presence.silence()
        elif k == "radar_unplug":
            self.radar.port.unplug()
        elif k == "dmx_unplug":
            if self.pty:
                self.widget.port.unplug()
            else:
                box.dmx.transport.unplugged = True
        elif k in ("model_nan", "model_raise"):
            self.engine.mode = k[6:]
        elif k == "display_gone":
            box.display.gone = True
        elif k == "disk_full":
            self.disk.full = True

    def heal(self, f: Fault) -> None:
        box, k = self.box, f.kind
        if k.startswith("camera"):
            box.camera.heal()
        elif k in ("sensor_garbage", "sensor_silent"):
            if self.pty:
                self.radar.garbage = self.radar.silent = False
            else:
                box.presence.heal()
        elif k == "radar_unplug":
            self.radar.port.replug()
        elif k == "dmx_unplug":
            if self.pty:
                self.widget.port.replug()
            else:
                box.dmx.transport.unplugged = False
        elif k.startswith("model"):
            self.engine.mode = None
        elif k == "display_gone":
            box.display.gone = False
        elif k == "disk_full":
            self.disk.full = False
        f.mark = {"cam": box._cam_key, "sent": box.dmx.sent, "shown": box.display.frames_shown,
                  "opens": getattr(box.presence, "opens", 0),
                  "widget": self.widget.frames if self.widget else 0,
                  "write": self.writer._last_write or 0.0}

    def unhealthy(self, kind: str) -> bool:
        dev = DEVICE_OF[kind]
        if dev == "status":
            return self.writer._failing
        return not getattr(self.box, {"generator": "worker"}.get(dev, dev)).health.ok

    def is_back(self, f: Fault, now: float, last_success: float) -> bool:
        """The device is healthy again and the box uses it again."""
        box, k, m = self.box, f.kind, f.mark
        if self.unhealthy(k):
            return False
        if k.startswith("camera"):
            return box._cam_key is not None and box._cam_key != m["cam"]
        if k in ("sensor_garbage", "sensor_silent", "radar_unplug"):
            ps = box.presence_state
            if ps.stale or (k == "radar_unplug" and box.presence.opens <= m["opens"]):
                return False
            truth = self.truth(now)
            seen = ps.distance_m
            far = truth > self.config.show.release_m
            return (seen is None or seen > self.config.show.release_m) if far else \
                (seen is not None and abs(seen - truth) < 0.5)
        if k == "dmx_unplug":
            return box.dmx.sent > m["sent"] and (not self.pty or self.widget.frames > m["widget"])
        if k.startswith("model"):
            return last_success > f.healed
        if k == "display_gone":
            return box.display.frames_shown > m["shown"]
        if k == "disk_full":
            return (self.writer._last_write or 0.0) > m["write"]
        return True

    def drive_devices(self, now: float) -> None:
        if self.pty:
            truth = self.truth(now)
            self.radar.tick(now, truth if truth < 8.0 else None)
            self.widget.drain()

    def close(self) -> None:
        try:
            self.box.close()
        finally:
            self.disk.__exit__()
            if self.pty:
                self.widget.drain()
                self.radar.close()
                self.widget.close()


# ---------------------------------------------------------------------------------------- the run
@dataclass
class Options:
    cycles: int = 1000
    seed: int = 0
    model_dir: Path | None = None
    pty: bool = False
    fps: float = 20.0
    width: int = 160
    height: int = 90
    warmup_cycles: int = 20
    fault_every_s: float = 8.0        # mean show seconds between injections
    fault_s: tuple[float, float] = (1.0, 12.0)
    speed: float | None = None        # at most this many show seconds per real second (pty: 10)
    kinds: tuple[str, ...] | None = None
    workdir: Path | None = None
    progress: bool = False


def default_model_dir(workdir: Path) -> Path:
    """models/default when it is there; in a checkout without it, the tests' tiny real model."""
    shipped = REPO / "models" / "default"
    if (shipped / "manifest.json").is_file():
        return shipped
    tests = REPO / "tests"
    if (tests / "modelmaker.py").is_file():
        sys.path.insert(0, str(tests))
        try:
            from modelmaker import make_model_dir
        finally:
            sys.path.remove(str(tests))
        return make_model_dir(workdir / "tiny-model")
    raise SystemExit("humus soak: no model (models/default is missing); pass --model DIR")


def run_soak(opts: Options) -> dict:
    own_dir = opts.workdir is None
    shm = Path("/dev/shm")
    workdir = Path(tempfile.mkdtemp(prefix="humus-soak-", dir=shm if shm.is_dir() else None)) \
        if own_dir else opts.workdir
    counter = LogCounter()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(counter)
    root.setLevel(min(old_level, logging.INFO) if old_level else logging.INFO)
    try:
        model_dir = opts.model_dir or default_model_dir(workdir)
        rig = Rig(workdir, model_dir, opts.seed, opts.cycles * 2 + 60, opts.pty, opts.fps,
                  opts.width, opts.height)
        try:
            report = Soak(rig, opts, counter).run()
        finally:
            rig.close()
        report["model"] = str(model_dir)
        return report
    finally:
        root.removeHandler(counter)
        root.setLevel(old_level)
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)


class Soak:
    def __init__(self, rig: Rig, opts: Options, counter: LogCounter) -> None:
        self.rig, self.opts, self.counter = rig, opts, counter
        self.rng = random.Random(opts.seed * 7919 + 1)
        self.kinds = opts.kinds if opts.kinds is not None else (PTY_KINDS if opts.pty else SIM_KINDS)
        self.deck: list[str] = []
        self.active: list[Fault] = []
        self.healing: list[Fault] = []
        # Finished faults are folded into per-kind figures at once: the harness's own memory must
        # stay flat too, or it would hide (or fake) a leak in the box.
        self.per_kind: dict[str, dict] = {}
        self.violations: Counter = Counter()
        self.violation_samples: list[str] = []
        self.crashes: list[str] = []
        self.unexpected: list[str] = []          # the first few, for the report
        self.unexpected_by_dev: Counter = Counter()
        self.during = {k: Counter() for k in DEVICE_OF}   # what the show did while each kind was on
        self.speed = opts.speed if opts.speed is not None else (10.0 if opts.pty else None)

    def violate(self, what: str, now: float, detail: str = "") -> None:
        self.violations[what] += 1
        if len(self.violation_samples) < 30:
            faults = ",".join(f.kind for f in self.active) or "no fault active"
            self.violation_samples.append(f"t={now - 1000.0:.2f} {what} {detail} ({faults})")

    def next_kind(self) -> str:
        """A shuffled deck: every kind comes up once before any repeats (short runs cover all)."""
        busy = {f.kind for f in self.active} | {f.kind for f in self.healing}
        if not self.deck:
            self.deck = list(self.kinds)
            self.rng.shuffle(self.deck)
        for i, k in enumerate(self.deck):
            if k not in busy and DEVICE_OF[k] not in {DEVICE_OF[b] for b in busy}:
                return self.deck.pop(i)
        return ""

    def _fold(self, f: Fault) -> None:
        k = self.per_kind.setdefault(f.kind, {"injected": 0, "recovered": 0, "detected": 0,
                                              "sum": 0.0, "max": 0.0})
        k["injected"] += 1
        k["detected"] += f.detected
        if f.recovered is not None:
            k["recovered"] += 1
            k["sum"] += f.recovered - f.healed
            k["max"] = max(k["max"], f.recovered - f.healed)

    def _injected(self) -> int:
        return sum(k["injected"] for k in self.per_kind.values()) + len(self.healing) + len(self.active)

    def run(self) -> dict:
        rig, box, opts = self.rig, self.rig.box, self.opts
        clock, period = rig.clock, 1.0 / opts.fps
        t_show0, t_real0 = clock.now(), time.monotonic()
        self.next_fault = t_show0 + self.rng.expovariate(1.0 / opts.fault_every_s)
        # what the per-frame checks remember between frames
        self.prev_state, self.prev_hash, self.still_since = State.IDLE, None, clock.now()
        self.near_since, self.presence_ok_since, self.dmx_window = None, clock.now(), None
        self.last_success, self.seen_result = -math.inf, None
        self.faults_seen = {k: 0 for k in ("camera", "presence", "dmx", "display", "generator")}
        cycles = full_cycles = 0
        reached_hold = False
        rss_start = fds_start = threads_start = None
        rss_samples: list[tuple[int, int]] = []
        ending_since = None
        max_show = (opts.cycles + opts.warmup_cycles) * 40.0 + 600.0
        box.warm_up()
        self.shown = box.display.frames_shown
        while True:
            now = clock.now()
            if cycles >= opts.cycles and ending_since is None:
                ending_since = now
                for f in self.active:            # heal everything; the box must come back
                    f.heal_at = now
            if ending_since is not None and not self.active and not self.healing:
                break
            if now - t_show0 > max_show or (ending_since is not None and now - ending_since > 2 * RECOVERY_LIMIT_S):
                self.violate("soak did not finish", now, f"cycles={cycles}")
                break
            self._schedule(now, ending=ending_since is not None)
            rig.drive_devices(now)
            frame = self._step()
            state = box.cue.state if box.cue else State.IDLE
            self._check_frame(now, frame, state, period)
            self._track_faults(now)
            # -- cycles, memory --
            reached_hold = reached_hold or state == State.HOLD
            if self.prev_state != State.IDLE and state == State.IDLE:
                cycles += 1
                full_cycles += reached_hold
                reached_hold = False
                if cycles % 50 == 0:
                    rss_samples.append((cycles, rss_kb()))
                    if opts.progress:
                        print(f"soak: {cycles} cycles, {self._injected()} "
                              f"faults, rss {rss_kb()} kB, {time.monotonic() - t_real0:.0f} s", file=sys.stderr)
            # The baseline: after the warm-up (caches filled), at a moment with every device plugged.
            if rss_start is None and cycles >= opts.warmup_cycles and not self.active and not self.healing:
                gc.collect()
                rss_start, fds_start, threads_start = rss_kb(), open_fds(), threading.active_count()
            self.prev_state = state
            clock.advance(period)
            if self.speed:
                ahead = (clock.now() - t_show0) / self.speed - (time.monotonic() - t_real0)
                if ahead > 0:
                    time.sleep(ahead)
        gc.collect()
        rss_end = rss_kb()
        wall = time.monotonic() - t_real0
        return self._report(cycles, full_cycles, clock.now() - t_show0, wall, rss_start, rss_end,
                            rss_samples, fds_start, threads_start)

    def _schedule(self, now: float, ending: bool) -> None:
        """Inject a fault when one is due (random kind, random duration); heal those whose time is up."""
        if not ending and now >= self.next_fault:
            kind = self.next_kind()
            if kind:
                f = Fault(kind, now, now + self.rng.uniform(*self.opts.fault_s))
                self.rig.inject(f)
                self.active.append(f)
            self.next_fault = now + self.rng.expovariate(1.0 / self.opts.fault_every_s)
        for f in [f for f in self.active if now >= f.heal_at]:
            self.rig.heal(f)
            f.healed = now
            self.active.remove(f)
            self.healing.append(f)

    def _step(self):
        """One frame the way the runtime does it: step, then the status file."""
        box = self.rig.box
        try:
            frame = box.step()
            self.rig.status(box)
            return frame
        except Exception as exc:  # the one thing that must never happen
            self.crashes.append("".join(traceback.format_exception(exc)) if len(self.crashes) < 10
                                else repr(exc))
            return None

    def _check_frame(self, now: float, frame, state: str, period: float) -> None:
        box, rig = self.rig.box, self.rig
        if frame is not None:
            if frame.shape != (self.opts.height, self.opts.width, 3) or frame.dtype != np.uint8:
                self.violate("frame shape", now, str(frame.shape))
            h = zlib.crc32(frame.data)
            if h != self.prev_hash or state != self.prev_state or state == State.HOLD:
                self.still_since = now
            elif now - self.still_since > STILL_S:
                self.violate("picture stands still", now, state)
                self.still_since = now
            self.prev_hash = h
        if not box.display.gone and box.display.frames_shown != self.shown + 1:
            self.violate("frame not presented", now)
        self.shown = box.display.frames_shown
        dur = {State.APPROACH: SHOW["approach_s"], State.IMMERSION: SHOW["immersion_s"],
               State.EMERGENCE: SHOW["emergence_s"], State.HOLD: SHOW["hold_s"], State.RELEASE: SHOW["release_s"]}
        if state in dur and now - box.show_state.since > dur[state] + 1.5 * period:
            self.violate("state held too long", now, state)
        # Idle only while nobody is there: a visitor the sensor can see (no presence fault lately)
        # who has stood within the trigger distance for the dwell must start a cycle.
        self.near_since = (self.near_since or now) if rig.truth(now) < SHOW["trigger_m"] else None
        if any(DEVICE_OF[f.kind] == "presence" for f in self.active + self.healing) or \
                not box.presence.health.ok:
            self.presence_ok_since = now
        wait = SHOW["dwell_s"] + 0.5 + (0.5 if rig.pty else 0.0)
        if state == State.IDLE and self.near_since is not None and now - self.near_since > wait and \
                now - self.presence_ok_since > wait and now > box.show_state.cooldown_until + wait:
            self.violate("idle with a visitor", now)
            self.near_since = now
        self.dmx_window = self._check_dmx(now, self.dmx_window)

    def _track_faults(self, now: float) -> None:
        """Did the box notice each fault, is it back after each heal, did anything fail unprovoked?"""
        box, rig = self.rig.box, self.rig
        vres = box.worker.visitor_result.get()
        if vres is not None and vres is not self.seen_result and vres.done:
            self.seen_result = vres
            if vres.failed is None:
                self.last_success = now
                for f in self.active:   # degraded, not stopped: e.g. no camera -> grown from pure noise
                    self.during[f.kind]["generated"] += 1
        # Noticed while it lasted or before the device was back: a 1.9 s silence is seen as stale at
        # 2.0 s, after the heal but before the first new reading arrives.
        for f in self.active + self.healing:
            f.detected = f.detected or rig.unhealthy(f.kind)
        for f in self.active:
            self.during[f.kind]["frames"] += 1
        for f in list(self.healing):
            if rig.is_back(f, now, self.last_success):
                f.recovered = now
            if f.recovered is not None or now - f.healed > RECOVERY_LIMIT_S:
                self.healing.remove(f)
                self._fold(f)
        for dev, n in self.faults_seen.items():
            d = getattr(box, {"generator": "worker"}.get(dev, dev))
            if d.health.faults > n:
                self.faults_seen[dev] = d.health.faults
                if not any(DEVICE_OF[f.kind] == dev for f in self.active + self.healing):
                    self.unexpected_by_dev[dev] += 1
                    if len(self.unexpected) < 30:
                        self.unexpected.append(f"t={now - 1000.0:.2f} {dev}: {d.health.detail}")

    def _check_dmx(self, now: float, window):
        """Per second of show time in which the interface stayed plugged and healthy, the sender
        must have sent at its rate (the inline sender catches up every frame)."""
        box = self.rig.box
        plugged = not any(f.kind == "dmx_unplug" for f in self.active) and box.dmx.health.ok
        if window is None or not plugged:
            return (now, box.dmx.sent, box.dmx.health.faults) if plugged else None
        t0, sent0, faults0 = window
        if now - t0 >= 1.0:
            rate = 1.0 / box.dmx.period
            if box.dmx.health.faults == faults0 and box.dmx.sent - sent0 < math.floor(rate * (now - t0)) - 1:
                self.violate("dmx below rate", now, f"{box.dmx.sent - sent0} frames in {now - t0:.2f} s")
            return (now, box.dmx.sent, box.dmx.health.faults)
        return window

    def _report(self, cycles, full_cycles, show_s, wall, rss_start, rss_end, rss_samples,
                fds_start, threads_start) -> dict:
        rig, box = self.rig, self.rig.box
        for f in self.healing + self.active:    # never came back
            self._fold(f)
        per_kind = {}
        for kind, k in self.per_kind.items():
            per_kind[kind] = {"injected": k["injected"], "recovered": k["recovered"],
                              "detected": k["detected"],
                              "recovery_s_mean": round(k["sum"] / k["recovered"], 3) if k["recovered"] else None,
                              "recovery_s_max": round(k["max"], 3) if k["recovered"] else None,
                              "frames_during": self.during[kind]["frames"],
                              "generated_during": self.during[kind]["generated"]}
        injected = sum(k["injected"] for k in per_kind.values())
        recovered = sum(k["recovered"] for k in per_kind.values())
        # One incident, one episode: a device whose health flaps during a fault logs it again and
        # again (each time as a new incident) and shows the wrong state in `humus status`.
        episodes = {dev: getattr(box, {"generator": "worker"}.get(dev, dev)).health.faults
                    for dev in ("camera", "presence", "dmx", "display", "generator")}
        for dev, n in episodes.items():
            allowed = sum(k["detected"] for kind, k in self.per_kind.items() if DEVICE_OF[kind] == dev)
            allowed += self.unexpected_by_dev[dev]
            if n > allowed:
                self.violations["health flaps"] += 1
                self.violation_samples.append(f"{dev}: {n} fault episodes for {allowed} injected faults")
        growth = (rss_end - rss_start) / rss_start * 100.0 if rss_start else None
        unexpected = sum(self.unexpected_by_dev.values())
        flood_limit = 2 * injected + 2 * unexpected + 10
        report = {
            "mode": "pty" if rig.pty else "sim", "seed": self.opts.seed,
            "cycles": cycles, "full_cycles": full_cycles, "frames": box.frames,
            "show_seconds": round(show_s, 1), "wall_seconds": round(wall, 1),
            "frames_per_second": round(box.frames / wall, 1) if wall else None,
            "faults": {"injected": injected, "recovered": recovered, "per_kind": per_kind},
            "crashes": len(self.crashes), "crash_samples": self.crashes[:3],
            "violations": dict(self.violations), "violation_samples": self.violation_samples,
            "unexpected_faults": self.unexpected, "unexpected_fault_count": unexpected,
            "log": {"lines": sum(self.counter.by_level.values()), "by_level": dict(self.counter.by_level),
                    "by_logger": dict(self.counter.by_logger), "incident_lines": self.counter.incidents,
                    "incident_limit": flood_limit, "flood": self.counter.incidents > flood_limit,
                    "samples": self.counter.samples[:20]},
            "suppressed_log_lines": sum(d.suppressed for d in (box.camera, box.presence, box.dmx,
                                                                box.display, box.worker)),
            "rss_kb": {"start": rss_start, "end": rss_end,
                       "growth_pct": round(growth, 2) if growth is not None else None,
                       "samples": rss_samples},
            "fds": {"start": fds_start, "end": open_fds()},
            "threads": {"start": threads_start, "end": threading.active_count()},
            "dmx": {"sent": box.dmx.sent}, "fault_episodes": episodes,
            "status_writes_refused": rig.disk.refused,
            "images_generated": box.worker.images_done,
        }
        if rig.pty:
            report["dmx"].update(widget_frames=rig.widget.frames, widget_errors=rig.widget.errors,
                                 widget_opens=rig.widget.params)
            report["presence"] = {"radar_reports": rig.radar.sent, "frames_parsed": box.presence.frames,
                                  "rejected": box.presence.parser.rejected, "opens": box.presence.opens}
        report["ok"] = (report["crashes"] == 0 and not self.violations and recovered == injected
                        and not report["log"]["flood"] and not unexpected
                        and (growth is None or growth < 5.0)
                        and (fds_start is None or report["fds"]["end"] <= fds_start)
                        and (threads_start is None or report["threads"]["end"] <= threads_start))
        return report


# ---------------------------------------------------------------------------------------- the CLI
def cmd_soak(args) -> int:
    opts = Options(cycles=args.cycles, seed=args.seed, model_dir=Path(args.model) if args.model else None,
                   pty=args.pty, fps=args.fps, speed=args.speed, progress=True,
                   warmup_cycles=min(args.warmup, max(1, args.cycles // 5)))
    if not args.verbose_show:
        for h in logging.getLogger().handlers:   # the console shows incidents, not every state change
            h.setLevel(max(h.level, logging.WARNING))
    report = run_soak(opts)
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(summary(report))
    return 0 if report["ok"] else 1


def summary(r: dict) -> str:
    lines = [f"humus soak ({r['mode']}, seed {r['seed']}): {r['cycles']} cycles ({r['full_cycles']} full), "
             f"{r['frames']} frames, {r['show_seconds']:.0f} s of show in {r['wall_seconds']:.0f} s",
             f"  faults: {r['faults']['injected']} injected, {r['faults']['recovered']} recovered"]
    for k, v in sorted(r["faults"]["per_kind"].items()):
        lines.append(f"    {k:15s} {v['injected']:4d} injected {v['recovered']:4d} recovered "
                     f"{v['detected']:4d} detected  back in {v['recovery_s_mean']} s (max {v['recovery_s_max']})")
    rss = r["rss_kb"]
    lines += [f"  crashes: {r['crashes']}   violations: {r['violations'] or 'none'}   "
              f"unexpected faults: {r['unexpected_fault_count']}",
              f"  log: {r['log']['lines']} lines, {r['log']['incident_lines']} incident lines "
              f"(limit {r['log']['incident_limit']})",
              f"  rss: {rss['start']} kB -> {rss['end']} kB ({rss['growth_pct']} %)   fds {r['fds']['start']} -> "
              f"{r['fds']['end']}   threads {r['threads']['start']} -> {r['threads']['end']}",
              f"  {'OK' if r['ok'] else 'FAILED'}"]
    return "\n".join(lines)


def register(sub) -> None:
    s = sub.add_parser("soak", help="run the box through many visitor cycles with injected faults")
    s.add_argument("--cycles", type=int, default=1000, help="visitor cycles to run (default 1000)")
    s.add_argument("--seed", type=int, default=0, help="seeds the visitors and the faults")
    s.add_argument("--json", metavar="FILE", help="write the full report here")
    s.add_argument("--model", metavar="DIR", help="model directory (default: models/default)")
    s.add_argument("--pty", action="store_true", help="LD2410 radar and Enttec Pro on pty emulators")
    s.add_argument("--fps", type=float, default=20.0, help="projector frames per show second")
    s.add_argument("--speed", type=float, help="at most this many show seconds per real second "
                   "(default: as fast as it goes; 10 with --pty, whose serial threads run in real time)")
    s.add_argument("--warmup", type=int, default=20, help="cycles before the memory baseline")
    s.add_argument("--verbose-show", action="store_true", help="print every log line, state changes too")
    s.set_defaults(func=cmd_soak)
