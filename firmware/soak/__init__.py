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
interface is plugged. Checked every visitor cycle: images keep being generated while no model fault
is on. Also: incidents are logged once (no floods), and resident memory, open file descriptors and
threads stay flat after the warm-up. The report (`--json`) holds every figure; the summary's last
line says OK, or FAILED with each reason.

The package by concern: schedule (visitors, when faults come and go), faults (how each kind is
injected, healed and seen to be over), invariants (the per-frame checks), report (figures and
verdict), rig (the box and what surrounds it); this module runs the loop and is the CLI.
"""
from __future__ import annotations

import gc
import json
import logging
import math
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from firmware.show.machine import State
from firmware.soak import faults
from firmware.soak.faults import DEVICE_OF, PTY_KINDS, SIM_KINDS, Fault, FaultyEngine, FullDisk
from firmware.soak.invariants import Invariants
from firmware.soak.report import LogCounter, build_report, open_fds, rss_kb, summary
from firmware.soak.rig import Rig
from firmware.soak.schedule import FaultSchedule

__all__ = ["PTY_KINDS", "SIM_KINDS", "FaultyEngine", "FullDisk", "Options", "Soak", "cmd_soak", "register",
           "run_soak", "summary"]

log = logging.getLogger("humus.soak")

REPO = Path(__file__).resolve().parent.parent.parent
RECOVERY_LIMIT_S = 90.0  # show seconds after a heal by which the box must be back


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
        kinds = opts.kinds if opts.kinds is not None else (PTY_KINDS if opts.pty else SIM_KINDS)
        self.schedule = FaultSchedule(opts.seed, kinds, opts.fault_every_s, opts.fault_s)
        # Finished faults are folded into per-kind figures at once: the harness's own memory must
        # stay flat too, or it would hide (or fake) a leak in the box.
        self.per_kind: dict[str, dict] = {}
        self.crashes: list[str] = []
        self.unexpected: list[str] = []          # the first few, for the report
        self.unexpected_by_dev: Counter = Counter()
        self.during = {k: Counter() for k in DEVICE_OF}   # what the show did while each kind was on
        self.speed = opts.speed if opts.speed is not None else (10.0 if opts.pty else None)

    def fold(self, f: Fault) -> None:
        k = self.per_kind.setdefault(f.kind, {"injected": 0, "recovered": 0, "detected": 0,
                                              "sum": 0.0, "max": 0.0})
        k["injected"] += 1
        k["detected"] += f.detected
        if f.recovered is not None:
            k["recovered"] += 1
            k["sum"] += f.recovered - f.healed
            k["max"] = max(k["max"], f.recovered - f.healed)

    def _injected(self) -> int:
        return sum(k["injected"] for k in self.per_kind.values()) + len(self.schedule.on())

    def run(self) -> dict:
        rig, box, opts = self.rig, self.rig.box, self.opts
        clock, period = rig.clock, 1.0 / opts.fps
        t_show0, t_real0 = clock.now(), time.monotonic()
        schedule = self.schedule
        schedule.start(t_show0)
        self.checks = Invariants(rig, schedule, opts.height, opts.width, clock.now())
        prev_state = State.IDLE
        self.last_success, self.seen_result = -math.inf, None
        self.faults_seen = {k: 0 for k in ("camera", "presence", "dmx", "display", "generator")}
        cycles = full_cycles = 0
        reached_hold = False
        rss_start = fds_start = threads_start = None
        rss_samples: list[tuple[int, int]] = []
        ending_since = None
        max_show = (opts.cycles + opts.warmup_cycles) * 40.0 + 600.0
        box.warm_up()
        self.checks.shown = box.devices.display.frames_shown
        while True:
            now = clock.now()
            if cycles >= opts.cycles and ending_since is None:
                ending_since = now
                schedule.heal_all(now)           # heal everything; the box must come back
            if ending_since is not None and not schedule.on():
                break
            if now - t_show0 > max_show or (ending_since is not None and now - ending_since > 2 * RECOVERY_LIMIT_S):
                self.checks.violate("soak did not finish", now, f"cycles={cycles}")
                break
            schedule.step(now, ending_since is not None, lambda f: faults.inject(rig, f),
                          lambda f: faults.heal(rig, f))
            rig.drive_devices(now)
            frame = self._step()
            state = box.cue.state if box.cue else State.IDLE
            cycle_ended = prev_state != State.IDLE and state == State.IDLE
            self.checks.check_frame(now, frame, state, period)
            self.checks.check_images(now, cycle_ended)
            self._track_faults(now)
            # -- cycles, memory --
            reached_hold = reached_hold or state == State.HOLD
            if cycle_ended:
                cycles += 1
                full_cycles += reached_hold
                reached_hold = False
                if cycles % 50 == 0:
                    rss_samples.append((cycles, rss_kb()))
                    if opts.progress:
                        print(f"soak: {cycles} cycles, {self._injected()} "
                              f"faults, rss {rss_kb()} kB, {time.monotonic() - t_real0:.0f} s", file=sys.stderr)
            # The baseline: after the warm-up (caches filled), at a moment with every device plugged.
            if rss_start is None and cycles >= opts.warmup_cycles and not schedule.on():
                gc.collect()
                rss_start, fds_start, threads_start = rss_kb(), open_fds(), threading.active_count()
            prev_state = state
            clock.advance(period)
            if self.speed:
                ahead = (clock.now() - t_show0) / self.speed - (time.monotonic() - t_real0)
                if ahead > 0:
                    time.sleep(ahead)
        gc.collect()
        rss_end = rss_kb()
        wall = time.monotonic() - t_real0
        return build_report(self, cycles, full_cycles, clock.now() - t_show0, wall, rss_start, rss_end,
                            rss_samples, fds_start, threads_start)

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

    def _track_faults(self, now: float) -> None:
        """Did the box notice each fault, is it back after each heal, did anything fail unprovoked?"""
        box, rig = self.rig.box, self.rig
        vres = box.session.worker.visitor_result.get()
        if vres is not None and vres is not self.seen_result and vres.done:
            self.seen_result = vres
            if vres.failed is None:
                self.last_success = now
                for f in self.schedule.active:   # degraded, not stopped: e.g. no camera -> grown from pure noise
                    self.during[f.kind]["generated"] += 1
        # Noticed while it lasted or before the device was back: a 1.9 s silence is seen as stale at
        # 2.0 s, after the heal but before the first new reading arrives.
        for f in self.schedule.on():
            f.detected = f.detected or faults.unhealthy(rig, f.kind)
        for f in self.schedule.active:
            self.during[f.kind]["frames"] += 1
        for f in list(self.schedule.healing):
            if faults.is_back(rig, f, now, self.last_success):
                f.recovered = now
            if f.recovered is not None or now - f.healed > RECOVERY_LIMIT_S:
                self.schedule.healing.remove(f)
                self.fold(f)
        parts = box.parts()
        for dev, n in self.faults_seen.items():
            d = parts[dev]
            if d.health.faults > n:
                self.faults_seen[dev] = d.health.faults
                if not any(DEVICE_OF[f.kind] == dev for f in self.schedule.on()):
                    self.unexpected_by_dev[dev] += 1
                    if len(self.unexpected) < 30:
                        self.unexpected.append(f"t={now - 1000.0:.2f} {dev}: {d.health.detail}")



def cmd_soak(args) -> int:
    if args.power_cuts:
        return cmd_power_cuts(args)
    opts = Options(cycles=args.cycles, seed=args.seed, model_dir=Path(args.model) if args.model else None,
                   pty=args.pty, fps=args.fps, speed=args.speed, progress=True, fault_every_s=args.fault_every,
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


def cmd_power_cuts(args) -> int:
    """`humus soak --power-cuts`: firmware.crash, the simulated power cut after every disk operation."""
    from firmware.crash import run_power_cuts
    from firmware.crash import summary as cut_summary
    from firmware.crash.scenarios import SCENARIOS
    unknown = sorted(set(args.scenario or ()) - set(SCENARIOS))
    if unknown:
        print(f"humus soak: unknown scenario {', '.join(unknown)} (known: {', '.join(SCENARIOS)})", file=sys.stderr)
        return 2
    report = run_power_cuts(args.scenario, mutations=not args.no_mutations,
                            progress=lambda s: print(f"power cuts: {s}", file=sys.stderr))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(cut_summary(report))
    return 0 if report["ok"] else 1


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
    s.add_argument("--fault-every", type=float, default=Options.fault_every_s, metavar="S",
                   help="mean show seconds between injected faults (default %(default)s; lower it to "
                   "meet every kind in a short run)")
    s.add_argument("--verbose-show", action="store_true", help="print every log line, state changes too")
    s.add_argument("--power-cuts", action="store_true", help="instead: a simulated power cut after every disk "
                   "operation of an update, rollback, recovery, install, first boot and show, each disk booted "
                   "and checked, and the mutation test of every fsync (firmware/crash)")
    s.add_argument("--scenario", action="append", help="with --power-cuts: only this scenario (repeatable)")
    s.add_argument("--no-mutations", action="store_true", help="with --power-cuts: skip the mutation test")
    s.set_defaults(func=cmd_soak)
