"""End to end on a handful of synthetic images: footage -> train -> distill -> onnx ->
onnxruntime through the firmware's loader, plus manifest checks (<~1 min on 2 cores)."""
from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
from PIL import Image  # noqa: E402

from export import cli  # noqa: E402
from export.distill import notes  # noqa: E402
from export.footage import load_cache  # noqa: E402
from export.schedule import karras_sigmas  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _blob(rng, color, size=48):
    """A coloured disc on white: stands in for a fruit photo."""
    yy, xx = np.mgrid[:size, :size]
    cx, cy, r = rng.uniform(15, 33, 2).tolist() + [rng.uniform(8, 14)]
    img = np.full((size, size, 3), 250, np.uint8)
    img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = color
    return img


def make_footage(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for g, color in ((0, (40, 160, 40)), (1, (150, 120, 40)), (2, (70, 40, 20))):
        d = root / "fruit" / f"grade{g}"
        d.mkdir(parents=True)
        for i in range(4):
            Image.fromarray(_blob(rng, color)).save(d / f"{i}.png")
    # The grades are the fruit's decay labels (not the photos' order): the sidecar says so.
    (root / "footage.toml").write_text('[[files]]\npath = "fruit"\nlabeller = "grade-folder"\n')
    frames = [Image.fromarray(_blob(np.random.default_rng(i), (200 - 12 * i, 80, 40))) for i in range(6)]
    (root / "clip").mkdir()
    frames[0].save(root / "clip" / "rot.gif", save_all=True, append_images=frames[1:], duration=100)
    return root


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    src = make_footage(tmp / "src")
    cache, run, model = tmp / "cache.npz", tmp / "run", tmp / "model"
    torch.set_num_threads(2)
    assert cli.main(["footage", str(src), "--cache", str(cache), "--resolution", "32", "--holdout", "0.3",
                     "--dedup", "0"]) == 0
    assert cli.main(["train", "--cache", str(cache), "--run", str(run), "--preset", "tiny", "--steps", "6",
                     "--batch", "4", "--minutes", "0"]) == 0
    assert cli.main(["distill", "--cache", str(cache), "--run", str(run), "--steps", "4", "--batch", "4",
                     "--minutes", "0"]) == 0
    assert cli.main(["onnx", "--run", str(run), "--out", str(model), "--name", "tiny", "--no-latency"]) == 0
    return {"cache": cache, "run": run, "model": model, "src": src}


def test_footage_cache_has_labels_and_split(pipeline):
    ds = load_cache(pipeline["cache"])
    assert ds.images.shape[1:] == (32, 32, 3) and ds.images.dtype == np.uint8
    assert len(ds) == 12 + 6
    assert 2 <= ds.heldout.sum() <= 16  # evaluate needs >= 2 held-out images
    src = ds.source.tolist()
    fruit = ds.decay[np.array(src) == "fruit"]
    assert sorted(set(np.round(fruit, 3))) == [0.0, 0.5, 1.0]  # grade0..2 -> 0, 0.5, 1
    clip = np.sort(ds.decay[np.array(src) == "clip"])
    assert clip[0] == 0.0 and clip[-1] == 1.0 and np.all(np.diff(clip) > 0)  # time position
    assert ds.heldout.any() and (~ds.heldout).any()


def test_train_resumes_from_checkpoint(pipeline, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(pipeline["run"], run)
    st0 = torch.load(run / "teacher.pt", weights_only=False)
    assert st0["step"] == 6 and (run / "teacher_grid.png").exists() and (run / "teacher_loss.png").exists()
    assert cli.main(["train", "--cache", str(pipeline["cache"]), "--run", str(run), "--preset", "tiny",
                     "--steps", "8", "--batch", "4", "--minutes", "0"]) == 0
    st1 = torch.load(run / "teacher.pt", weights_only=False)
    assert st1["step"] == 8 and len(st1["history"]) == 8
    assert [h[0] for h in st1["history"][:6]] == [h[0] for h in st0["history"]]


def test_manifest_schema_sha_and_firmware_loads_it(pipeline):
    from firmware.generate.conditions import Conditions
    from firmware.generate.engines import open_engine
    from firmware.generate.manifest import load_model_dir
    from firmware.digest import sha256_file

    d = pipeline["model"]
    mf = json.loads((d / "manifest.json").read_text())
    assert mf["format"] == "humus-model/1" and mf["resolution"] == [32, 32] and mf["channels"] == 3
    assert mf["value_range"] == [-1.0, 1.0] and mf["precond"]["sigma_data"] == 0.5
    for name in ("student", "teacher"):
        net = mf["networks"][name]
        assert net["sha256"] == sha256_file(d / net["file"])
        # two footage sources (fruit/, clip/) -> two subjects, fed as a float index
        assert net["inputs"] == {"x": [1, 3, 32, 32], "sigma": [1], "decay": [1], "subject": [1]}
        assert net["outputs"] == {"denoised": [1, 3, 32, 32]}
        assert net["parity_max_abs_diff"] < 1e-4
    assert set(mf["networks"]["student"]["steps"]) == {"1", "2", "4"}
    assert mf["networks"]["student"]["sampler"] == "consistency"
    assert mf["networks"]["teacher"]["sampler"] == "heun"
    assert "MIT" in (d / "NOTICE").read_text() and "CC-BY-4.0" in (d / "NOTICE").read_text()
    import onnx

    m = onnx.load(str(d / "student.onnx"))
    assert m.opset_import[0].version == 17
    assert [i.name for i in m.graph.input] == ["x", "sigma", "decay", "subject"]
    assert m.graph.output[0].name == "denoised"
    assert mf["conditioning"]["subject"]["names"] == ["clip", "fruit"]
    assert mf["conditioning"]["subject"]["images"] == {"clip": 6, "fruit": 12}
    info = load_model_dir(d)
    assert info.subjects == ("clip", "fruit")
    eng = open_engine(info, network="student", kind="onnxruntime")  # runs the reference check too
    ref = np.load(d / "reference.npz")
    cond = Conditions(ref["decay"], ref["subject"])
    np.testing.assert_allclose(eng.denoise(ref["x"], ref["sigma"], cond), ref["denoised"], atol=1e-5)


def test_corrupt_onnx_is_refused_by_sha(pipeline, tmp_path):
    import shutil

    from firmware.generate.manifest import ModelError, load_model_dir

    d = tmp_path / "m"
    shutil.copytree(pipeline["model"], d)
    with open(d / "student.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="sha256"):
        load_model_dir(d)


def test_sampler_noise_levels_equal_manifest(pipeline):
    """The firmware sampler visits exactly the manifest's sigmas, and torch's samplers
    (export.schedule) produce the same images as the firmware's over the same ONNX."""
    from firmware.generate.manifest import load_model_dir
    from firmware.generate.sampler import sample

    from export.onnx import ort_session
    from export.schedule import heun
    from export.train import load_denoiser

    d = pipeline["model"]
    info = load_model_dir(d)
    mf = json.loads((d / "manifest.json").read_text())
    assert mf["networks"]["teacher"]["steps"]["35"] == karras_sigmas(35)
    for k, sig in mf["networks"]["student"]["steps"].items():
        seen = []
        sample(lambda x, s, c: (seen.append(s), x * 0)[1], info.network("student").sigmas(int(k)),
               np.zeros((1, 3, 32, 32), np.float32), "consistency", rng=np.random.default_rng(0))
        assert seen == sig
    seen = []
    sample(lambda x, s, c: (seen.append(s), x * 0.5)[1], info.network("teacher").sigmas(18),
           np.ones((1, 3, 32, 32), np.float32), "heun")
    t18 = karras_sigmas(18)
    assert seen[0] == t18[0] and sorted(set(seen), reverse=True) == t18
    # Same numbers in, same image out: torch Heun vs firmware Heun over teacher.onnx.
    sess = ort_session(d / "teacher.onnx")
    eps = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    fw, _ = sample(lambda x, s, c: sess.run(None, {"x": x.astype(np.float32), "sigma": np.array([s], np.float32),
                                               "decay": np.array([0.3], np.float32),
                                               "subject": np.array([1.0], np.float32)})[0], t18, eps, "heun")
    teacher = load_denoiser(pipeline["run"] / "teacher.pt")
    th = heun(teacher, t18, torch.from_numpy(eps), torch.tensor([0.3]), torch.tensor([1.0])).numpy()
    np.testing.assert_allclose(fw, th, atol=2e-3)


def test_sample_draws_decay_from_the_recorded_distribution(pipeline, tmp_path, tiny_model):
    mf = json.loads((pipeline["model"] / "manifest.json").read_text())
    dist = mf["decay_distribution"]["by_source"]  # recorded at `onnx` time from the cache's training split
    ds = load_cache(pipeline["cache"])
    train = ds.split(heldout=False)
    assert set(dist) == {"fruit", "clip"}
    for s, e in dist.items():
        assert e["images"]["train"] == int((train.source == s).sum())
    out = tmp_path / "png"
    assert cli.main(["sample", "--model", str(pipeline["model"]), "--steps", "2", "--n", "12", "--out", str(out)]) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 12 and Image.open(pngs[0]).size == (32, 32)
    rec = json.loads((out / "samples.json").read_text())
    assert [r["file"] for r in rec] == [p.name for p in pngs]
    assert {r["drawn_for"] for r in rec} == {"fruit", "clip"}  # 12 draws, two sources: both (p = 1 - 2^-11)
    for r in rec:  # every decay is one that source's training images hold
        held = train.decay[train.source == r["drawn_for"]]
        assert np.isclose(held, r["decay"], atol=1e-4).any(), r
    assert len({r["decay"] for r in rec}) > 1  # drawn, not one fixed value
    # --decay keeps its meaning: one value for every image.
    assert cli.main(["sample", "--model", str(pipeline["model"]), "--n", "2", "--decay", "0.3",
                     "--out", str(tmp_path / "fixed")]) == 0
    assert [r["decay"] for r in json.loads((tmp_path / "fixed" / "samples.json").read_text())] == [0.3, 0.3]
    # A step count the manifest does not list is an error naming the key, not a guess.
    assert cli.main(["sample", "--model", str(pipeline["model"]), "--steps", "3", "--n", "1",
                     "--out", str(out)]) == 2
    # A model without recorded distributions: a clear error, unless --decay is given.
    assert cli.main(["sample", "--model", str(tiny_model), "--n", "1", "--out", str(tmp_path / "t")]) == 2
    assert cli.main(["sample", "--model", str(tiny_model), "--n", "1", "--decay", "0.5",
                     "--out", str(tmp_path / "t")]) == 0


def model_copy_and_footage(pipeline, tmp_path, cache_name: str, resolution: int):
    """A copy of the pipeline's model to write into, and the pipeline's footage cached at `resolution`."""
    model = tmp_path / "model"
    shutil.copytree(pipeline["model"], model)
    cache = tmp_path / cache_name
    assert cli.main(["footage", str(pipeline["src"]), "--cache", str(cache), "--resolution", str(resolution),
                     "--holdout", "0.3", "--dedup", "0"]) == 0
    return model, cache


def test_evaluate_writes_inception_metrics_per_subject(pipeline, tmp_path):
    from export.evaluate import evaluate
    from export.inception import WEIGHTS_SHA1

    model, cache64 = model_copy_and_footage(pipeline, tmp_path, "c64.npz", 64)
    # A cache at another resolution than the images measured: refused before any work, naming it.
    with pytest.raises(ValueError, match=r"c64.npz: holds 64x64 images.*--resolution 32"):
        evaluate(model, cache64, walks=0)
    with pytest.raises(ValueError, match=r"cache.npz: holds 32x32 images.*larger than"):
        evaluate(model, pipeline["cache"], upscaled_caches=[pipeline["cache"]])
    m = evaluate(model, pipeline["cache"], featnet=tmp_path / "f.pt", generated=4, per_subject=2, walks=1,
                 featnet_steps=5, student_steps=(1, 2), boots=50, upscaled_caches=[cache64])
    mf = json.loads((model / "manifest.json").read_text())
    assert mf["metrics"] == json.loads(json.dumps(m))
    up = m["upscaled"]["64"]  # the same images, bicubic-upscaled, against photographs read at 64x64
    for block, side in ((m, 32), (up, 64)):
        assert "InceptionV3" in block["features"]["kind"] and block["features"]["sha1"] == WEIGHTS_SHA1
        assert block["resolution"] == [side, side] and block["bootstrap"] == 50
        assert {"teacher_35", "student_1", "student_2", "floor_train"} <= set(block["kid"])
        assert all(np.isfinite(v) for v in block["kid"].values())
        r = block["kid_ratios"]["student_2/teacher_35"]
        lo, hi = r["ci90"]  # an end is None (unbounded) when the teacher's KID reaches zero
        assert r["goal"] == 1.25 and 0.0 <= r["p_le_goal"] <= 1.0
        assert (lo is None or hi is None or lo <= hi) and r["excess"]["ci90"][0] <= r["excess"]["ci90"][1]
        assert set(block["by_subject"]) == {"fruit", "clip"}
        for k in ("teacher_35", "student_1", "student_2"):   # novelty, beside KID in the manifest
            mem = block["memorisation"][k]
            assert 0.0 <= mem["near_copy_share"] <= 1.0 and "Inception" in mem["features"] and mem["images"] >= 4
            assert 0.0 <= block["subject_fidelity"][k]["mean"] <= 1.0
        assert 0.0 <= block["subject_fidelity"]["real_validation_accuracy"] <= 1.0
        assert block["novelty_training_images"] == int((load_cache(pipeline["cache"]).heldout == False).sum())  # noqa: E712
    assert m["samples"]["student_2"] == 4 and m["resized"] is None and "bicubic" in up["resized"]
    test = load_cache(pipeline["cache"]).heldout_part("test")  # the split hashes paths: varies with tmp dirs
    for s, b in m["by_subject"].items():
        n_ref = int((test.source == s).sum())
        assert b["samples"]["reference"] == n_ref
        if n_ref >= 2:  # enough held-out images of the subject: its own panel
            assert b["samples"]["student_2"] >= 2
            n_train = int((load_cache(pipeline["cache"]).split(heldout=False).source == s).sum())
            assert ("floor_train" in b["kid"]) == (n_train >= 2)
        else:
            assert "kid" not in b and "KID needs at least 2" in b["note"]
    sec = m["secondary_featnet"]
    assert "NOT Inception" in sec["features"]["kind"] and {"student_2", "floor_train"} <= set(sec["kid"])
    assert (model / "eval" / "grid_student_2.png").exists() and (model / "eval" / "walks.png").exists()


def test_evaluate_cli_compares_models_side_by_side_and_leaves_their_manifests(pipeline, tmp_path, capsys):
    """A candidate beside the shipped model, in one run: the 2-step student only, a bounded
    memorisation check, the real photographs' features computed once, the manifests left as they are."""
    models = [tmp_path / "a", tmp_path / "b"]
    for model in models:
        shutil.copytree(pipeline["model"], model)
    def contents(folder):
        return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    before = [contents(model) for model in models]
    figures = tmp_path / "figures"
    args = ["evaluate", "--model", str(models[0]), "--model", str(models[1]), "--cache", str(pipeline["cache"]),
            "--teacher-steps", "0", "--student-steps", "2", "--generated", "4", "--per-subject", "2", "--walks", "0",
            "--no-secondary", "--boots", "20", "--novelty-limit", "4", "--no-manifest", "--figures", str(figures)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    # The folders are left byte for byte (a shipped model's eval/metrics.json is tracked; the test
    # photographs' grid must never land where it could be committed).
    assert [contents(model) for model in models] == before
    assert (figures / "0-a" / "grid_heldout.png").exists() and (figures / "0-a" / "metrics.json").exists()
    m = json.loads((figures / "1-b" / "metrics.json").read_text())
    assert {k for k in m["kid"] if not k.startswith("floor_")} == {"student_2"} and m["kid_ratios"] == {}
    assert m["novelty_training_images"] <= 4
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[:2] for r in table[2:4]] == [[f"| {models[0]}", "student_2"], [f"| {models[1]}", "student_2"]]
    assert table[2].split(" | ")[2:] == table[3].split(" | ")[2:]      # the same model, the same seeds: the same figures
    computed, shared = (int(x) for x in re.search(r"(\d+) computed, (\d+) shared", out).groups())
    assert shared >= computed // 3 > 0      # the second model pays only for its own generated images
    for bad in ("0", "2,x", ""):
        with pytest.raises(SystemExit) as exc:
            cli.main(["evaluate", "--model", str(models[0]), "--student-steps", bad])
        assert exc.value.code == 2
        assert "--student-steps" in capsys.readouterr().err


def test_tune_chooses_by_inception_kid_and_onnx_takes_it(pipeline, tmp_path):
    # `tune` picks weights and sigmas on the held-out validation half; `onnx` takes its JSON.
    tuned = tmp_path / "tuned.json"
    assert cli.main(["tune", "--cache", str(pipeline["cache"]), "--run", str(pipeline["run"]), "--n", "2",
                     "--seeds", "1", "--out", str(tuned)]) == 0
    t = json.loads(tuned.read_text())
    assert t["search"]["seeds"] == 1 and "InceptionV3" in t["search"]["features"]
    assert t["weights"] in ("ema", "model") and len(t["steps"]["2"]) == 2 and t["steps"]["2"][0] == 80.0
    out2 = tmp_path / "m2"
    assert cli.main(["onnx", "--run", str(pipeline["run"]), "--out", str(out2), "--no-latency",
                     "--student-steps", str(tuned)]) == 0
    mf2 = json.loads((out2 / "manifest.json").read_text())
    assert mf2["networks"]["student"]["steps"]["2"] == t["steps"]["2"]
    assert mf2["training"]["distill"]["exported_weights"] == t["weights"]
    assert mf2["decay_distribution"]["by_source"].keys() == {"fruit", "clip"}
    assert "decay_distribution" not in mf2["training"]["data"]  # recorded once, at the top


def test_tune_asks_for_each_validation_images_own_subject(pipeline, monkeypatch):
    """Until 2026-12-04 `tune` grew every candidate set with no subject at all, a path a subject
    network never trained on, and chose the shipped student's levels for it."""
    from export import schedule
    from export.evaluate import tune_student_sigmas
    from export.train import subject_ids

    asked, real = [], schedule.consistency

    def spy(*args, subject=None, **kw):
        asked.append(subject)
        return real(*args, subject=subject, **kw)

    class FirstPixels:
        kind = "first pixels"

        def features(self, images):
            return np.asarray(images, np.float64).reshape(len(images), -1)[:, :16]

    monkeypatch.setattr(schedule, "consistency", spy)
    tune_student_sigmas(pipeline["run"] / "student.pt", pipeline["cache"], FirstPixels(), n=64,
                        candidates=(0.821, 2.0), weights=("ema",))
    names = torch.load(pipeline["run"] / "student.pt", weights_only=False)["subjects"]
    val = load_cache(pipeline["cache"]).heldout_part("validation")
    expected = sorted(subject_ids(val, names).tolist())
    assert len(asked) == 2 + 4 + 1 and len(set(expected)) >= 1
    for subject in asked:
        assert subject is not None and sorted(subject.long().tolist()) == expected


def test_torchrun_ddp_world_size_1_gloo(pipeline, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                        "-m", "export.cli", "train", "--cache", str(pipeline["cache"]), "--workdir", str(tmp_path / "ddp"),
                        "--preset", "tiny", "--steps", "3", "--batch", "4", "--minutes", "0"],
                       env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    st = torch.load(tmp_path / "ddp" / "teacher.pt", weights_only=False)
    assert st["step"] == 3 and st["train"]["preset"] == "tiny"


def test_upsampler_stage_trains_exports_and_runs_in_the_firmware(pipeline, tmp_path):
    """footage at 4x -> `humus-export upsampler` -> ONNX stage in the model dir -> the box's loader."""
    import torch

    from firmware.generate.manifest import load_model_dir
    from firmware.generate.stages import Upsampler

    model, hr = model_copy_and_footage(pipeline, tmp_path, "hr.npz", 128)
    assert cli.main(["upsampler", "--cache", str(hr), "--run", str(tmp_path / "run"), "--minutes", "0",
                     "--steps", "3", "--steps-only", "--batch", "2", "--crop", "64", "--width", "8",
                     "--blocks", "1", "--model", str(model)]) == 0
    info = load_model_dir(model)
    assert info.stage_errors == () and info.output_resolution == (128, 128)
    m = json.loads((model / "manifest.json").read_text())["stages"]["upsampler"]
    assert m["training"]["steps"] == 3 and m["training"]["parity_max_abs_diff"] < 1e-3
    assert m["method"].startswith("4x residual CNN over bilinear, L1 on footage crops")   # the run's own recipe
    # A run folder without its record (as `state restore` leaves one) is described from the checkpoint's
    # own config, not from the exporting command's defaults.
    st = torch.load(tmp_path / "run" / "upsampler.pt", map_location="cpu", weights_only=False)
    st["config"] = {**st["config"], "perceptual": 1.0, "adversarial": 0.1}
    torch.save(st, tmp_path / "run" / "upsampler.pt")
    (tmp_path / "run" / "upsampler_record.json").unlink()
    assert cli.main(["upsampler", "--cache", str(hr), "--run", str(tmp_path / "run"), "--minutes", "0",
                     "--model", str(model)]) == 0
    m = json.loads((model / "manifest.json").read_text())["stages"]["upsampler"]
    assert "1 x random-feature L1 + 0.1 x patch GAN" in m["method"] and m["training"]["steps"] == 3
    up = Upsampler(info.upsampler)          # includes the reference check against the stored pair
    assert up.failed is None
    assert up(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 3, 128, 128)
    from export.sample import Generator
    assert Generator(model).generate_many(2, None).shape == (2, 128, 128, 3)
    # A fresh run may start from a shipped stage's ONNX weights (to add the sharpening terms to it).
    from export.upsampler import load_upsampler, weights_from_onnx
    warm = tmp_path / "warm"
    assert cli.main(["upsampler", "--cache", str(hr), "--run", str(warm), "--minutes", "0", "--steps", "1",
                     "--steps-only", "--batch", "2", "--crop", "64", "--lr", "0", "--init-onnx", str(model)]) == 0
    got, want = load_upsampler(warm / "upsampler.pt").state_dict(), weights_from_onnx(model)
    assert (got["head.weight"].shape[0], len(got)) == (8, len(want))     # width and blocks from the stage
    assert all(torch.equal(got[k], want[k]) for k in want)             # lr 0: the stage's weights, unchanged
    assert cli.main(["upsampler", "--cache", str(hr), "--run", str(tmp_path / "cold"), "--minutes", "0",
                     "--steps", "1", "--steps-only", "--init-onnx", str(pipeline["model"])]) == 2


def _model_with_a_stage(pipeline, tmp_path):
    """A copy of the pipeline's model with a (barely) trained 4x stage, and its footage at 128 px."""
    model, hr = model_copy_and_footage(pipeline, tmp_path, "hr.npz", 128)
    assert cli.main(["upsampler", "--cache", str(hr), "--run", str(tmp_path / "run"), "--minutes", "0",
                     "--steps", "3", "--steps-only", "--batch", "2", "--crop", "64", "--width", "8",
                     "--blocks", "1", "--model", str(model)]) == 0
    return model, hr


class DetailEnergy:
    """A stand-in for Inception here: mean colour and the energy of pixel-to-pixel steps."""

    kind = "test features"

    def features(self, images: np.ndarray) -> np.ndarray:
        x = images.astype(np.float64) / 255.0
        return np.concatenate([x.mean(axis=(1, 2)), 4 * np.abs(np.diff(x, axis=2)).mean(axis=(1, 2))], axis=1)


def test_the_detail_gain_is_chosen_on_validation_and_goes_into_the_stage(pipeline, tmp_path, capsys):
    """`detail-gain` scores the model's own images at each gain against the validation half and writes the
    best into the stage's graph: the box's stage then adds exactly gain x the detail, same weights."""
    import torch

    from export.adversarial import smooth
    from export.detail_gain import search, write
    from export.upsampler import Upsampler, shape_of, weights_from_onnx
    from firmware.generate.manifest import load_model_dir
    from firmware.generate.stages import Upsampler as Stage

    model, hr = _model_with_a_stage(pipeline, tmp_path)
    before = weights_from_onnx(model)
    plain = Stage(load_model_dir(model).upsampler)
    found = search(model, hr, gains=(1.0, 2.0, 3.0), extractor=DetailEnergy(), boots=10, log=lambda s: None)
    val = load_cache(hr).heldout_part("validation")
    assert found["images"] == len(val) and set(found["gains"]) == {"1.0", "2.0", "3.0"}
    assert found["best"] == min((1.0, 2.0, 3.0), key=lambda g: found["gains"][str(g)]["kid"])
    assert len({r["kid"] for r in found["gains"].values()}) == 3       # the gain changes what is measured

    stage = write(model, 2.0, found)
    info = load_model_dir(model)
    assert info.stage_errors == () and stage["detail_gain"] == 2.0 and "detail x2" in stage["method"]
    assert json.loads((model / "manifest.json").read_text())["stages"]["upsampler"]["detail_gain_search"] == found
    gained = Stage(info.upsampler)                      # its reference pair checked on load
    assert gained.failed is None
    x = (0.15 * np.random.default_rng(0).standard_normal((1, 3, 32, 32))).astype(np.float32)   # no clipping
    a, b = torch.from_numpy(plain(x)), torch.from_numpy(gained(x))
    assert float((a - smooth(a)).abs().mean()) > 1e-3                     # there is detail to scale
    assert torch.allclose(b, smooth(a) + 2.0 * (a - smooth(a)), atol=1e-4)   # twice the detail, nothing else
    after = weights_from_onnx(model)                    # a run started from it gets the network alone
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    net = Upsampler(*shape_of(after))
    assert net.detail_gain == 1.0

    assert cli.main(["detail-gain", "--model", str(model), "--cache", str(hr), "--gains", "1,x"]) == 2
    assert "--gains: 'x' is not a number" in capsys.readouterr().err
    assert cli.main(["detail-gain", "--model", str(model), "--cache", str(hr), "--gains", "1,40"]) == 2
    assert "--gains: '40' is outside 0.5-8" in capsys.readouterr().err
    assert cli.main(["detail-gain", "--model", str(pipeline["model"]), "--cache", str(hr)]) == 2
    assert "manifest.json has no stages.upsampler" in capsys.readouterr().err


def test_the_re_noising_is_chosen_on_validation_and_goes_into_the_manifest(pipeline, tmp_path, capsys):
    """`renoise` grows the finished images asked as the validation half with each (fresh share, middle
    level) pair, picks the lowest KID, and writes it where the box and the studio tools read it."""
    from export.renoise import search, write
    from export.sample import Generator
    from firmware.generate.manifest import load_model_dir

    model, hr = _model_with_a_stage(pipeline, tmp_path)
    top = load_model_dir(model).network("student").steps[2][0]
    before = Generator(model).generate_many(3, 2, seed=4)
    found = search(model, hr, fresh=(0.0, 1.0), mids=(0.5, 1.5), extractor=DetailEnergy(), boots=10,
                   log=lambda s: None)
    assert set(found["candidates"]) == {"fresh 0 mid 0.5", "fresh 0 mid 1.5", "fresh 1 mid 0.5", "fresh 1 mid 1.5"}
    assert len({r["kid"] for r in found["candidates"].values()}) == 4      # each pair grows other images
    best = min(found["candidates"], key=lambda k: found["candidates"][k]["kid"])
    assert best == f"fresh {found['best']['fresh']:g} mid {found['best']['mid']:g}"
    assert Generator(model).generate_many(3, 2, seed=4).tobytes() == before.tobytes()   # nothing written yet

    write(model, 0.0, 1.5, found)
    net = load_model_dir(model).network("student")
    assert net.fresh == 0.0 and net.steps[2] == (top, 1.5)
    mf = json.loads((model / "manifest.json").read_text())
    assert mf["training"]["sampler_search"] == json.loads(json.dumps(found))
    after = Generator(model).generate_many(3, 2, seed=4)
    assert after.shape == before.shape and after.tobytes() != before.tobytes()

    assert cli.main(["renoise", "--model", str(model), "--cache", str(hr), "--fresh", "0,2"]) == 2
    assert "--fresh: '2' is outside 0-1" in capsys.readouterr().err
    assert cli.main(["renoise", "--model", str(model), "--cache", str(hr), "--mids", str(top + 1)]) == 2
    assert "every middle level must lie between 0 and the first level" in capsys.readouterr().err
    assert cli.main(["renoise", "--model", str(model), "--cache", str(pipeline["cache"])]) == 2
    assert "holds 32x32 photographs but" in capsys.readouterr().err


def test_sample_grows_the_named_subject(pipeline, tmp_path):
    """--subject conditions the model on that footage source and draws decay from its own data."""
    out = tmp_path / "clip"
    assert cli.main(["sample", "--model", str(pipeline["model"]), "--steps", "2", "--n", "4", "--subject", "clip",
                     "--out", str(out)]) == 0
    rec = json.loads((out / "samples.json").read_text())
    assert {r["drawn_for"] for r in rec} == {"clip"}
    train = load_cache(pipeline["cache"]).split(heldout=False)
    assert all(np.isclose(train.decay[train.source == "clip"], r["decay"], atol=1e-4).any() for r in rec)
    # (that the subject input changes the picture is tested on a model built to show it: test_subjects.py;
    # six training steps leave this one's zero-initialised subject embedding where it started)
    assert cli.main(["sample", "--model", str(pipeline["model"]), "--n", "1", "--subject", "pears",
                     "--out", str(tmp_path / "x")]) == 2


def test_warm_start_reads_the_shipped_subject_model_back(pipeline, tmp_path, capsys):
    """A subject-conditioned model goes on training from its ONNX files; footage that names other
    subjects (or none) is refused with the manifest named, and nothing is written."""
    import torch

    run = tmp_path / "ws"
    assert cli.main(["warm-start", "--model", str(pipeline["model"]), "--cache", str(pipeline["cache"]),
                     "--run", str(run)]) == 0
    st = torch.load(run / "student_init.pt", map_location="cpu", weights_only=False)
    names = json.loads((pipeline["model"] / "manifest.json").read_text())["conditioning"]["subject"]["names"]
    assert st["subjects"] == names and st["net"]["subjects"] == len(names)
    assert st["warm_start"]["subject_embedding"] == "as shipped"
    assert st["warm_start"]["round_trip_max_abs_diff"] < 1e-4
    capsys.readouterr()
    assert cli.main(["warm-start", "--model", str(pipeline["model"]), "--cache", str(pipeline["cache"]),
                     "--run", str(tmp_path / "none"), "--no-subjects"]) == 2
    assert "manifest.json" in capsys.readouterr().err and not (tmp_path / "none" / "teacher.pt").exists()


def test_a_new_generator_keeps_another_models_upsampler_stage(pipeline, tmp_path, capsys):
    """`onnx --upsampler-from MODEL`: the new folder gets that stage byte for byte and the box loads it;
    a stage whose file no longer matches its sha256 is refused before anything is written."""
    from firmware.generate.manifest import load_model_dir
    from firmware.generate.stages import Upsampler

    donor, hr = model_copy_and_footage(pipeline, tmp_path, "hr.npz", 128)
    assert cli.main(["upsampler", "--cache", str(hr), "--run", str(tmp_path / "run"), "--minutes", "0",
                     "--steps", "2", "--steps-only", "--batch", "2", "--crop", "64", "--width", "8",
                     "--blocks", "1", "--model", str(donor)]) == 0
    out = tmp_path / "new"
    assert cli.main(["onnx", "--run", str(pipeline["run"]), "--out", str(out), "--name", "new", "--no-latency",
                     "--upsampler-from", str(donor)]) == 0
    assert (out / "upsampler.onnx").read_bytes() == (donor / "upsampler.onnx").read_bytes()
    info = load_model_dir(out)
    assert info.stage_errors == () and info.output_resolution == (128, 128)
    assert Upsampler(info.upsampler).failed is None            # the reference pair came along and passes
    stage = json.loads((out / "manifest.json").read_text())["stages"]["upsampler"]
    assert stage["training"]["copied_from"] == str(donor)
    bad = tmp_path / "bad"
    (donor / "upsampler.onnx").write_bytes((donor / "upsampler.onnx").read_bytes()[:-8])
    capsys.readouterr()
    assert cli.main(["onnx", "--run", str(pipeline["run"]), "--out", str(bad), "--name", "bad", "--no-latency",
                     "--upsampler-from", str(donor)]) == 2
    assert "upsampler.onnx" in capsys.readouterr().err and not bad.exists()


def test_a_model_tuned_on_from_its_onnx_keeps_its_training_record(pipeline, tmp_path):
    """warm-start -> distill --init -> onnx: the new manifest says what the networks had been through
    before they were read back (not "0 steps"), and is strict JSON (no NaN for a loss with no history)."""
    shipped = json.loads((pipeline["model"] / "manifest.json").read_text())["training"]
    run = tmp_path / "ws"
    assert cli.main(["warm-start", "--model", str(pipeline["model"]), "--cache", str(pipeline["cache"]),
                     "--run", str(run)]) == 0
    assert cli.main(["distill", "--cache", str(pipeline["cache"]), "--run", str(run), "--steps", "2",
                     "--batch", "4", "--minutes", "0", "--init", str(run / "student_init.pt")]) == 0
    out = tmp_path / "tuned"
    assert cli.main(["onnx", "--run", str(run), "--out", str(out), "--name", "tuned", "--no-latency"]) == 0
    text = (out / "manifest.json").read_text()
    training = json.loads(text, parse_constant=lambda c: pytest.fail(f"manifest.json holds {c}"))["training"]
    teacher, student = training["teacher"], training["distill"]
    assert teacher["steps"] == 0 and teacher["final_loss"] is None
    assert teacher["before"]["steps"] == shipped["teacher"]["steps"] == 6
    assert teacher["warm_started_from"].endswith("teacher.onnx")
    assert student["steps"] == 2 and student["init_steps"] == shipped["distill"]["steps"] == 4
    assert student["lineage"]["before"]["steps"] == 4
    assert student["lineage"]["init"].endswith("student_init.pt")
    # Tuned on again from that run's own checkpoint (as a GPU run's result is), the chain goes on.
    again = tmp_path / "again"
    assert cli.main(["distill", "--cache", str(pipeline["cache"]), "--run", str(again), "--steps", "1",
                     "--batch", "4", "--minutes", "0", "--init", str(run / "student.pt"), "--state", "",
                     "--teacher", str(run / "teacher.pt")]) == 0
    chain = notes(again / "student.pt")
    assert chain["steps"] == 1 and chain["init_steps"] == 4 + 2
    assert chain["lineage"]["before"]["steps"] == 2
    assert chain["lineage"]["before"]["lineage"]["before"]["steps"] == 4
