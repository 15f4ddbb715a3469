"""Decay sidecars: a footage folder says how its files' decay is known.

A ``footage.toml`` or a ``decay.csv`` in any folder of the footage (or above the folder named on the
command line) holds rules for the files below it::

    labeller = "grade-folder"        # optional: every file below, unless a rule below says otherwise

    [[files]]
    path = "heap/day-0*.jpg"         # a file, a glob (* also crosses folders) or a folder, relative to here
    decay = 0.25                     # a decay value 0..1, or
    time = 2024-05-01T08:00:00       # when it was captured (a TOML date-time or date, or an ISO string), or
    labeller = "banana-stage"        # a named labeller (export/labellers.py)
    series = "heap-a"                # optional: the series its time is placed in (default: its folder)

``decay.csv`` says the same as a table: a header row naming columns among path, decay, time,
labeller, series (path required), then one rule a row; an empty cell says nothing; lines starting
with # are comments.

Rules apply in order, a deeper sidecar's after a shallower one's, and the last rule that matches a
file wins, separately for its decay (decay / time / labeller) and its series, as in .gitattributes.
Everything is checked when read: unknown keys or columns, values out of range, unparseable dates and
unknown labellers are refused, naming the file, the line and the key; a rule that matches no footage
file is refused too (usually a typo).

Footage folders that cannot carry a sidecar (the shipped data set is read-only) are recognised by the
first line of their README.md and read the sidecar shipped for them in export/sidecars/ (KNOWN).
"""
from __future__ import annotations

import csv
import difflib
import fnmatch
import io
import math
import os
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import NoReturn

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .footage import FootageError
from .labellers import LABELLERS

NAMES = ("footage.toml", "decay.csv")
RULE_KEYS = ("path", "decay", "time", "labeller", "series")
MAX_BYTES = 16 * 2**20
BUILTIN = Path(__file__).resolve().parent / "sidecars"
# README first line -> the sidecar that folder would carry if it could. ../shared/data/decay is read-only and
# must keep its labels (a training run that resumes rebuilds an identical cache), so it is recognised here.
KNOWN = {"# Decay imagery: real photographs of organic matter breaking down": BUILTIN / "shared-decay.toml"}
_TOML_AT = re.compile(r"\(at line (\d+), column \d+\)")
_FILES_HEADER = re.compile(r"^\s*\[\[\s*(files|\"files\"|'files')\s*\]\]")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class SidecarError(FootageError):
    """A sidecar that cannot be read or says something impossible; the message names file, line and key."""


@dataclass(frozen=True)
class Rule:
    """One rule of a sidecar: which files (``pattern``, relative to the sidecar's folder) and what it says."""

    where: str                     # "<file> line <n>", for messages
    pattern: str                   # "." = every file below
    decay: float | None = None
    time: datetime | None = None
    labeller: str | None = None
    series: str | None = None

    @property
    def labels(self) -> bool:      # says where the decay comes from (as opposed to only the series)
        return self.decay is not None or self.time is not None or self.labeller is not None


@dataclass(frozen=True)
class Sidecar:
    file: Path                     # the file read (for a built-in one, the one in export/sidecars/)
    folder: Path                   # what its patterns are relative to
    rules: tuple[Rule, ...]
    builtin: bool = False


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _fail(where: str, key: str, why: str) -> NoReturn:
    raise SidecarError(f"{where}, key '{key}': {why}" if key else f"{where}: {why}")


def _pattern(v, where: str, key: str) -> str:
    if not isinstance(v, str) or not v.strip():
        _fail(where, key, "must be a file, glob or folder name, relative to the sidecar's folder")
    if "\x00" in v or "\\" in v:
        _fail(where, key, "must not hold NUL or backslashes (use / between folders)")
    parts = [p for p in v.strip().split("/") if p not in ("", ".")]
    if v.strip().startswith("/") or ".." in parts:
        _fail(where, key, f"{v!r} must lie below the sidecar's folder (no leading / or ..)")
    return "/".join(parts) or "."


def _decay(given, where: str, key: str) -> float:
    v = float(given) if isinstance(given, str) and _DECIMAL.match(given.strip()) else given
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        _fail(where, key, f"{given!r} is not a number")
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        _fail(where, key, f"{given!r} is out of range 0..1 (0 fresh, 1 fully decayed)")
    return float(v)


def _time(v, where: str, key: str) -> datetime:
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
        except ValueError:
            _fail(where, key, f"{v!r} is not a date or date-time (e.g. 2024-05-01 or 2024-05-01T08:00:00)")
    if isinstance(v, datetime):
        return v
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day)
    _fail(where, key, f"{v!r} is not a date or date-time" + (" (a time of day alone has no date)"
                                                                 if isinstance(v, time) else ""))


def _rule(table: dict, where_of) -> Rule:
    """A rule from a {key: value} table; ``where_of(key)`` is "<file> line <n>" of that key."""
    for k in table:
        if k not in RULE_KEYS:
            _fail(where_of(k), k, "unknown key" + _suggest(k, RULE_KEYS) + f"; keys: {', '.join(RULE_KEYS)}")
    if "path" not in table:
        _fail(where_of(None), "path", "missing: which file, glob or folder the rule is about")
    said = [k for k in ("decay", "time", "labeller") if k in table]
    if len(said) > 1:
        _fail(where_of(said[1]), said[1], f"give one of decay, time or labeller, not {' and '.join(said)}")
    if not said and "series" not in table:
        _fail(where_of("path"), "path", "the rule says nothing: give decay, time, labeller or series")
    out = {"pattern": _pattern(table["path"], where_of("path"), "path")}
    if "decay" in table:
        out["decay"] = _decay(table["decay"], where_of("decay"), "decay")
    if "time" in table:
        out["time"] = _time(table["time"], where_of("time"), "time")
    if "labeller" in table:
        name = table["labeller"]
        if not isinstance(name, str) or name not in LABELLERS:
            _fail(where_of("labeller"), "labeller", f"unknown labeller {name!r}{_suggest(name, LABELLERS)}; "
                                                    f"known: {', '.join(LABELLERS)}")
        out["labeller"] = name
    if "series" in table:
        s = table["series"]
        if not isinstance(s, str) or not s.strip() or len(s) > 200 or not s.isprintable():
            _fail(where_of("series"), "series", "must be a name (printable, at most 200 characters)")
        out["series"] = s.strip()
    return Rule(where=where_of(None), **out)


def _lines_of_keys(text: str):
    """where_of(table_index or None, key) -> the line a key sits on (best effort: tomllib keeps no positions)."""
    lines = text.split("\n")
    heads = [i for i, line in enumerate(lines) if _FILES_HEADER.match(line)]

    def line(index, key):
        lo = 0 if index is None else (heads[index] if index < len(heads) else 0)
        hi = (heads[0] if heads else len(lines)) if index is None else \
            next((h for h in heads if h > lo), len(lines))
        if key is not None:
            pat = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
            for i in range(lo, hi):
                if pat.match(lines[i]):
                    return i + 1
        return lo + 1
    return line


def parse_toml(text: str, name: str) -> list[Rule]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = _TOML_AT.search(str(e))
        raise SidecarError(f"{name} line {m.group(1) if m else text.count(chr(10)) + 1}: "
                           f"not valid TOML ({_TOML_AT.sub('', str(e)).strip()})") from None
    except RecursionError:
        raise SidecarError(f"{name}: not valid TOML (nested too deeply)") from None
    line = _lines_of_keys(text)
    for k in doc:
        if k not in ("labeller", "files"):
            _fail(f"{name} line {line(None, k)}", k, "unknown key" + _suggest(k, ("labeller", "files")) +
                  "; a footage.toml holds `labeller` and [[files]] tables")
    rules = []
    if "labeller" in doc:
        rules.append(_rule({"path": ".", "labeller": doc["labeller"]},
                           lambda k: f"{name} line {line(None, 'labeller')}"))
    files = doc.get("files", [])
    if not isinstance(files, list) or not all(isinstance(t, dict) for t in files):
        _fail(f"{name} line {line(None, 'files')}", "files", "must be [[files]] tables")
    for i, table in enumerate(files):
        rules.append(_rule(table, lambda k, i=i: f"{name} line {line(i, k)}"))
    return rules


def parse_csv(text: str, name: str) -> list[Rule]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header, rules = None, []
    try:
        for row in reader:
            where = f"{name} line {reader.line_num}"
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if header is None:
                for c in cells:
                    if c not in RULE_KEYS:
                        _fail(where, c, "unknown column" + _suggest(c, RULE_KEYS) + f"; columns: {', '.join(RULE_KEYS)}")
                if len(set(cells)) < len(cells) or "path" not in cells:
                    _fail(where, "", f"the header must name each column once, path among them ({', '.join(RULE_KEYS)})")
                header = cells
                continue
            if len(cells) > len(header):
                _fail(where, "", f"{len(cells)} cells, but the header names {len(header)} columns")
            rules.append(_rule({k: v for k, v in zip(header, cells) if v}, lambda k, where=where: where))
    except csv.Error as e:
        raise SidecarError(f"{name} line {reader.line_num}: not valid CSV ({e})") from None
    if header is None:
        raise SidecarError(f"{name} line 1: no header row (path, decay, time, labeller, series)")
    return rules


def parse(data: bytes, name: str) -> list[Rule]:
    """A sidecar's rules from its bytes; ``name`` (its path) decides the format and names it in errors."""
    if len(data) > MAX_BYTES:
        raise SidecarError(f"{name}: {len(data)} bytes, more than a sidecar may hold ({MAX_BYTES})")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise SidecarError(f"{name} line {line}: not UTF-8 text") from None
    return parse_csv(text, name) if name.endswith(".csv") else parse_toml(text, name)


def _load(folder: Path) -> Sidecar | None:
    """The sidecar of one folder: its own file, or the shipped one for a known data set, or none."""
    found = [folder / n for n in NAMES if (folder / n).is_file()]
    if len(found) > 1:
        raise SidecarError(f"{folder}: both footage.toml and decay.csv; keep one")
    if found:
        try:
            data = found[0].read_bytes()
        except OSError as e:
            raise SidecarError(f"{found[0]}: cannot read ({e})") from e
        return Sidecar(found[0], folder, tuple(parse(data, str(found[0]))))
    try:
        with open(folder / "README.md", "rb") as f:
            first = f.readline(200).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if first in KNOWN:
        shipped = KNOWN[first]
        return Sidecar(shipped, folder, tuple(parse(shipped.read_bytes(), str(shipped))), builtin=True)
    return None


def find(base: Path, folders) -> list[Sidecar]:
    """The sidecars that apply below ``base``, shallowest first: in ``base``, in the folders above it (so a
    subfolder named alone is labelled as when its parent is), and in ``folders`` (those holding footage)
    and the folders between them and ``base``."""
    base = Path(os.path.abspath(base))
    look = {base, *base.parents}
    for d in folders:
        d = Path(os.path.abspath(d))
        look.update(p for p in (d, *d.parents) if p == base or base in p.parents)
    found = (_load(d) for d in sorted(look, key=lambda p: (len(p.parts), str(p))))
    return [s for s in found if s is not None]


def matches(pattern: str, rel: str) -> bool:
    """A file (``rel``: its posix path relative to the sidecar's folder) matches the file, the folder holding it,
    or a glob over either."""
    if pattern == ".":
        return True
    parts = rel.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:i]), pattern) for i in range(len(parts), 0, -1))


class Resolver:
    """Which rules decide each file, remembering which rules were used."""

    def __init__(self, sidecars: list[Sidecar]):
        self.sidecars = sidecars
        self.used: set[tuple[int, int]] = set()
        # Literal patterns (most of a long decay.csv) are looked up, not matched one by one.
        self._literal = [{} for _ in sidecars]
        self._globs = [[] for _ in sidecars]
        for s, car in enumerate(sidecars):
            for r, rule in enumerate(car.rules):
                if any(c in rule.pattern for c in "*?[") or rule.pattern == ".":
                    self._globs[s].append(r)
                else:
                    self._literal[s].setdefault(rule.pattern, []).append(r)

    def of(self, path: Path) -> tuple[Rule | None, Rule | None]:
        """(the rule that says where the decay comes from, the rule that names the series) for one file."""
        path = Path(os.path.abspath(path))
        label = series = None
        for s, car in enumerate(self.sidecars):
            if car.folder not in path.parents:
                continue
            rel = path.relative_to(car.folder).as_posix()
            parts = rel.split("/")
            hits = {r for i in range(1, len(parts) + 1) for r in self._literal[s].get("/".join(parts[:i]), ())}
            hits.update(r for r in self._globs[s] if matches(car.rules[r].pattern, rel))
            for r in sorted(hits):
                self.used.add((s, r))
                rule = car.rules[r]
                label = rule if rule.labels else label
                series = rule if rule.series is not None else series
        return label, series

    def check_used(self, inside: Path) -> None:
        """Every rule of a sidecar at or below ``inside`` (not a built-in one) matched some footage file."""
        inside = Path(os.path.abspath(inside))
        for s, car in enumerate(self.sidecars):
            if car.builtin or not (car.folder == inside or inside in car.folder.parents):
                continue
            for r, rule in enumerate(car.rules):
                if (s, r) not in self.used:
                    raise SidecarError(f"{rule.where}, key 'path': {rule.pattern!r} matches no footage file "
                                       f"below {car.folder}")
