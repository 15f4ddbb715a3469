"""`humus-export all` plays a new studio: footage nobody named after our data, a tiny budget, a model the
box plays at once, a report, a signed bundle, and a re-run that redoes nothing."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
av = pytest.importorskip("av")
from PIL import Image  # noqa: E402

from export.pipeline import (AllConfig, evaluation_size, notice_for, parse_budget, run_all,  # noqa: E402
                             stage_minutes)

REPO = Path(__file__).resolve().parents[1]


def make_studio(root: Path) -> Path:
    """A compost heap filmed as a short video, and a shoot of leaves as stills, each with a credits file."""
    (root / "compost").mkdir(parents=True)
    with av.open(str(root / "compost" / "heap.mp4"), "w") as out:
        s = out.add_stream("mpeg4", rate=8)
        s.width = s.height = 160
        s.pix_fmt = "yuv420p"
        for i in range(24):
            img = np.full((160, 160, 3), 200 - 6 * i, np.uint8)
            img[40:120, 30 + i:110 + i] = (90, 60 + i, 30)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    (root / "leaves").mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        img = np.full((150, 150, 3), 235, np.uint8)
        img[30:120, 30:120] = (60 + 10 * i, 140 - 8 * i, 40)
        img = np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "leaves" / f"leaf_{i:03d}.png")
    (root / "NOTICE").write_text("Footage (c) 2026 Studio Mycelium, all rights reserved.\n")
    return root


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("studio")
    key = tmp / "studio"
    subprocess.run([sys.executable, "-m", "firmware.appliance.release_cli", "keygen", str(key)], check=True,
                   capture_output=True, cwd=REPO)
    cfg = AllConfig(inputs=[str(make_studio(tmp / "footage"))], out=str(tmp / "model"), run=str(tmp / "run"),
                    budget_minutes=1.0, preset="tiny", resolution=32, threads=2, batch=4, preview_seconds=6,
                    bundle_key=str(key) + ".key", version="1.4.0",
                    upsampler={"width": 8, "blocks": 1, "batch": 4, "crop": 64})
    lines = []
    run_all(cfg, log=lines.append)
    return cfg, lines


def test_all_makes_a_cascade_the_box_plays(studio):
    from firmware.generate.manifest import load_model_dir

    cfg, _ = studio
    out, run = Path(cfg.out), Path(cfg.run)
    info = load_model_dir(out)
    assert info.upsampler is not None and tuple(info.output_resolution) == (128, 128)
    assert set(info.subjects) == {"compost", "leaves"}
    assert (out / "eval" / "preview.mp4").stat().st_size > 1000           # `humus run --model OUT --sim` played it
    assert "Studio Mycelium" in (out / "NOTICE").read_text()             # the studio's own credits travel
    rec = json.loads((run / "pipeline.json").read_text())
    assert all(rec["stages"][s]["done"] for s in ("footage", "teacher", "student", "upsampler", "onnx", "evaluate",
                                                   "grids", "preview", "report", "bundle"))
    m = json.loads((out / "manifest.json").read_text())["metrics"]
    assert np.isfinite(m["kid"]["student_2"]) and 0 <= m["memorisation"]["student_2"]["near_copy_share"] <= 1


def test_the_report_and_the_signed_bundle(studio, tmp_path):
    cfg, _ = studio
    out, run = Path(cfg.out), Path(cfg.run)
    report = (out / "eval" / "report.md").read_text()
    assert "| compost |" in report and "student_2" in report and "near-copies" in report
    assert "![grid_leaves](grid_leaves.jpg)" in report and "preview.mp4" in report
    bundle = run / "studio-1.4.0.bundle"
    # the box's own updater checks it: signature and every file, before unpacking anything
    from firmware.appliance.bundle import open_bundle
    from firmware.appliance.bundle_keys import load_trusted_keys

    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "studio.pub").write_text(Path(cfg.bundle_key).with_suffix(".pub").read_text())
    b = open_bundle(bundle, load_trusted_keys(keys))
    assert b.kind == "model" and "models/default/manifest.json" in b.manifest["files"]


def test_a_rerun_skips_every_finished_stage(studio):
    cfg, _ = studio
    before = (Path(cfg.out) / "manifest.json").read_bytes()
    lines = []
    run_all(cfg, log=lines.append)
    skipped = [x for x in lines if "finished earlier, skipped" in x]
    assert len(skipped) == 11 and (Path(cfg.out) / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("text,minutes", [("3h", 180), ("30m", 30), ("1h30m", 90), ("90s", 1.5), ("45", 45)])
def test_budgets(text, minutes):
    assert parse_budget(text) == pytest.approx(minutes)


@pytest.mark.parametrize("text", ["", "3x", "h", "-5", "0", "1e9"])
def test_bad_budgets_name_the_text(text):
    with pytest.raises(ValueError, match="--budget"):
        parse_budget(text)


def test_the_evaluation_grows_with_its_share():
    assert evaluation_size(1) < evaluation_size(30) < evaluation_size(300) <= 1000


def test_a_folder_without_credits_says_so(tmp_path):
    (tmp_path / "f").mkdir()
    text = notice_for([str(tmp_path / "f")], {"sources": {"f": 3}})
    assert "studio's own footage" in text and "f (3 images)" in text


def test_a_stage_that_ran_over_is_paid_for_by_the_stages_after_it():
    fresh = {"footage": {"done": True, "seconds": 60.0}}
    on_time = {**fresh, "teacher": {"done": True, "seconds": stage_minutes(30, fresh, "teacher") * 60}}
    late = {**fresh, "teacher": {"done": True, "seconds": stage_minutes(30, fresh, "teacher") * 60 + 300}}
    assert stage_minutes(30, fresh, "teacher") == pytest.approx(29 * 0.40)     # all but the footage's minute
    assert stage_minutes(30, late, "student") < stage_minutes(30, on_time, "student")
    # the sum of what is still planned never passes the deadline
    left = 30 - sum(s["seconds"] for s in late.values()) / 60
    planned = sum(stage_minutes(30, late, k) for k in ("student", "upsampler", "evaluate"))
    assert planned <= left
    assert evaluation_size(5, test_images=305) < evaluation_size(5)            # the test half costs too
    assert evaluation_size(5, 305, cores=1) < evaluation_size(5, 305, cores=2)  # --threads 1: half the rate
