"""Named labellers: decay read from the names of a known data set's files.

A labeller is chosen in a sidecar (`labeller = "banana-stage"`, export/sidecar.py), never guessed from
a file name: a studio's compost heap in a folder that happens to be called ``grade3`` is labelled by
its capture times, not as a tomato grade. The shipped data set (../shared/data/decay) names its
labellers in the built-in sidecar export/sidecars/shared-decay.toml.

Each labeller is a pure function of the file's path, its path relative to the footage root (split
groups are named from the root down) and the names of the folders beside the file's folder; it
returns (decay, split group or None = the file's own) or raises LabelError saying what it expects.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath
from typing import Callable

# psolymos/bananas: <banana>_<F fridge | B room>_<date>_<time>_<stage>.jpg, stage U(nripe) R(ipe) V(ery ripe) O(ver).
BANANA_STAGE = {"U": 0.0, "R": 1.0 / 3.0, "V": 2.0 / 3.0, "O": 1.0}
_BANANA_RE = re.compile(r"^(?P<id>[^_]+)_[FB]_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}_(?P<stage>[URVO])$")
# FGrade tomatoes: gradeN folders, 0 fresh .. 9 rotten (days in storage).
_GRADE_RE = re.compile(r"^grade(\d{1,4})$", re.IGNORECASE)


class LabelError(ValueError):
    """A file the chosen labeller cannot read; the message says what it expects."""


def banana_stage(path: PurePath, rel: PurePosixPath, siblings: frozenset[str]) -> tuple[float, str]:
    """The stage letter; one banana (its ID, in its folder) is one split group, so the ~20 photographs of
    one banana never straddle the split."""
    m = _BANANA_RE.match(path.stem)
    if not m:
        raise LabelError("expects names like <banana>_<F|B>_<YYYY-MM-DD>_<HH-MM>_<U|R|V|O>, e.g. 11_F_2020-05-28_18-20_U")
    return BANANA_STAGE[m.group("stage")], f"{rel.parent.as_posix()}/{m.group('id')}"


def grade_folder(path: PurePath, rel: PurePosixPath, siblings: frozenset[str]) -> tuple[float, None]:
    """N / the highest grade among the gradeN folders beside this one (grade 0 alone: 0)."""
    g = _GRADE_RE.match(path.parent.name)
    if not g:
        raise LabelError("expects the file in a folder named gradeN (N = 0, 1, 2 ...)")
    grades = [int(m.group(1)) for m in map(_GRADE_RE.match, siblings) if m]
    top = max(grades, default=0)
    return (int(g.group(1)) / top if top > 0 else 0.0), None


@dataclass(frozen=True)
class Labeller:
    name: str
    label: Callable[[PurePath, PurePosixPath, frozenset], tuple[float, str | None]]
    needs_siblings: bool  # list the folders beside the file's folder (the one bit of I/O, done by the caller)


LABELLERS = {lab.name: lab for lab in (Labeller("banana-stage", banana_stage, False),
                                        Labeller("grade-folder", grade_folder, True))}
