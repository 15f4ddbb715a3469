"""Where each footage file's decay comes from, in this order:

1. a sidecar rule (export/sidecar.py): a decay value, a named labeller, or a capture time;
2. inside a clip (video, animated time-lapse): the frame's time position;
3. a still's capture time: EXIF DateTimeOriginal, else a date-time in its file name, else a plain
   number sequence in its name (img_001, img_002 ...);
4. the file's modification time, with a warning (copying files resets it).

Times become decay per *series*: 0 at its first capture, 1 at its last. A series is the files of one
folder (one shoot of one heap, one fruit), or the files a sidecar names with ``series = "..."``;
stills and clips of one folder are two series. A series takes the best clock all its stills have
(capture times mix: a sidecar time, EXIF or a name; else sequence numbers; else modification times),
so one photo without EXIF does not put the rest on another scale. A series of one image carries no
decay (NaN: trained as unknown). A time-lapse split over several clip files is one series when every
clip has a start (the container's recorded creation time, or a sidecar time): each runs until the
next starts, so decay does not restart at 0 in each file. Files with a sidecar decay or a labeller
are in no series.

`gather` does the I/O (sidecars, headers, file times) and `decide` is the pure decision.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import clocks
from .footage import FootageError
from .labellers import LABELLERS, LabelError
from .sidecar import Resolver, SidecarError, find


@dataclass(frozen=True)
class Fact:
    """What is known about one file before deciding its decay (times in wall-clock seconds)."""

    path: Path
    rel: PurePosixPath             # relative to the footage root: names split groups and folder series
    clip: bool
    series: str                    # folder path, or "series <name>" from a sidecar
    rule: str = ""                 # "<sidecar> line <n>" of the rule that gave decay, time or labeller
    decay: float | None = None     # from a sidecar
    labeller: str | None = None
    siblings: frozenset = frozenset()
    when: float | None = None      # a sidecar time
    exif: float | None = None
    named: float | None = None     # a date-time in the file name
    number: int | None = None      # the last number in the file name
    mtime: float | None = None
    start: float | None = None     # a clip's recorded creation time
    length: float = 0.0            # a clip's length in seconds


@dataclass(frozen=True)
class Label:
    """A file's decay and where it came from (``how``: a word for the footage table)."""

    how: str
    decay: float | None = None     # stills: the value (None: unknown); clips: one value for every frame
    offset: float = 0.0            # clips without one value: decay = offset + span * time position in the clip
    span: float = 1.0
    group: str | None = None       # split group, where a labeller names one (one banana)

    def at(self, position: float) -> float:
        if self.decay is not None:
            return self.decay
        return min(max(self.offset + self.span * position, 0.0), 1.0)


def gather(files: list[Path], base: Path, clips: set[Path], is_folder: bool) -> list[Fact]:
    """Read what decides each file's decay: sidecars, then headers and file times only where needed."""
    resolver = Resolver(find(base, {p.parent for p in files}))
    rows, siblings = [], {}
    for p in files:
        label, named = resolver.of(p)
        rel = PurePosixPath(p.relative_to(base).as_posix())
        rows.append((p, rel, label, f"series {named.series}" if named else rel.parent.as_posix()))
    if is_folder:
        resolver.check_used(base)
    clip_count = defaultdict(int)
    for p, _, label, series in rows:
        clip_count[series] += p in clips and (label is None or label.time is not None)
    facts = []
    for p, rel, label, series in rows:
        f = {"path": p, "rel": rel, "clip": p in clips, "series": series}
        if label is not None:
            f.update(rule=label.where, decay=label.decay, labeller=label.labeller,
                     when=None if label.time is None else clocks.seconds(label.time))
            if label.labeller and LABELLERS[label.labeller].needs_siblings:
                up = p.parent.parent
                if up not in siblings:
                    siblings[up] = frozenset(q.name for q in up.iterdir() if q.is_dir())
                f["siblings"] = siblings[up]
        if f.get("decay") is not None or f.get("labeller"):
            facts.append(Fact(**f))
            continue
        if p in clips:
            if clip_count[series] > 1:       # one clip alone needs no start: its time position is its decay
                made, f["length"] = clocks.clip_clock(p)
                f["start"] = f["when"] if f.get("when") is not None else None if made is None else clocks.seconds(made)
        else:
            exif, named = clocks.exif_time(p), clocks.name_time(p.stem)
            f.update(exif=None if exif is None else clocks.seconds(exif),
                     named=None if named is None else clocks.seconds(named),
                     number=clocks.sequence_number(p.stem), mtime=os.stat(p).st_mtime)
        facts.append(Fact(**f))
    return facts


def _stills(name: str, members: list[Fact], labels: dict, notes: list) -> None:
    if len(members) == 1:
        labels[members[0].rel] = Label("none")
        notes.append(("warning", f"{name}: one image, no series to place it in: no decay (trained as unknown)"))
        return
    wall = [(f.when, "sidecar time") if f.when is not None else (f.exif, "EXIF") if f.exif is not None
            else (f.named, "file name") for f in members]
    if all(t is not None for t, _ in wall):
        values, hows = [t for t, _ in wall], [h for _, h in wall]
    elif any(f.when is not None for f in members):
        lacking = next(f for (t, _), f in zip(wall, members) if t is None)
        timed = next(f for f in members if f.when is not None)
        raise SidecarError(f"{timed.rule}: gives series '{name}' capture times, but {lacking.rel} has none "
                           f"(no EXIF, no date in its name): give it a time or a decay too")
    elif all(f.number is not None for f in members):
        values, hows = [float(f.number) for f in members], ["sequence"] * len(members)
    else:
        values, hows = [f.mtime for f in members], ["mtime"] * len(members)
        notes.append(("warning", f"{name}: {len(members)} images without a capture time (no EXIF, no date or number "
                                 f"in the name): decay from file modification times, which copying resets; a sidecar "
                                 f"can say better"))
    where = clocks.positions(values)
    if where is None:
        hows = ["none"] * len(members)
        notes.append(("warning", f"{name}: {len(members)} images all at one time: no decay (trained as unknown)"))
    for i, f in enumerate(members):
        labels[f.rel] = Label(hows[i], None if where is None else where[i])


def _clips(name: str, members: list[Fact], labels: dict, notes: list) -> None:
    spans = None
    if len(members) > 1:
        if all(f.start is not None for f in members):
            spans = clocks.chain([f.start for f in members], [f.length for f in members])
        if spans is None:
            notes.append(("note", f"{name}: {len(members)} clips without recorded start times: each is labelled by "
                                  f"its own time position (a sidecar `time` per clip chains them)"))
        else:
            notes.append(("note", f"{name}: {len(members)} clips chained by their start times into one time-lapse"))
    for i, f in enumerate(members):
        labels[f.rel] = Label("video time") if spans is None else Label("video time", None, *spans[i])


def decide(facts: list[Fact]) -> tuple[dict[PurePosixPath, Label], list[tuple[str, str]]]:
    """Each file's Label (by its path relative to the root), and notes for people, at most one per series:
    ("warning", text) where the decay is weak or missing, ("note", text) otherwise."""
    labels, notes, series = {}, [], defaultdict(list)
    for f in facts:
        if f.decay is not None:
            labels[f.rel] = Label("sidecar", f.decay)
        elif f.labeller is not None:
            try:
                decay, group = LABELLERS[f.labeller].label(f.path, f.rel, f.siblings)
            except LabelError as e:
                raise SidecarError(f"{f.path}: labeller '{f.labeller}' (chosen in {f.rule}) {e}") from None
            labels[f.rel] = Label(f"labeller {f.labeller}", decay, group=group)
        else:
            series[(f.clip, f.series)].append(f)
    for (clip, name), members in sorted(series.items()):
        (_clips if clip else _stills)(name if name != "." else "(footage root)", members, labels, notes)
    return labels, notes


def plan(files: list[Path], base: Path, clips: set[Path], is_folder: bool = True):
    """gather + decide for the footage files under one root; raises FootageError naming file and line."""
    try:
        return decide(gather(files, base, clips, is_folder))
    except OSError as e:
        raise FootageError(f"{getattr(e, 'filename', None) or base}: cannot read ({e.strerror or e})") from e
