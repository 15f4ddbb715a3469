"""The soak's report: what the log, the memory and the faults came to, the verdict, and the summary
`humus soak` prints."""
from __future__ import annotations

import logging
import os
import threading
from collections import Counter

from firmware.soak.faults import DEVICE_OF


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


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


def build_report(soak, cycles, full_cycles, show_s, wall, rss_start, rss_end, rss_samples,
            fds_start, threads_start) -> dict:
    rig, box = soak.rig, soak.rig.box
    for f in soak.schedule.healing + soak.schedule.active:    # never came back
        soak.fold(f)
    per_kind = {}
    for kind, k in soak.per_kind.items():
        per_kind[kind] = {"injected": k["injected"], "recovered": k["recovered"],
                          "detected": k["detected"],
                          "recovery_s_mean": round(k["sum"] / k["recovered"], 3) if k["recovered"] else None,
                          "recovery_s_max": round(k["max"], 3) if k["recovered"] else None,
                          "frames_during": soak.during[kind]["frames"],
                          "generated_during": soak.during[kind]["generated"]}
    injected = sum(k["injected"] for k in per_kind.values())
    recovered = sum(k["recovered"] for k in per_kind.values())
    # One incident, one episode: a device whose health flaps during a fault logs it again and
    # again (each time as a new incident) and shows the wrong state in `humus status`.
    episodes = {dev: box.parts()[dev].health.faults
                for dev in ("camera", "presence", "dmx", "display", "generator")}
    for dev, n in episodes.items():
        allowed = sum(k["detected"] for kind, k in soak.per_kind.items() if DEVICE_OF[kind] == dev)
        allowed += soak.unexpected_by_dev[dev]
        if n > allowed:
            soak.checks.violations["health flaps"] += 1
            soak.checks.violation_samples.append(f"{dev}: {n} fault episodes for {allowed} injected faults")
    growth = (rss_end - rss_start) / rss_start * 100.0 if rss_start else None
    unexpected = sum(soak.unexpected_by_dev.values())
    flood_limit = 2 * injected + 2 * unexpected + 10
    report = {
        "mode": "pty" if rig.pty else "sim", "seed": soak.opts.seed,
        "cycles": cycles, "full_cycles": full_cycles, "frames": box.frames,
        "show_seconds": round(show_s, 1), "wall_seconds": round(wall, 1),
        "frames_per_second": round(box.frames / wall, 1) if wall else None,
        "faults": {"injected": injected, "recovered": recovered, "per_kind": per_kind},
        "crashes": len(soak.crashes), "crash_samples": soak.crashes[:3],
        "violations": dict(soak.checks.violations), "violation_samples": soak.checks.violation_samples,
        "unexpected_faults": soak.unexpected, "unexpected_fault_count": unexpected,
        "log": {"lines": sum(soak.counter.by_level.values()), "by_level": dict(soak.counter.by_level),
                "by_logger": dict(soak.counter.by_logger), "incident_lines": soak.counter.incidents,
                "incident_limit": flood_limit, "flood": soak.counter.incidents > flood_limit,
                "samples": soak.counter.samples[:20]},
        "suppressed_log_lines": sum(d.suppressed for d in (box.devices.camera, box.devices.presence, box.devices.dmx,
                                                            box.devices.display, box.session.worker)),
        "rss_kb": {"start": rss_start, "end": rss_end,
                   "growth_pct": round(growth, 2) if growth is not None else None,
                   "samples": rss_samples},
        "fds": {"start": fds_start, "end": open_fds()},
        "threads": {"start": threads_start, "end": threading.active_count()},
        "dmx": {"sent": box.devices.dmx.sent}, "fault_episodes": episodes,
        "status_writes_refused": rig.disk.refused,
        "images_generated": box.session.worker.images_done,
        "barren_cycles": soak.checks.barren_cycles,
    }
    if rig.pty:
        widget = rig.widget.state
        report["dmx"].update(widget_frames=widget.universes, widget_errors=widget.errors,
                             widget_opens=widget.param_sets)
        report["presence"] = {"radar_reports": rig.radar.sent, "frames_parsed": box.devices.presence.frames,
                              "rejected": box.devices.presence.parser.rejected, "opens": box.devices.presence.opens}
    report["failures"] = failures(report, growth)
    report["ok"] = not report["failures"]
    return report


def failures(r: dict, growth: float | None) -> list[str]:
    """Why the soak failed, one reason a line; empty when it passed."""
    why = []
    if r["crashes"]:
        why.append(f"{r['crashes']} crashes: step() raised")
    if not r["images_generated"]:
        why.append("no image was generated in the whole run")
    elif r["barren_cycles"]:
        why.append(f"no image was generated in {r['barren_cycles']} of {r['cycles']} visitor cycles "
                   f"with no model fault on")
    others = {k: n for k, n in r["violations"].items() if k != "no images generated"}
    if others:
        why.append(f"violations: {others}")
    f = r["faults"]
    if f["recovered"] != f["injected"]:
        why.append(f"{f['injected'] - f['recovered']} of {f['injected']} injected faults not recovered")
    if r["unexpected_fault_count"]:
        why.append(f"{r['unexpected_fault_count']} unexpected faults")
    if r["log"]["flood"]:
        why.append(f"log flood: {r['log']['incident_lines']} incident lines (limit {r['log']['incident_limit']})")
    if growth is not None and growth >= 5.0:
        why.append(f"resident memory grew {growth:.1f} %")
    if r["fds"]["start"] is not None and r["fds"]["end"] > r["fds"]["start"]:
        why.append(f"open file descriptors grew {r['fds']['start']} -> {r['fds']['end']}")
    if r["threads"]["start"] is not None and r["threads"]["end"] > r["threads"]["start"]:
        why.append(f"threads grew {r['threads']['start']} -> {r['threads']['end']}")
    return why


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
              f"  images: {r['images_generated']} generated, {r['barren_cycles']} cycles without one "
              f"while no model fault was on",
              f"  rss: {rss['start']} kB -> {rss['end']} kB ({rss['growth_pct']} %)   fds {r['fds']['start']} -> "
              f"{r['fds']['end']}   threads {r['threads']['start']} -> {r['threads']['end']}",
              "  OK" if r["ok"] else "  FAILED: " + "; ".join(r["failures"])]
    return "\n".join(lines)
