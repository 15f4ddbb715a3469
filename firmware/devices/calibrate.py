"""`humus calibrate`: live presence readings next to the trigger/release distances, for setting the
thresholds on site. Runs the same pure filter as the show, so "present" here means present there.

    humus calibrate [--config FILE] [--duration S] [--rate HZ]
"""
from __future__ import annotations

import sys

from firmware.clock import RealClock

BAR = 40


def _bar(d: float | None, trigger: float, release: float, span: float) -> str:
    cells = [" "] * BAR
    for x, mark in ((trigger, "T"), (release, "R")):
        cells[min(BAR - 1, int(x / span * BAR))] = mark
    if d is not None:
        cells[min(BAR - 1, int(d / span * BAR))] = "#"
    return "|" + "".join(cells) + "|"


def _zone(d: float | None, trigger: float, release: float) -> str:
    if d is None:
        return "nobody"
    if d < trigger:
        return "NEAR: would trigger"
    if d > release:
        return "far: released"
    return "between: keeps state"


def calibrate(config, duration: float | None = None, rate_hz: float = 5.0, out=None, clock=None) -> int:
    """Print readings until `duration` (None: until Ctrl-C). 0 if the sensor gave readings, else 1."""
    from firmware.config.devices import PresenceDistance, PresenceMotion, PresenceSerial
    from firmware.devices.presence.table import open_presence
    from firmware.show.presence import PresenceParams, PresenceState, update_presence
    out = out or sys.stdout
    clock = clock or RealClock()
    if config.presence.type == "auto":   # calibrate what the box would find now
        from firmware.devices.hotplug import resolve_config
        config, _ = resolve_config(config)
    show, pcfg = config.show, config.presence
    params = PresenceParams(show.trigger_m, show.release_m, show.dwell_s, show.leave_grace_s, pcfg.stale_after_s)
    span = max(2 * show.release_m, 6.0)
    match pcfg:   # the port or pin being read: the technician sees which sensor this is
        case PresenceSerial(port=where) | PresenceMotion(pin=where) | PresenceDistance(echo_pin=where):
            pass
        case _:
            where = ""
    print(f"presence {pcfg.type} {where}".rstrip() + f": trigger < {show.trigger_m:.2f} m (T), release > "
          f"{show.release_m:.2f} m (R), dwell {show.dwell_s:g} s, grace {show.leave_grace_s:g} s", file=out)
    print("Ctrl-C to stop." if duration is None else f"for {duration:g} s", file=out, flush=True)
    sensor = open_presence(pcfg, clock)
    state, seen, t0 = PresenceState(), 0, clock.now()
    try:
        while duration is None or clock.now() - t0 < duration:
            clock.sleep(1.0 / rate_hz)
            now = clock.now()
            r = sensor.latest()
            d = r.distance_m if r else None
            state = update_presence(params, state, d, r.t if r else None, now)
            if r is not None:
                seen += 1
            dist = "  -- m " if d is None else f"{d:5.2f} m"
            gates = sensor.gates
            extra = "  gates " + " ".join(f"{e:3d}" for e in gates) if gates else ""
            health = "" if sensor.health.ok else f"  [{sensor.health.detail}]"
            print(f"{now - t0:6.1f}s {dist} {_bar(d, show.trigger_m, show.release_m, span)} "
                  f"{_zone(d, show.trigger_m, show.release_m):22s} "
                  f"{'PRESENT' if state.present else 'absent '}{' STALE' if state.stale else ''}{extra}{health}",
                  file=out, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        sensor.close()
    if not seen:
        print(f"no readings from the sensor ({sensor.health.detail}); `humus doctor` says more", file=out)
        return 1
    return 0


def cmd_calibrate(args) -> int:
    from firmware.config.errors import ConfigError
    from firmware.config.load import load_config
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"humus calibrate: {exc}", file=sys.stderr)
        return 2
    return calibrate(config, args.duration, args.rate)


def register(subparsers) -> None:
    p = subparsers.add_parser("calibrate", help="live presence readings with the trigger/release thresholds")
    p.add_argument("--config", help="config file (default: /etc/humus/humus.toml, else built-in)")
    p.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    p.add_argument("--rate", type=float, default=5.0, help="lines per second (default 5)")
    p.set_defaults(func=cmd_calibrate)
