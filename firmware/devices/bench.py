"""DMX refresh benchmark: how steadily does the sender hit its rate, idle and with the CPU saturated?

`humus bench` calls `bench_dmx(transport, seconds)`. The transport is wrapped so every send is
timestamped with perf_counter at the moment it happens; the load is one busy process per core (the
generation worker's worst case on a box), started before and killed after the measurement.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

from firmware.clock import RealClock
from firmware.devices.dmx.interface import DmxTransport
from firmware.devices.dmx.sender import DmxSender


class _Timed(DmxTransport):
    def __init__(self, inner: DmxTransport) -> None:
        self.inner, self.name, self.times = inner, inner.name, []

    def open(self) -> None:
        self.inner.open()

    def send(self, universe: bytes) -> None:
        self.inner.send(universe)
        self.times.append(time.perf_counter())

    def close(self) -> None:
        self.inner.close()


def _percentile(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, round(q * (len(sorted_vals) - 1))))
    return sorted_vals[i]


def cpu_hogs(n: int | None = None) -> list[subprocess.Popen]:
    """One spinning interpreter per core; the caller must terminate them (see `stop_hogs`)."""
    n = n or os.cpu_count() or 1
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
            for _ in range(n)]


def stop_hogs(hogs: list[subprocess.Popen]) -> None:
    for p in hogs:
        p.terminate()
    for p in hogs:
        try:
            p.wait(timeout=2)
        except subprocess.TimeoutExpired:
            p.kill()


@contextlib.contextmanager
def saturated_cpu(n: int | None = None):
    """One busy process per core for the duration of the block."""
    hogs = cpu_hogs(n)
    try:
        time.sleep(0.2)              # let the hogs reach full speed
        yield
    finally:
        stop_hogs(hogs)


def bench_dmx(transport: DmxTransport, seconds: float = 5.0, load=True, rate_hz: float = 40.0,
              channels: int = 512) -> dict:
    """Run a real sender thread for `seconds`; returns rate and jitter (|interval - period|) figures.

    `load`: True = one busy process per core; False = none; or any context manager that keeps the
    box busy while it is entered (e.g. one running the generation worker flat out).
    """
    timed = _Timed(transport)
    if load is True:
        ctx, load_name = saturated_cpu(), "cpu-hogs"
    elif load:
        ctx, load_name = load, type(load).__name__
    else:
        ctx, load_name = contextlib.nullcontext(), "none"
    with ctx:
        # Built inside the load so its cadence starts when it starts, not before the warm-up.
        sender = DmxSender(timed, RealClock(), rate_hz=rate_hz, channels=channels)
        sender.start()
        universe = bytearray(channels)
        end = time.perf_counter() + seconds
        try:
            while time.perf_counter() < end:   # the show changes the universe now and then
                universe[0] = (universe[0] + 1) & 0xFF
                sender.set_universe(bytes(universe))
                time.sleep(0.05)
        finally:
            sender.close()
    t = timed.times
    period = 1.0 / rate_hz
    intervals = [b - a for a, b in zip(t, t[1:])]
    jitter = sorted(abs(i - period) for i in intervals)
    span = t[-1] - t[0] if len(t) > 1 else float("nan")
    return {
        "transport": transport.name, "load": load_name, "cpus": os.cpu_count(), "seconds": seconds,
        "frames": len(t), "rate_hz": (len(t) - 1) / span if len(t) > 1 else 0.0, "target_hz": rate_hz,
        "jitter_p50_ms": _percentile(jitter, 0.5) * 1e3, "jitter_p99_ms": _percentile(jitter, 0.99) * 1e3,
        "jitter_max_ms": (jitter[-1] if jitter else float("nan")) * 1e3,
        "max_gap_ms": max(intervals, default=float("nan")) * 1e3,
        "faults": sender.health.faults, "priority": sender.priority,
    }


def format_result(r: dict) -> str:
    return (f"{r['transport']}: {r['rate_hz']:.2f} Hz (target {r['target_hz']:g}), jitter p50 "
            f"{r['jitter_p50_ms']:.3f} ms, p99 {r['jitter_p99_ms']:.3f} ms, max gap {r['max_gap_ms']:.1f} ms, "
            f"{'no' if r['load'] == 'none' else r['load']} load ({r['cpus']} cpus, {r['frames']} frames, "
            f"sender thread {r['priority']})")


def main(argv=None) -> int:
    """`python -m firmware.devices.bench [--config FILE] [--seconds S] [--no-load]`: the configured
    DMX transport, idle and under load (the same figures `humus bench` reports)."""
    import argparse
    from firmware.config.load import load_config
    from firmware.devices.dmx.table import BACKENDS
    p = argparse.ArgumentParser(prog="python -m firmware.devices.bench")
    p.add_argument("--config")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--no-load", action="store_true", help="only the idle measurement")
    args = p.parse_args(argv)
    cfg = load_config(args.config).dmx
    if cfg.type == "none":
        print("no DMX configured")
        return 1
    for load in (False,) if args.no_load else (False, True):
        transport = BACKENDS.open(cfg, RealClock())
        print(format_result(bench_dmx(transport, args.seconds, load, cfg.rate_hz, cfg.channels)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
