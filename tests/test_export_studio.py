"""Issue 21, part 4 (labelling): a new studio's footage, named after nothing of ours, gets decay labels
that follow capture time, and a sidecar wins over every clock.

The studio brings a compost heap photographed on six mornings (EXIF dates out of file-name order),
leaves whose file names carry the date, a pond filmed in one clip, an ice melt filmed as a time-lapse
split over two files (the later file named first), and lettuces whose decay they judged by eye and
wrote into a footage.toml (contradicting the photos' EXIF order)."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from export import cli
from export.clocks import DATETIME_ORIGINAL, EXIF_IFD
from export.footage import FootageConfig, ingest

av = pytest.importorskip("av")

DAY0 = datetime(2024, 5, 1, 7, 30)
COMPOST_DAYS = {"heap_01": 3, "heap_02": 0, "heap_03": 5, "heap_04": 1, "heap_05": 4, "heap_06": 2}
LETTUCE = {"lettuce_a": (2, 0.2), "lettuce_b": (0, 0.9), "lettuce_c": (1, 0.4), "lettuce_d": (3, 0.0)}  # day, decay
MELT_STARTS = {"melt_b.mp4": "2024-03-01T08:00:00.000000Z", "melt_a.mp4": "2024-03-01T20:00:00.000000Z"}


def _picture(rng, path: Path, when: datetime | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    ex = Image.Exif()
    if when is not None:
        ex.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = when.strftime("%Y:%m:%d %H:%M:%S")
    Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(path, exif=ex)


def _clip(path: Path, frames: int, created: str | None):
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        if created:
            c.metadata["creation_time"] = created
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        for i in range(frames):
            img = np.full((32, 48, 3), (7 * i) % 256, np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def make_studio(root: Path) -> Path:
    rng = np.random.default_rng(21)
    for name, day in COMPOST_DAYS.items():
        _picture(rng, root / "compost" / f"{name}.jpg", DAY0 + timedelta(days=day, minutes=int(rng.integers(0, 50))))
    for day in (4, 0, 9, 2):
        _picture(rng, root / "leaves" / f"leaf_{(DAY0 + timedelta(days=day)):%Y-%m-%d_%H-%M}.jpg")
    _clip(root / "pond" / "pond.mp4", 30, None)
    for name, created in MELT_STARTS.items():
        _clip(root / "melt" / name, 20, created)
    for name, (day, _) in LETTUCE.items():
        _picture(rng, root / "lettuce" / f"{name}.jpg", DAY0 + timedelta(days=day))
    (root / "lettuce" / "footage.toml").write_text(
        "# judged by eye on the last day\n" + "".join(f'[[files]]\npath = "{n}.jpg"\ndecay = {d}\n\n'
                                                        for n, (_, d) in LETTUCE.items()))
    return root


def spearman(a, b) -> float:
    ra, rb = (np.argsort(np.argsort(np.asarray(x))) for x in (a, b))   # no ties here
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = make_studio(tmp_path_factory.mktemp("studio") / "footage")
    return root, ingest([root], FootageConfig(resolution=16, video_fps=5.0, dedup_threshold=0))


def test_decay_follows_capture_time_within_each_series(studio):
    root, fr = studio
    rows = list(zip(fr.group, np.array(fr.decay), fr.how))
    compost = [(COMPOST_DAYS[Path(g).stem], d) for g, d, h in rows if g.startswith("compost/") and h == "EXIF"]
    assert len(compost) == 6 and spearman(*zip(*compost)) == 1.0
    assert min(d for _, d in compost) == 0.0 and max(d for _, d in compost) == 1.0
    leaves = [(g, d) for g, d, h in rows if g.startswith("leaves/") and h == "file name"]
    assert len(leaves) == 4 and spearman([g for g, _ in leaves], [d for _, d in leaves]) == 1.0  # names sort by date
    pond = [d for g, d, h in rows if g.startswith("pond/") and h == "video time"]
    assert len(pond) >= 10 and spearman(range(len(pond)), pond) == 1.0 and pond[0] == 0.0


def test_a_time_lapse_split_over_files_is_one_series_in_recorded_order(studio):
    root, fr = studio
    order = sorted(MELT_STARTS, key=MELT_STARTS.get)            # melt_b was recorded first
    by_file = {n: [d for g, d, h in zip(fr.group, fr.decay, fr.how) if g.startswith(f"melt/{n}#")] for n in order}
    assert all(len(v) >= 8 for v in by_file.values())
    seq = by_file[order[0]] + by_file[order[1]]                  # frames in capture order
    assert spearman(range(len(seq)), seq) == 1.0                 # decay never restarts at 0 in the second file
    assert by_file[order[0]][0] == 0.0 and max(by_file[order[0]]) < 0.5 <= min(by_file[order[1]])
    assert any("melt: 2 clips chained" in n for n in fr.notes)


def test_the_sidecar_wins_over_the_clock(studio):
    root, fr = studio
    lettuce = {Path(g).stem: (d, h) for g, d, h in zip(fr.group, fr.decay, fr.how) if g.startswith("lettuce/")}
    assert {k: h for k, (_, h) in lettuce.items()} == {k: "sidecar" for k in LETTUCE}
    assert {k: round(float(d), 6) for k, (d, _) in lettuce.items()} == {k: d for k, (_, d) in LETTUCE.items()}
    # ... although the photos' EXIF order says otherwise
    days, judged = zip(*LETTUCE.values())
    assert spearman(days, judged) == -1.0


def test_the_footage_table_says_where_decay_came_from(studio, tmp_path, capsys):
    root, _ = studio
    assert cli.main(["footage", str(root), "--cache", str(tmp_path / "c.npz"), "--resolution", "16",
                     "--fps", "5", "--dedup", "0", "--holdout", "0.3"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:6]}
    assert out.splitlines()[0].split()[:5] == ["subject", "images", "train", "valid", "test"]
    assert set(rows) == {"compost", "leaves", "lettuce", "melt", "pond"}
    assert rows["compost"].endswith("EXIF 6") and rows["leaves"].endswith("file name 4")
    assert rows["lettuce"].endswith("sidecar 4") and "video time" in rows["pond"] and "video time" in rows["melt"]
    assert "\nnote: " in out and "melt: 2 clips chained" in out and "warning" not in out
