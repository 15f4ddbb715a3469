"""Issue 21: decay from time for any footage. The clocks (EXIF, names, sequences), the sidecar format
(strict, errors naming file, line and key; hostile sidecars from hypothesis), and the precedence
sidecar > clip time > capture time > modification time."""
from __future__ import annotations

import json
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from export import clocks
from export.decayplan import Fact, decide
from export.footage import FootageConfig, FootageError, ingest
from export.labellers import LABELLERS
from export.sidecar import RULE_KEYS, SidecarError, parse


# -- clocks -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stem, want", [
    ("2022-03-01_10-00", datetime(2022, 3, 1, 10, 0)),
    ("20220301_100000", datetime(2022, 3, 1, 10, 0, 0)),
    ("IMG_20220301_101530", datetime(2022, 3, 1, 10, 15, 30)),
    ("PXL_20220301_101530123", datetime(2022, 3, 1, 10, 15, 30)),
    ("heap 2022-03-01 07.45.10", datetime(2022, 3, 1, 7, 45, 10)),
    ("11_F_2020-05-28_18-20_U", datetime(2020, 5, 28, 18, 20)),
    ("day_2022-03-01", datetime(2022, 3, 1)),
    ("2022-03-01_99-99", datetime(2022, 3, 1)),          # a date followed by no real time
    ("img_001", None), ("20221399", None), ("120220301", None), ("scan_3020-01-01", None),
])
def test_a_date_time_in_a_file_name(stem, want):
    assert clocks.name_time(stem) == want


def test_sequences_and_exif_strings():
    assert [clocks.sequence_number(s) for s in ("img_001", "img_002", "heap 12 b", "cover")] == [1, 2, 12, None]
    assert clocks.parse_exif_time("2022:03:01 10:00:00") == datetime(2022, 3, 1, 10)
    assert clocks.parse_exif_time(b"2022:03:01 10:00:00\x00") == datetime(2022, 3, 1, 10)
    assert clocks.parse_exif_time("0000:00:00 00:00:00") is None            # a camera whose clock was never set
    assert clocks.parse_exif_time(None) is None and clocks.parse_exif_time(17) is None
    assert clocks.seconds(datetime(1970, 1, 2)) == 86400.0
    assert clocks.seconds(datetime(1970, 1, 2, 1, tzinfo=timezone.utc)) == 90000.0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"[A-Za-z_]{0,5}\d{4}[-_.]?\d{2}[-_.]?\d{2}[T_ .-]?\d{0,6}\w{0,4}"))
def test_hostile_file_names_give_a_time_or_none(stem):
    t, n = clocks.name_time(stem), clocks.sequence_number(stem)
    assert t is None or 1900 <= t.year < 2100
    assert n is None or 0 <= n < 10**12


def test_positions_and_a_time_lapse_split_over_files():
    assert clocks.positions([5.0, 1.0, 3.0]) == [1.0, 0.0, 0.5]
    assert clocks.positions([2.0, 2.0]) is None
    # Three time-lapse files, each 60 s long, written at 0 h, 10 h and 20 h: each covers 10 h of the day.
    h = 3600.0
    spans = clocks.chain([10 * h, 0.0, 20 * h], [60.0, 60.0, 60.0])
    assert np.allclose(spans, [(1 / 3, 1 / 3), (0.0, 1 / 3), (2 / 3, 1 / 3)])
    # Ordinary video split at a size limit: each file starts as the last one ends.
    assert np.allclose(clocks.chain([0.0, 100.0], [100.0, 50.0]), [(0.0, 100 / 150), (100 / 150, 50 / 150)])
    assert clocks.chain([5.0, 5.0], [0.0, 0.0]) is None


# -- the sidecar format -------------------------------------------------------------------------------

GOOD_TOML = """\
labeller = "grade-folder"

[[files]]
path = "heap/*.jpg"
time = 2024-05-01T08:00:00

[[files]]
path = "heap/odd.jpg"
decay = 0.25
series = "heap-a"
"""


def test_a_good_sidecar_in_both_formats():
    rules = parse(GOOD_TOML.encode(), "f/footage.toml")
    assert [(r.pattern, r.labeller, r.time, r.decay, r.series) for r in rules] == [
        (".", "grade-folder", None, None, None), ("heap/*.jpg", None, datetime(2024, 5, 1, 8), None, None),
        ("heap/odd.jpg", None, None, 0.25, "heap-a")]
    assert [r.where for r in rules] == ["f/footage.toml line 1", "f/footage.toml line 3", "f/footage.toml line 7"]
    csv = "\ufeffpath,decay,time\n# comment\nheap/a.jpg,0.5,\n\nheap/b.jpg,,2024-05-01 08:00\n./heap/,1,\n"
    rules = parse(csv.encode(), "f/decay.csv")
    assert [(r.pattern, r.decay, r.time, r.where) for r in rules] == [
        ("heap/a.jpg", 0.5, None, "f/decay.csv line 3"), ("heap/b.jpg", None, datetime(2024, 5, 1, 8), "f/decay.csv line 5"),
        ("heap", 1.0, None, "f/decay.csv line 6")]


@pytest.mark.parametrize("text, where, key", [
    ('labeller = "banana-stage"\ncolour = 3\n', "line 2", "colour"),
    ('[[files]]\npath = "a"\ndecay = 1.5\n', "line 3", "decay"),
    ('[[files]]\npath = "a"\ndecay = nan\n', "line 3", "decay"),
    ('[[files]]\npath = "a"\ndecay = true\n', "line 3", "decay"),
    ('[[files]]\npath = "a"\ndecay = 0\n\n[[files]]\npath = "b"\ntime = "last tuesday"\n', "line 7", "time"),
    ('[[files]]\npath = "a"\ntime = 07:30:00\n', "line 3", "time"),
    ('[[files]]\npath = "a"\nlabeller = "bananas"\n', "line 3", "labeller"),
    ('[[files]]\npath = "a"\ndecay = 0.5\nlabeller = "grade-folder"\n', "line 4", "labeller"),
    ('[[files]]\npath = "../elsewhere"\ndecay = 0.5\n', "line 2", "path"),
    ('[[files]]\npath = "a"\n', "line 2", "path"),
    ('[[files]]\ndecay = 0.5\n', "line 1", "path"),
    ('[[files]]\npath = "a"\ndecai = 0.5\n', "line 3", "decai"),
    ('[[files]]\npath = "a"\ndecay = 0.5\nseries = ""\n', "line 4", "series"),
    ("files = 3\n", "line 1", "files"),
])
def test_a_bad_footage_toml_names_the_file_line_and_key(text, where, key):
    with pytest.raises(SidecarError, match=rf"^shoot/footage.toml {where}, key '{key}': "):
        parse(text.encode(), "shoot/footage.toml")


@pytest.mark.parametrize("data, name, message", [
    (b'[[files]]\npath = "a"\ndecay = = 1\n', "s/footage.toml", r"^s/footage.toml line 3: not valid TOML"),
    (b'[[files]]\npath = "\xff"\n', "s/footage.toml", r"^s/footage.toml line 2: not UTF-8"),
    (b"path,decai\na,1\n", "s/decay.csv", r"did you mean 'decay'"),
    (b"path,decay\na,0.5\nb,2\n", "s/decay.csv", r"^s/decay.csv line 3, key 'decay': '2' is out of range"),
    (b"path,decay\na,0.5,x\n", "s/decay.csv", r"^s/decay.csv line 2: 3 cells"),
    (b"", "s/decay.csv", r"^s/decay.csv line 1: no header"),
])
def test_bad_toml_and_csv_name_the_line(data, name, message):
    with pytest.raises(SidecarError, match=message):
        parse(data, name)


def _valid(rule) -> bool:
    said = [v for v in (rule.decay, rule.time, rule.labeller) if v is not None]
    return (len(said) <= 1 and (said or rule.series) and not rule.pattern.startswith("/")
            and ".." not in rule.pattern.split("/") and "\\" not in rule.pattern
            and (rule.decay is None or (math.isfinite(rule.decay) and 0 <= rule.decay <= 1))
            and (rule.labeller is None or rule.labeller in LABELLERS)
            and (rule.time is None or isinstance(rule.time, datetime)))


def _refused_or_valid(data: bytes, name: str):
    try:
        rules = parse(data, name)
    except SidecarError as e:
        assert str(e).startswith(f"{name} line ") or str(e).startswith(f"{name}: "), str(e)
        assert re.search(r" line \d+", str(e)) or "nested too deeply" in str(e), str(e)
        return None
    assert all(_valid(r) for r in rules), rules
    return rules


HOSTILE = {   # per key: mostly plausible values, then the hostile ones
    "path": st.sampled_from(["a", "heap/*.jpg", ".", "a/b/", "./c", "../x", "/abs", "a\\b", "", " "]) | st.text(max_size=8),
    "decay": st.floats(allow_nan=True, allow_infinity=True) | st.integers(-3, 3) | st.booleans()
    | st.sampled_from(["0.5", "1e-3", "nan", "", "1_0"]),
    "time": st.datetimes(timezones=st.none() | st.just(timezone.utc)) | st.dates() | st.times()
    | st.sampled_from(["2024-05-01", "2024-05-01 08:00", "2024-13-01", "yesterday", "2024-05-01T08:00:00+02:00"])
    | st.integers(),
    "labeller": st.sampled_from([*LABELLERS, "bananas", "", "Grade-Folder"]) | st.integers(),
    "series": st.text(max_size=6) | st.integers(),
    "decai": st.integers(),
}
# A rule: a path, one thing said, and now and then a second thing (a series, or a clash, or a stray key).
RULE = st.builds(lambda path, said, extra: {"path": path, **said, **extra}, HOSTILE["path"],
                 st.one_of(*(st.fixed_dictionaries({k: HOSTILE[k]}) for k in ("decay", "time", "labeller", "series"))),
                 st.just({}) | st.one_of(*(st.fixed_dictionaries({k: HOSTILE[k]}) for k in ("series", "time", "decai"))))
TOP = st.none() | st.sampled_from(list(LABELLERS)) | HOSTILE["labeller"]


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, (int, list)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)   # a TOML basic string (or, with a raw DEL, invalid TOML)
    return v.isoformat()


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(RULE | st.dictionaries(st.sampled_from([*RULE_KEYS, "colour"]), HOSTILE["decay"], max_size=3),
                max_size=4),
       TOP, st.booleans())
def test_hostile_footage_toml_is_refused_naming_the_line_or_read_valid(tables, top, stray):
    text = ("" if top is None else f"labeller = {_toml_value(top)}\n") + ("size = 3\n" if stray else "")
    for t in tables:
        text += "\n[[files]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in t.items())
    rules = _refused_or_valid(text.encode("utf-8", "surrogatepass"), "studio/footage.toml")
    if rules is not None:
        assert not stray and len(rules) == len(tables) + (top is not None)
        for r, t in zip(rules[top is not None:], tables):
            assert r.decay is None if "decay" not in t else r.decay == float(t["decay"])


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.sampled_from([*RULE_KEYS, "", "decai"]), min_size=1, max_size=6),
       st.lists(st.lists(st.text(max_size=12) | st.sampled_from(["0.5", "1", "-0", "2", "nan", "inf", "1e-400",
                                                               "2024-05-01T08:00", "grade-folder", "a/*.jpg"]),
                         max_size=7), max_size=5))
def test_hostile_decay_csv_is_refused_naming_the_line_or_read_valid(header, rows):
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    _refused_or_valid(buf.getvalue().encode(), "studio/decay.csv")


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(max_size=300), st.sampled_from(["x/footage.toml", "x/decay.csv"]))
def test_random_bytes_as_a_sidecar(data, name):
    _refused_or_valid(data, name)


def test_a_deeply_nested_toml_is_refused():
    with pytest.raises(SidecarError, match="footage.toml"):
        parse(b"a = " + b"[" * 100_000, "x/footage.toml")


# -- precedence, series and warnings ------------------------------------------------------------------

def _still(path: Path, colour: int, exif: str | None = None, mtime: float | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.full((12, 12, 3), colour, np.uint8))
    ex = Image.Exif()
    if exif:
        ex.get_ifd(clocks.EXIF_IFD)[clocks.DATETIME_ORIGINAL] = exif
    img.save(path, exif=ex)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


CFG = FootageConfig(resolution=8, dedup_threshold=0)


def _labels(root, cfg=CFG) -> dict[str, tuple[float, str]]:
    fr = ingest([root], cfg)
    return {g: (d, h) for g, d, h in zip(fr.group, fr.decay, fr.how)}


def test_the_best_clock_every_still_of_a_series_has(tmp_path, caplog):
    # EXIF beats the number in the name; a date in the name beats the sequence.
    _still(tmp_path / "heap" / "img_001.jpg", 10, "2024:05:03 08:00:00")
    _still(tmp_path / "heap" / "img_002.jpg", 20, "2024:05:01 08:00:00")
    _still(tmp_path / "heap" / "img_003.jpg", 30, "2024:05:02 08:00:00")
    _still(tmp_path / "named" / "shot_2024-05-01_08-00.jpg", 10)
    _still(tmp_path / "named" / "shot_2024-05-05_08-00.jpg", 20)
    _still(tmp_path / "named" / "later_2024-05-03_08-00.jpg", 30, "2024:05:03 08:00:00")   # EXIF and name agree
    _still(tmp_path / "numbered" / "a_7.jpg", 10)
    _still(tmp_path / "numbered" / "a_3.jpg", 20)
    _still(tmp_path / "numbered" / "b_5.jpg", 30)
    _still(tmp_path / "loose" / "first.jpg", 10, mtime=1_000_000)
    _still(tmp_path / "loose" / "second.jpg", 20, mtime=1_000_100)
    _still(tmp_path / "loose" / "img_9.jpg", 30, "2024:05:01 08:00:00", mtime=1_000_200)  # one clock for all: mtime
    _still(tmp_path / "alone" / "only.jpg", 40)
    with caplog.at_level("WARNING"):
        got = _labels(tmp_path)
    assert got["heap/img_001.jpg"] == (1.0, "EXIF") and got["heap/img_002.jpg"] == (0.0, "EXIF")
    assert got["heap/img_003.jpg"] == (0.5, "EXIF")
    assert got["named/shot_2024-05-01_08-00.jpg"] == (0.0, "file name")
    assert got["named/later_2024-05-03_08-00.jpg"] == (0.5, "EXIF")
    assert got["named/shot_2024-05-05_08-00.jpg"] == (1.0, "file name")
    assert [got[f"numbered/{n}.jpg"] for n in ("a_3", "b_5", "a_7")] == [(0.0, "sequence"), (0.5, "sequence"),
                                                                        (1.0, "sequence")]
    assert [got[f"loose/{n}.jpg"] for n in ("first", "second", "img_9")] == [(0.0, "mtime"), (0.5, "mtime"),
                                                                             (1.0, "mtime")]
    assert math.isnan(got["alone/only.jpg"][0]) and got["alone/only.jpg"][1] == "none"
    warned = [r.getMessage() for r in caplog.records if "modification time" in r.getMessage()]
    assert len(warned) == 1 and "loose: 3 images" in warned[0]          # once for the series, not per image


def test_sidecars_win_later_rules_and_deeper_sidecars_override(tmp_path):
    for i, d in enumerate(("2024:05:01", "2024:05:02", "2024:05:03", "2024:05:04")):
        _still(tmp_path / "heap" / f"img_{i}.jpg", 10 * i + 5, f"{d} 08:00:00")
    (tmp_path / "footage.toml").write_text(
        '[[files]]\npath = "heap"\ndecay = 0.9\n\n[[files]]\npath = "heap/img_1.jpg"\ndecay = 0.1\n')
    got = _labels(tmp_path)
    assert got["heap/img_0.jpg"] == (pytest.approx(0.9), "sidecar") and got["heap/img_1.jpg"][0] == pytest.approx(0.1)
    # A sidecar deeper down wins over the one above; its times put the two files it names on a clock
    # with the others' EXIF.
    (tmp_path / "heap" / "decay.csv").write_text("path,time\nimg_2.jpg,2024-05-09 08:00\nimg_3.jpg,2024-05-01\n")
    got = _labels(tmp_path)
    assert got["heap/img_2.jpg"] == (1.0, "sidecar time") and got["heap/img_3.jpg"] == (0.0, "sidecar time")
    assert got["heap/img_1.jpg"][1] == "sidecar"
    # Naming the subfolder alone reads the sidecar above it.
    assert _labels(tmp_path / "heap")["img_0.jpg"][1] == "sidecar"


def test_series_named_in_a_sidecar(tmp_path):
    for i in range(3):
        _still(tmp_path / "shoot" / f"a_{i}.jpg", 10 + i, f"2024:05:0{1 + i} 08:00:00")
        _still(tmp_path / "shoot" / f"b_{i}.jpg", 100 + i, f"2024:06:0{1 + 2 * i} 08:00:00")
    got = _labels(tmp_path)
    assert got["shoot/a_2.jpg"][0] < 0.1 < got["shoot/b_0.jpg"][0]     # one folder, one series: a is all early
    (tmp_path / "footage.toml").write_text('[[files]]\npath = "shoot/a_*"\nseries = "a"\n'
                                           '[[files]]\npath = "shoot/b_*"\nseries = "b"\n')
    got = _labels(tmp_path)
    assert [got[f"shoot/a_{i}.jpg"][0] for i in range(3)] == [0.0, 0.5, 1.0]
    assert [got[f"shoot/b_{i}.jpg"][0] for i in range(3)] == [0.0, 0.5, 1.0]


def test_sidecar_mistakes_found_at_ingest_name_the_file_and_line(tmp_path):
    _still(tmp_path / "heap" / "a.jpg", 10)
    _still(tmp_path / "heap" / "b.jpg", 20)
    (tmp_path / "footage.toml").write_text('[[files]]\npath = "heap/a.jpg"\ndecay = 0.5\n\n'
                                           '[[files]]\npath = "haep/*.jpg"\ndecay = 0.5\n')
    with pytest.raises(SidecarError, match=r"footage.toml line 5, key 'path': 'haep/\*.jpg' matches no footage"):
        ingest([tmp_path], CFG)
    (tmp_path / "footage.toml").write_text('[[files]]\npath = "heap/a.jpg"\ntime = 2024-05-01\n')
    with pytest.raises(SidecarError, match=r"footage.toml line 1: gives series 'heap' capture times, but heap/b.jpg"):
        ingest([tmp_path], CFG)
    (tmp_path / "footage.toml").write_text('labeller = "banana-stage"\n')
    with pytest.raises(SidecarError, match=r"heap/a.jpg: labeller 'banana-stage' \(chosen in .*footage.toml line 1\) "
                                           r"expects names like"):
        ingest([tmp_path], CFG)
    (tmp_path / "decay.csv").write_text("path,decay\nheap,0.5\n")
    with pytest.raises(FootageError, match="both footage.toml and decay.csv"):
        ingest([tmp_path], CFG)


def test_grades_and_banana_stages_only_where_a_sidecar_names_them(tmp_path):
    for g in (0, 1, 2):
        for i in range(2):
            _still(tmp_path / "figs" / f"grade{g}" / f"{i}.png", 10 * g + i)
    got = _labels(tmp_path)
    assert {h for _, h in got.values()} == {"sequence"}        # a folder called grade2 is not a hidden label
    (tmp_path / "footage.toml").write_text('labeller = "grade-folder"\n')
    got = _labels(tmp_path)
    assert {g: d for g, (d, _) in got.items()} == {f"figs/grade{g}/{i}.png": g / 2 for g in (0, 1, 2) for i in (0, 1)}
    assert {h for _, h in got.values()} == {"labeller grade-folder"}


def test_decide_is_pure_over_facts():
    f = [Fact(Path(f"/r/s/{i}.jpg"), Path(f"s/{i}.jpg"), False, "s", exif=float(t)) for i, t in enumerate((30, 10, 20))]
    labels, notes = decide(f)
    assert [labels[x.rel].decay for x in f] == [1.0, 0.0, 0.5] and not notes


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(RULE, min_size=1, max_size=3), TOP)
def test_hostile_sidecars_at_ingest_are_refused_naming_the_file_or_label_within_range(tmp_path, tables, top):
    """Whatever a sidecar says, ingest either refuses it (a FootageError naming the sidecar, or the file a
    labeller cannot read) or labels every image with a decay in 0..1 or NaN."""
    root = tmp_path / "f"
    if not root.exists():
        for i, name in enumerate(("a/img_1.jpg", "a/img_2.jpg", "heap/x.jpg", "heap/y.jpg")):
            _still(root / name, 30 * i + 10, f"2024:05:0{i + 1} 08:00:00")
    text = ("" if top is None else f"labeller = {_toml_value(top)}\n")
    for t in tables:
        text += "\n[[files]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in t.items())
    (root / "footage.toml").write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        fr = ingest([root], CFG)
    except FootageError as e:
        assert "footage.toml" in str(e) and re.search(r"line \d+", str(e)), str(e)
        return
    assert len(fr.decay) == 4 and all(math.isnan(d) or 0 <= d <= 1 for d in fr.decay)
