"""`humus`: the box's runtime and the field tech's tools.

    humus run [--sim] [--headless] [--record FILE.mp4] [--duration S] [--config FILE]
              [--start 2026-12-04T17:59]   (with --sim: rehearse a schedule change in real time)
    humus check-config [PATH]       print the merged config (and warnings), or the errors (exit 2)
    humus bench [--json FILE]       per-stage latency, images/s, display fps, DMX jitter
    humus safe                      the safe look: calm lights, a still image (systemd safe mode)
    plus the appliance tools (update, rollback, releases, status, doctor, logs) and calibrate.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from firmware import __version__



def _load(args):
    from firmware.config.load import load_config_or_exit
    return load_config_or_exit(getattr(args, "config", None))


def cmd_check_config(args) -> int:
    from firmware.config.errors import ConfigError
    from firmware.config.load import config_warnings, dump_config, load_config
    try:
        config = load_config(args.path, search=args.path is None)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(dump_config(config))
    for w in config_warnings(config):    # stderr: stdout stays the config, and the status 0
        print(f"humus: warning: {w}", file=sys.stderr)
    return 0


def sim_config(config, headless: bool):
    """--sim: every device simulated (the display too unless a window can be shown)."""
    from firmware.config.devices import CameraSim, DisplayHeadless, DmxSim, PresenceSim
    from firmware.config.venue import TimeSyncSystem
    display = config.display
    if headless or display.type != "pygame":
        display = DisplayHeadless(width=display.width, height=display.height, fps=display.fps)
    # A section that is already simulated keeps its settings (the presence script, say): --sim
    # replaces real hardware, not the scenario the config describes.
    update = {"camera": config.camera if isinstance(config.camera, CameraSim) else CameraSim(),
              "presence": config.presence if isinstance(config.presence, PresenceSim) else PresenceSim(),
              "dmx": config.dmx if isinstance(config.dmx, DmxSim) else DmxSim(), "display": display}
    if isinstance(config.timesync, TimeSyncSystem):   # the rehearsal's clock (--start) is right by definition
        from firmware.config.venue import TimeSyncSim
        update["timesync"] = TimeSyncSim(type="sim")
    if config.projector.type != "none":   # a rehearsal records the projector's commands, sends none
        from firmware.config.venue import ProjectorSim
        update["projector"] = ProjectorSim(type="sim", retry_s=(0.5, 5.0))
    return config.model_copy(update=update)


def cmd_run(args) -> int:
    from firmware.runner import RunOptions, run_box, run_summary, write_traces

    config = _load(args)
    if args.sim:
        config = sim_config(config, args.headless)
        if not args.headless and _can_show_window():
            from firmware.config.devices import DisplayPygame
            d = config.display
            config = config.model_copy(update={"display": DisplayPygame(
                type="pygame", width=d.width, height=d.height, fps=d.fps, fullscreen=False)})
    if args.model:
        config = config.model_copy(update={"model": config.model.model_copy(update={"dir": Path(args.model)})})
    if args.width or args.height or args.fps:
        d = config.display
        config = config.model_copy(update={"display": d.model_copy(update={
            "width": args.width or d.width, "height": args.height or d.height, "fps": args.fps or d.fps})})
    wall_start = None
    if args.start:
        if not args.sim:
            print("humus: --start rehearses a time of day; it needs --sim", file=sys.stderr)
            return 2
        try:
            wall_start = _wall_start(args.start, config)
        except ValueError as exc:
            print(f"humus: --start: {exc}", file=sys.stderr)
            return 2
    # --start rehearses in real time (the schedule, the projector, OSC peers all live on it)
    offline = args.sim and config.display.type == "headless" and not args.realtime and not wall_start
    duration = args.duration if args.duration is not None else (45.0 if args.sim else None)
    box, stats = run_box(config, RunOptions(duration, offline, appliance=not args.sim, record=args.record,
                                            record_scale=args.record_scale), wall_start)
    # The traces go beside a recording, or for a rehearsal to humus-run.*; the field box writes none.
    written = write_traces(box, Path(args.record or "humus-run")) if (args.record or args.sim) else []
    for line in run_summary(box, stats, wall_start is not None):
        print(line)
    for p in ([Path(args.record)] if args.record else []) + written:
        print(f"humus: wrote {p}")
    return 0


def _wall_start(text: str, config):
    """--start: ISO date and time; without an offset it is read in the schedule's time zone."""
    from datetime import datetime
    start = datetime.fromisoformat(text)
    if start.tzinfo is None:
        if config.schedule is not None:
            from firmware.show.schedule import load_zone
            start = start.replace(tzinfo=load_zone(config.schedule.timezone))
        else:
            start = start.astimezone()   # the box's local zone
    return start


def _can_show_window() -> bool:
    import os
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def cmd_safe(args) -> int:
    from firmware.safe import run_safe
    return run_safe(_load(args), args.duration)


def cmd_bench(args) -> int:
    if args.venue:
        from firmware.bench.venue import run_venue_bench
        return run_venue_bench(args)
    from firmware.bench.stages import run_bench
    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    from firmware.appliance.argtypes import existing_dir, number
    p = argparse.ArgumentParser(prog="humus", description="humus: decomposition and creation, on a box")
    p.add_argument("--version", action="version", version=f"humus {__version__}")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="run the show")
    r.add_argument("--config", help="config file (default: /etc/humus/humus.toml, else built-in)")
    r.add_argument("--sim", action="store_true", help="simulate every device (scripted visitor)")
    r.add_argument("--headless", action="store_true", help="no window (with --sim)")
    r.add_argument("--realtime", action="store_true", help="with --sim --headless: real clock")
    r.add_argument("--record", metavar="FILE.mp4", help="record the projector output")
    r.add_argument("--record-scale", type=number(float, 0.05, 1.0), default=0.5,
                   help="recording size / display size")
    r.add_argument("--model", type=existing_dir, metavar="DIR",
                   help="play this model folder (manifest.json + ONNX) instead of [model] dir")
    r.add_argument("--duration", type=number(float, 0, 1e7),
                   help="seconds to run (default: 45 with --sim, else forever)")
    r.add_argument("--start", metavar="YYYY-MM-DDTHH:MM", help="with --sim: the wall-clock time to start "
                   "at (schedule's time zone unless an offset is given), to rehearse an opening or closing "
                   "in real time")
    # the same bounds as [display] in the config (firmware/config/devices.py)
    r.add_argument("--width", type=number(int, 64, 7680))
    r.add_argument("--height", type=number(int, 64, 4320))
    r.add_argument("--fps", type=number(float, 1, 240))
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("check-config", help="validate a config file and print the merged result")
    c.add_argument("path", nargs="?")
    c.set_defaults(func=cmd_check_config)

    b = sub.add_parser("bench", help="measure every stage and print the figures")
    b.add_argument("--config")
    b.add_argument("--json", metavar="FILE")
    b.add_argument("--seconds", type=number(float, 0.1, 3600), default=5.0, help="per measurement")
    b.add_argument("--no-torch", action="store_true", help="skip the torch eager comparison")
    b.add_argument("--window", action="store_true", help="also run the realtime loop through a real X11 "
                   "window (an Xvfb is started when there is no screen)")
    b.add_argument("--torch-checkpoint", help="studio checkpoint of the same network, to time the "
                   "original torch module (default: the ONNX graph run op by op in torch)")
    b.add_argument("--venue", action="store_true", help="only the venue figures: detection after a plug, "
                   "OSC latency and rate, a simulated year of the schedule, listening ports")
    b.add_argument("--plugs", type=int, default=20, help="with --venue: pty plugs to time")
    b.set_defaults(func=cmd_bench)

    s = sub.add_parser("safe", help="safe mode: calm lights and a still image")
    s.add_argument("--config")
    s.add_argument("--duration", type=number(float, 0, 1e7))
    s.set_defaults(func=cmd_safe)

    # Part of the package, never optional: a failing import is a broken install and must say so, not
    # look like a missing subcommand.
    for module in ("firmware.appliance.commands", "firmware.devices.calibrate", "firmware.soak"):
        __import__(module, fromlist=["register"]).register(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from firmware.appliance.commands import run_quietly_on_closed_pipe
    return run_quietly_on_closed_pipe(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
