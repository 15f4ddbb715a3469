"""Every prefix of a record, under every model of what survives: the disks a power cut leaves, each
booted and checked once (identical disks are checked once, by hash), and the mutation test that
replays a record as if one fsync call site had never been written."""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .checks import Verdict, boot_and_check
from .disk import MODELS, SimDisk, differences, tree_hash, write_tree
from .record import FSYNCS
from .scenarios import Run


class Checker:
    """Boots each distinct (disk, expectation) once, in a scratch folder."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.cache: dict[tuple, Verdict] = {}
        self.seconds = 0.0

    def verdict(self, run: Run, k: int, tree: dict, digest: str) -> Verdict:
        expect = run.expect_at(k)
        key = (digest, expect, run.name if run.retry else None)
        if key not in self.cache:
            t0 = time.monotonic()
            root = Path(tempfile.mkdtemp(prefix="cut-", dir=self.scratch))
            try:
                write_tree(tree, root)
                self.cache[key] = boot_and_check(root, expect, run.retry)
            finally:
                shutil.rmtree(root, ignore_errors=True)
            self.seconds += time.monotonic() - t0
        return self.cache[key]


@dataclass
class Exploration:
    states: int = 0
    verified: int = 0
    failing: int = 0
    digests: dict = field(default_factory=dict)          # (k, model) -> disk hash
    examples: list[str] = field(default_factory=list)    # the first few failing states
    differing: int = 0                                   # mutation: states unlike the baseline's
    difference: str | None = None                        # mutation: the first such, described

    @property
    def distinct(self) -> int:
        return len(set(self.digests.values()))


def where(run: Run, k: int, model: str) -> str:
    last = run.ops[k - 1].describe() if k else "before the first operation"
    return f"{run.name}: cut after op {k}/{len(run.ops)} ({last}), {model}"


def explore(run: Run, checker: Checker, drop: str | None = None, baseline: Exploration | None = None,
            examples: int = 3) -> Exploration:
    """Check the disk after every prefix of `run.ops` under every model; with `drop`, as if the fsyncs
    of that call site did not exist (then only states from its first occurrence on can differ)."""
    out = Exploration()
    disk = SimDisk(run.initial)
    plain = SimDisk(run.initial) if drop else None         # in step, to describe what differs
    start = 1 + next(i for i, op in enumerate(run.ops) if op.kind in FSYNCS and op.site == drop) if drop else 0
    for k in range(len(run.ops) + 1):
        for model in MODELS if k >= start else ():
            tree = disk.view(model)
            digest = tree_hash(tree)
            out.digests[k, model] = digest
            out.states += 1
            v = checker.verdict(run, k, tree, digest)
            out.verified += v.boots_verified
            # a mutant's disk like the baseline's has the baseline's verdict: only new disks count
            new = baseline is None or baseline.digests.get((k, model)) != digest
            if v.problems and new:
                out.failing += 1
                if len(out.examples) < examples:
                    out.examples.append(f"{where(run, k, model)}: {'; '.join(v.problems[:2])}")
            if baseline is not None and new:
                out.differing += 1
                if out.difference is None:
                    out.difference = f"{where(run, k, model)}: " + "; ".join(
                        differences(plain.view(model), tree, limit=2))
        if k < len(run.ops):
            disk.apply(run.ops[k], drop)
            if plain is not None:
                plain.apply(run.ops[k])
    return out


def replay_matches(run: Run) -> list[str]:
    """The whole record replayed onto the initial disk must give the real final disk, byte for byte
    (modes, symlinks and hard links too): else something wrote around the seam."""
    disk = SimDisk(run.initial)
    for op in run.ops:
        disk.apply(op)
    return differences(disk.view(None), run.final, limit=10)


def sites(runs: list[Run]) -> dict[str, dict[str, int]]:
    """fsync call site -> {scenario: occurrences}."""
    out: dict[str, dict[str, int]] = {}
    for run in runs:
        for op in run.ops:
            if op.kind in FSYNCS:
                per = out.setdefault(op.site, {})
                per[run.name] = per.get(run.name, 0) + 1
    return out
