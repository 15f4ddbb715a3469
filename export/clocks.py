"""When footage was captured: the clocks decay is read from when no sidecar or labeller gives it.

Readers (I/O): a still's EXIF DateTimeOriginal, a clip's recorded creation time and length, a file's
modification time. Parsers (pure): an EXIF date-time string, a date-time in a file name
(``2022-03-01_10-00``, ``20220301_100000``, ``IMG_20220301_...``), a plain number sequence
(``img_001``). And the two decisions: a series' positions between its first and last capture, and
how the clips of one time-lapse split over several files lie end to end.

Times are seconds on a wall clock: naive date-times (EXIF, file names, sidecar times without an
offset) count as UTC, so they compare with each other; a series should take its times from one
camera's clock.
"""
from __future__ import annotations

import math
import re
import statistics
from datetime import date, datetime, timezone
from pathlib import Path

EXIF_IFD, DATETIME_ORIGINAL = 0x8769, 36867
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EXIF_RE = re.compile(r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
# A date (19xx/20xx), optionally a time; separators as cameras and phones write them. Digits on
# either side would make it part of a longer number, so it is not a date.
_NAME_RE = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d{2})(?P<s>[-_.]?)(?P<m>\d{2})(?P=s)(?P<d>\d{2})"
    r"(?:[T_ \-.]?(?P<H>\d{2})(?P<t>[-_.:h]?)(?P<M>\d{2})(?:(?P=t)(?P<S>\d{2})(?:[.,]?\d{1,6})?)?)?(?!\d)")
_NUMBER_RE = re.compile(r"(\d{1,12})\D*$")


def seconds(when: datetime | date) -> float:
    """Seconds since 1970 on the wall clock (naive = UTC); a date is its midnight."""
    if not isinstance(when, datetime):
        when = datetime(when.year, when.month, when.day)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when - _EPOCH).total_seconds()


def _datetime(*parts) -> datetime | None:
    try:
        return datetime(*parts)
    except ValueError:          # 2022-13-45: digits that look like a date but are not one
        return None


def parse_exif_time(value) -> datetime | None:
    """EXIF's ``YYYY:MM:DD HH:MM:SS`` (cameras that never set the clock write zeros: no time)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    m = _EXIF_RE.match(value) if isinstance(value, str) else None
    return _datetime(*map(int, m.groups())) if m else None


def name_time(stem: str) -> datetime | None:
    """The first date (and time, if one follows) in a file name."""
    for m in _NAME_RE.finditer(stem):
        hms = [int(m.group(k) or 0) for k in "HMS"]
        found = _datetime(int(m.group("y")), int(m.group("m")), int(m.group("d")), *hms)
        if found is None and m.group("H"):      # the date was real, what followed was not a time
            found = _datetime(int(m.group("y")), int(m.group("m")), int(m.group("d")))
        if found is not None:
            return found
    return None


def sequence_number(stem: str) -> int | None:
    """The last number in a file name: img_001 -> 1, heap 12 -> 12."""
    m = _NUMBER_RE.search(stem)
    return int(m.group(1)) if m else None


def exif_time(path: Path) -> datetime | None:
    """DateTimeOriginal from the Exif IFD (or, as some writers put it, the first IFD). An unreadable
    header is no time here; reading the pixels reports a broken file, naming it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            exif = im.getexif()
            return parse_exif_time(exif.get_ifd(EXIF_IFD).get(DATETIME_ORIGINAL) or exif.get(DATETIME_ORIGINAL))
    except Exception:  # noqa: BLE001 - any failure to read a header means "no recorded time"
        return None


def clip_clock(path: Path) -> tuple[datetime | None, float]:
    """A clip's recorded creation time (container or stream ``creation_time``; animated images have
    none) and its length in seconds (0 where unknown)."""
    from PIL import Image, ImageSequence

    from .footage import FootageError

    if path.suffix.lower() in {".webp", ".gif"}:
        try:
            with Image.open(path) as im:
                ms = sum(fr.info.get("duration", 0) or 0 for fr in ImageSequence.Iterator(im))
        except Exception as e:  # noqa: BLE001
            raise FootageError(f"{path}: cannot open image ({e})") from e
        return None, ms / 1000.0
    import av

    try:
        with av.open(str(path)) as c:
            st = c.streams.video[0]
            tags = {**dict(st.metadata), **dict(c.metadata)}
            length = float(st.duration * st.time_base) if st.duration else (c.duration or 0) / 1e6
    except Exception as e:  # noqa: BLE001
        raise FootageError(f"{path}: cannot read video header ({e})") from e
    try:
        made = datetime.fromisoformat(tags["creation_time"].replace("Z", "+00:00"))
    except (KeyError, ValueError, AttributeError):
        made = None
    return made, length if math.isfinite(length) and length > 0 else 0.0


def positions(values: list[float]) -> list[float] | None:
    """Each value's place between the first and the last, 0..1; None when they are all one time."""
    lo, hi = min(values), max(values)
    if not hi > lo:
        return None
    return [min(max((v - lo) / (hi - lo), 0.0), 1.0) for v in values]


def chain(starts: list[float], lengths: list[float]) -> list[tuple[float, float]] | None:
    """(offset, span) on the series' 0..1 for each clip of a time-lapse split over several files.

    A clip lasts until the next one starts (a time-lapse camera writes one file per stretch of
    capture, a video camera splits a long recording at a size limit); the last lasts its length at
    the median rate of wall-clock to clip seconds of the others (1 for ordinary video). None when
    they all start at once and take no time."""
    order = sorted(range(len(starts)), key=lambda i: (starts[i], i))
    spans = {a: starts[b] - starts[a] for a, b in zip(order, order[1:])}
    rates = [spans[i] / lengths[i] for i in order[:-1] if lengths[i] > 0]
    last = order[-1]
    if rates and lengths[last] > 0:
        spans[last] = lengths[last] * statistics.median(rates)
    else:
        spans[last] = statistics.median([spans[i] for i in order[:-1]]) if len(order) > 1 else 0.0
    total = starts[last] + spans[last] - starts[order[0]]
    if not (total > 0 and math.isfinite(total)):
        return None
    return [((starts[i] - starts[order[0]]) / total, spans[i] / total) for i in range(len(starts))]
