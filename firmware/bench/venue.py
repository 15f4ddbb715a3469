"""`humus bench --venue`: figures for running at a venue, printed (and written with --json).

- detection: a radar emulated on a pty is plugged N times behind a fake /dev/serial/by-id; the time
  from the plug (the link appears) to the rescan thread reporting it, at the config's rescan_s;
- OSC: a real box on the real clock with a python-osc client and server on loopback: message in to
  the state change (the box's trace time), message in to /humus/state arriving back, and the
  /humus/noise rate during immersion and emergence;
- schedule: every change over a simulated year, walked by next_change, checked against an independent
  wall-clock oracle every 5 minutes, and the changes around both daylight-saving nights;
- ports: the sockets this process listens on, without and with [osc].
"""
from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

# the example, plus a Saturday night that spans both daylight-saving switches (Sunday 02:00/03:00)
EXAMPLE_OPEN = ["mon-fri 10:00-18:00", "sat,sun 11:00-20:00", "fri 20:00-02:00", "sat 22:00-04:00"]


def _pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def bench_detection(plugs: int = 20, rescan_s: float = 1.0, probe_s: float = 0.3) -> dict:
    from firmware.config.load import parse_config
    from firmware.devices.emulators.radar import LD2410Emulator
    from firmware.devices.hotplug import Hotplug
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        byid = Path(tmp) / "serial" / "by-id"
        byid.mkdir(parents=True)
        config = parse_config({"presence": {"type": "auto"}, "devices": {
            "serial_ports": [str(byid / "*")], "cameras": [], "rescan_s": rescan_s, "probe_s": probe_s}})
        hp = Hotplug(config)
        hp.scan_now()
        hp.start()
        try:
            for i in range(plugs):
                time.sleep(rescan_s * ((i * 0.37) % 1.0))   # plug at varied phases of the rescan
                radar = LD2410Emulator(byid / "usb-radar", distance_cm=150, rate_hz=20.0)
                t0 = time.monotonic()                        # the link is there: plugged
                radar.start()
                while time.monotonic() - t0 < 10:
                    det = hp.latest.get()
                    if det is not None and det.chosen("presence") is not None:
                        break
                    time.sleep(0.005)
                times.append(time.monotonic() - t0)
                radar.close()
                while hp.latest.get().chosen("presence") is not None:   # unplugged: wait until seen
                    time.sleep(0.01)
        finally:
            hp.close()
    return {"plugs": plugs, "rescan_s": rescan_s, "median_s": round(statistics.median(times), 3),
            "p99_s": round(_pct(times, 0.99), 3), "max_s": round(max(times), 3)}


def bench_osc(trials: int = 10) -> dict:
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer
    from pythonosc.udp_client import SimpleUDPClient

    from firmware.box.conductor import Box
    from firmware.clock import RealClock
    from firmware.config.load import parse_config
    from firmware.runner import Stopper, run_realtime
    from firmware.show.machine import State

    got: list[tuple[float, str, tuple]] = []
    d = Dispatcher()
    d.set_default_handler(lambda address, *args: got.append((time.monotonic(), address, args)))
    listener = ThreadingOSCUDPServer(("127.0.0.1", 0), d)
    threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    show = {"approach_s": 0.2, "immersion_s": 1.0, "emergence_s": 0.5, "hold_s": 0.1, "release_s": 0.1,
            "cooldown_s": 0.0}
    config = parse_config({"display": {"type": "headless", "width": 64, "height": 64, "fps": 60.0},
                           "presence": {"type": "none"}, "camera": {"type": "none"}, "show": show,
                           "model": {"dir": "/nonexistent"},
                           "osc": {"listen": "127.0.0.1:0", "send": [f"127.0.0.1:{listener.server_address[1]}"]}})
    box = Box(config, RealClock(), threaded=True)
    stopper = Stopper()
    runner = threading.Thread(target=run_realtime, args=(box, None), kwargs={"stopper": stopper}, daemon=True)
    runner.start()
    client = SimpleUDPClient(*box.venue.osc.address)
    to_state, round_trip, rates = [], [], []
    try:
        time.sleep(0.5)
        for _ in range(trials):
            while box.visit.show.state != State.IDLE:
                time.sleep(0.01)
            n_states = len(box.trace.states)
            got_before = len(got)
            t_send = time.monotonic()
            client.send_message("/humus/trigger", [])
            while len(box.trace.states) == n_states:
                time.sleep(0.0005)
            to_state.append(box.trace.states[n_states][0] - t_send)
            while not any(a == "/humus/state" and v == (State.APPROACH,) for _, a, v in got[got_before:]):
                time.sleep(0.0005)
            arrival = next(t for t, a, v in got[got_before:] if a == "/humus/state" and v == (State.APPROACH,))
            round_trip.append(arrival - t_send)
            while box.visit.show.state not in (State.HOLD, State.RELEASE, State.IDLE):
                time.sleep(0.01)
            time.sleep(0.05)
            noise = [t for t, a, _ in got[got_before:] if a == "/humus/noise"]
            if len(noise) > 1:
                rates.append((len(noise) - 1) / (noise[-1] - noise[0]))
    finally:
        stopper.event.set()
        runner.join(timeout=5)
        box.close()
        listener.shutdown()
        listener.server_close()
    ms = lambda xs: round(1000 * xs, 2)  # noqa: E731
    return {"trials": trials, "in_to_state_ms_median": ms(statistics.median(to_state)),
            "in_to_state_ms_max": ms(max(to_state)), "in_to_state_out_ms_median": ms(statistics.median(round_trip)),
            "noise_rate_hz_min": round(min(rates), 1), "noise_rate_hz_median": round(statistics.median(rates), 1),
            "display_fps": config.display.fps}


def _naive_open(s, instant) -> bool:
    from firmware.show.schedule import load_zone
    local = instant.astimezone(load_zone(s.zone))
    minute = local.hour * 60 + local.minute
    for w in s.windows:
        for back in (0, 1):
            day = local.date() - timedelta(days=back)
            if day in s.closed or day.weekday() not in w.days:
                continue
            end = w.end_min if w.end_min > w.start_min else w.end_min + 1440
            if w.start_min <= minute + back * 1440 < end:
                return True
    return False


def bench_schedule(timezone_name: str = "Europe/Berlin", open_=None, closed=("2026-12-25", "2027-01-01")) -> dict:
    from firmware.config.load import parse_config
    from firmware.show.schedule import changes_between, compile_schedule, load_zone, state_at
    cfg = parse_config({"schedule": {"timezone": timezone_name, "open": list(open_ or EXAMPLE_OPEN),
                                     "closed_dates": list(closed)}}).schedule
    s = compile_schedule(cfg)
    zone = load_zone(s.zone)
    start = datetime(2026, 12, 1, tzinfo=zone).astimezone(timezone.utc)
    end = datetime(2027, 12, 1, tzinfo=zone).astimezone(timezone.utc)
    t0 = time.perf_counter()
    changes = changes_between(s, start, end)
    walk_s = time.perf_counter() - t0
    # DST nights, from the zone itself: local days whose midnight and noon have different offsets
    dst = []
    day = start.astimezone(zone).date()
    while day < end.astimezone(zone).date():
        mid, noon = (datetime(day.year, day.month, day.day, h, tzinfo=zone).utcoffset() for h in (0, 12))
        if mid != noon:
            dst.append(day)
        day += timedelta(days=1)
    missed = disagreements = samples = 0
    t, i, opened = start, 0, state_at(s, start).open
    while t < end:
        while i < len(changes) and changes[i][0] <= t:
            opened = changes[i][1]
            i += 1
        samples += 1
        if opened != state_at(s, t).open:
            missed += 1
        if t.astimezone(zone).date() not in dst and opened != _naive_open(s, t):
            disagreements += 1
        t += timedelta(minutes=5)
    around = {}
    for night in dst:
        midnight = datetime(night.year, night.month, night.day, tzinfo=zone)
        span = next(((a[0], b[0]) for a, b in zip(changes, changes[1:]) if a[1] and a[0] < midnight < b[0]), None)
        near = [c for c in changes if abs((c[0].astimezone(zone).date() - night).days) <= 1]
        around[night.isoformat()] = [f"{c[0].astimezone(zone):%a %H:%M %Z} {'open' if c[1] else 'closed'}"
                                     for c in near]
        if span:
            around[night.isoformat()].append(f"the night's window lasts {(span[1] - span[0]).total_seconds() / 3600:g} h")
    return {"changes": len(changes), "openings": sum(c[1] for c in changes), "samples_5min": samples,
            "missed": missed, "oracle_disagreements": disagreements, "dst_nights": around,
            "walk_ms": round(1000 * walk_s, 1)}


def bench_ports() -> dict:
    from firmware.box.conductor import Box
    from firmware.clock import FakeClock
    from firmware.config.load import parse_config
    from firmware.osc import listening_sockets
    base = {"display": {"type": "headless", "width": 64, "height": 64}, "model": {"dir": "/nonexistent"}}
    before = listening_sockets()
    out = {}
    for name, extra in (("without [osc]", {}), ("with [osc] listen", {"osc": {"listen": "127.0.0.1:0"}}),
                        ("with [osc] send only", {"osc": {"send": ["127.0.0.1:9"]}})):
        box = Box(parse_config({**base, **extra}), FakeClock(), threaded=False)
        try:
            box.step()
            out[name] = sorted(f"{p} {a}:{n}" for p, a, n in listening_sockets() - before)
        finally:
            box.close()
    return out


def run_venue_bench(args) -> int:
    import logging
    logging.getLogger("humus").setLevel(logging.ERROR)   # the figures, not the show's log (no model here)
    report = {}
    print("== detection: radar plugged on a pty behind a fake /dev/serial/by-id")
    r = report["detection"] = bench_detection(args.plugs)
    print(f"  {r['plugs']} plugs, rescan every {r['rescan_s']:g} s: median {r['median_s']} s, "
          f"p99 {r['p99_s']} s, max {r['max_s']} s (goal: within 5 s)")
    print("== OSC over loopback UDP, box at 60 fps")
    r = report["osc"] = bench_osc()
    print(f"  /humus/trigger -> state change: median {r['in_to_state_ms_median']} ms, max {r['in_to_state_ms_max']} ms;"
          f" -> /humus/state back: median {r['in_to_state_out_ms_median']} ms")
    print(f"  /humus/noise during immersion+emergence: median {r['noise_rate_hz_median']} Hz, "
          f"min {r['noise_rate_hz_min']} Hz (goal: >= 10)")
    print("== schedule: a simulated year (2026-12-01 .. 2027-12-01, Europe/Berlin): " + ", ".join(EXAMPLE_OPEN)
          + "; closed 2026-12-25, 2027-01-01")
    r = report["schedule"] = bench_schedule()
    print(f"  {r['changes']} changes ({r['openings']} openings) walked in {r['walk_ms']} ms; "
          f"{r['samples_5min']} 5-minute samples: {r['missed']} missed, "
          f"{r['oracle_disagreements']} disagreements with the wall-clock oracle")
    for night, near in r["dst_nights"].items():
        print(f"  DST {night}: " + "; ".join(near))
    print("== listening sockets opened by a box")
    r = report["ports"] = bench_ports()
    for name, socks in r.items():
        note = "  (the send socket's ephemeral port; nothing reads it)" if "send only" in name and socks else ""
        print(f"  {name}: {', '.join(socks) or 'none'}{note}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"humus bench: wrote {args.json}")
    return 0
