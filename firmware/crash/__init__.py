"""Pull the plug at any moment: a simulated power cut after every file-system operation.

After a SIGKILL the page cache survives; after a power cut whatever was not fsynced may be lost or
half written, and a rename may land before the data of the file it names. So, as SQLite's simulated
OS layer does: every operation the box makes on its disk goes through one seam
(firmware/appliance/fsops.py) and is recorded while real scenarios run (scenarios.py); the record is
replayed (disk.py) and, after every prefix of it, the disk a power cut would leave is built under
three models of what survives, booted the way the box boots and checked (checks.py). A mutation test
then replays each record as if one fsync call site had never been written, and says which removals
a check notices: one that none notices is either not needed, or a check is missing.

`humus soak --power-cuts` runs it and prints the figures; tests/test_crash.py runs it in CI.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from .explore import Checker, explore, replay_matches, sites
from .scenarios import SCENARIOS, Bench
from .unneeded import NOT_NEEDED

__all__ = ["SCENARIOS", "run_power_cuts", "summary"]


def run_power_cuts(names: list[str] | None = None, mutations: bool = True,
                   progress: Callable[[str], None] = lambda s: None) -> dict:
    """Record, replay, boot and check every scenario (and, with `mutations`, every fsync site)."""
    t0 = time.monotonic()
    shm = Path("/dev/shm")
    workdir = Path(tempfile.mkdtemp(prefix="humus-cuts-", dir=shm if shm.is_dir() else None))
    try:
        bench, checker = Bench(workdir), Checker(workdir)
        runs, baselines, report = [], {}, {"scenarios": [], "mutations": []}
        for name in names or list(SCENARIOS):
            run = SCENARIOS[name](bench)
            runs.append(run)
            base = baselines[name] = explore(run, checker)
            report["scenarios"].append({
                "name": name, "about": run.about, "ops": len(run.ops),
                "fsyncs": sum(op.kind.startswith("fsync") for op in run.ops),
                "states": base.states, "distinct": base.distinct, "boots_verified": base.verified,
                "failing": base.failing, "examples": base.examples, "replay_differs": replay_matches(run)})
            progress(f"{name}: {len(run.ops)} ops, {base.states} states ({base.distinct} distinct), "
                     f"{base.verified} boot a verified release, {base.failing} failing")
        if mutations:
            for site, per in sorted(sites(runs).items()):
                report["mutations"].append(_mutate(site, per, runs, baselines, checker))
                progress(f"without {site}: {'detected' if report['mutations'][-1]['detected'] else 'not detected'}")
        report["checks"] = len(checker.cache)
        report["check_seconds"] = round(checker.seconds, 1)
        report["seconds"] = round(time.monotonic() - t0, 1)
        report["unexplained"] = [m["site"] for m in report["mutations"] if not m["explained"]]
        report["ok"] = not report["unexplained"] and all(
            not s["failing"] and not s["replay_differs"] for s in report["scenarios"])
        return report
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _mutate(site: str, per: dict, runs: list, baselines: dict, checker: Checker) -> dict:
    states = failing = differing = 0
    example = difference = None
    for run in runs:
        if run.name not in per:
            continue
        ex = explore(run, checker, drop=site, baseline=baselines[run.name], examples=1)
        states, failing, differing = states + ex.states, failing + ex.failing, differing + ex.differing
        example = example or (ex.examples[0] if ex.examples else None)
        difference = difference or ex.difference
    judged = NOT_NEEDED.get(site)
    if failing:
        why = example + (" -- BUT listed as not needed (firmware/crash/unneeded.py): look again" if judged else "")
    else:
        seen = (f"{differing} crash states change, all still pass (first: {difference})" if differing
                else "no crash state changes without it: a later fsync covers it")
        why = f"{seen}. " + (f"Not needed: {judged}" if judged else
                             "UNEXPLAINED: not needed, or a check is missing (firmware/crash/unneeded.py)")
    return {"site": site, "occurrences": sum(per.values()), "scenarios": sorted(per), "states": states,
            "failing": failing, "differing": differing, "detected": bool(failing), "why": why,
            "explained": bool(failing) != bool(judged)}


def summary(report: dict) -> str:
    lines = [f"humus soak --power-cuts: {len(report['scenarios'])} scenarios, {report['checks']} distinct "
             f"disks booted, {report['seconds']:.0f} s; models: strict, writeback, torn"]
    lines.append(f"  {'scenario':14s} {'ops':>5s} {'states':>7s} {'distinct':>8s} {'verified':>8s} {'failing':>7s}")
    for s in report["scenarios"]:
        lines.append(f"  {s['name']:14s} {s['ops']:5d} {s['states']:7d} {s['distinct']:8d} "
                     f"{s['boots_verified']:8d} {s['failing']:7d}"
                     + ("  REPLAY DIFFERS: " + "; ".join(s["replay_differs"][:2]) if s["replay_differs"] else ""))
        lines += [f"      {e}" for e in s["examples"]]
    if report["mutations"]:
        lines.append("  mutation test: each fsync call site left out in turn")
        for m in report["mutations"]:
            lines.append(f"    {'DETECTED' if m['detected'] else 'not detected':12s} {m['site']} "
                         f"(x{m['occurrences']} in {', '.join(m['scenarios'])}; {m['failing']}/{m['states']} "
                         f"states fail)")
            lines.append(f"        {m['why']}")
    lines.append("  verdict: " + ("every cut boots a verified release, every check passes, every fsync "
                                  "is needed or explained" if report["ok"] else "NOT OK: see above"))
    return "\n".join(lines)
