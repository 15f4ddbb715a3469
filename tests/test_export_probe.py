"""The memorisation check and the validation probe (export/memorisation.py, export/probe.py)."""
from __future__ import annotations

import json
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from export import memorisation  # noqa: E402
from export.probe import fit_linear_classifier  # noqa: E402


def test_a_copy_of_a_training_image_is_a_near_copy_and_a_new_image_is_not():
    rng = np.random.default_rng(0)
    train = rng.standard_normal((40, 32))
    groups = np.repeat(np.arange(20), 2)            # pairs of near-identical frames, one group each
    train[1::2] = train[0::2] + 0.01 * rng.standard_normal((20, 32))
    copies = train[:10] + 0.001 * rng.standard_normal((10, 32))
    new = rng.standard_normal((10, 32))
    r = memorisation.neighbour_ratios(np.concatenate([copies, new]), train, groups)
    assert (r[:10] < memorisation.COPY_RATIO).all() and (r[10:] > memorisation.COPY_RATIO).all()
    rep = memorisation.report(np.concatenate([copies, new]), train, groups)
    assert rep["near_copy_share"] == 0.5 and rep["images"] == 20 and "Inception" in rep["features"]


def test_the_second_neighbour_comes_from_another_group():
    """Within one group (a time-lapse's neighbouring frames) the second neighbour would hide the copy."""
    rng = np.random.default_rng(1)
    train = rng.standard_normal((30, 16))
    train[1] = train[0] + 0.01 * rng.standard_normal(16)   # frame 1 is frame 0's neighbour in the same clip
    groups = np.arange(30)
    groups[1] = groups[0]
    copy = (train[:1] + train[1:2]) / 2              # a copy of that moment of the clip
    assert memorisation.neighbour_ratios(copy, train, groups)[0] < 0.05
    naive = memorisation.neighbour_ratios(copy, train, np.arange(30))[0]   # frame 1 counted as "another"
    assert naive > memorisation.COPY_RATIO


def test_one_group_is_refused():
    with pytest.raises(ValueError, match="two groups"):
        memorisation.neighbour_ratios(np.zeros((2, 4)), np.ones((3, 4)), np.zeros(3))


def test_the_linear_classifier_separates_subjects():
    rng = np.random.default_rng(2)
    f = np.concatenate([rng.standard_normal((50, 20)) + 2, rng.standard_normal((50, 20)) - 2])
    y = np.repeat([0, 1], 50)
    predict = fit_linear_classifier(f, y, 2)
    assert (predict(f) == y).mean() > 0.95
    assert (predict(rng.standard_normal((20, 20)) + 2) == 0).mean() > 0.9


class PixelFeatures:
    """A stand-in for Inception in tests: 8x8 means of the image (seconds instead of minutes)."""

    def features(self, images):
        x = images.astype(np.float64)
        n, h, w, c = x.shape
        return x.reshape(n, 8, h // 8, 8, w // 8, c).mean((2, 4)).reshape(n, -1)


def test_the_teacher_probe_writes_kid_fidelity_and_copies_to_stats(tmp_path, monkeypatch):
    from tests.test_export_loop import FAST
    from export import probe as probe_mod
    from export.train import TrainConfig, train
    from tests.test_export_pipeline import make_footage
    from export.footage import FootageConfig, build_cache

    build_cache([make_footage(tmp_path / "src")], tmp_path / "c.npz",
                FootageConfig(resolution=32, holdout=0.3, dedup_threshold=0))
    real = probe_mod.ValidationProbe.__init__

    def with_pixels(self, *a, **kw):
        real(self, *a, **{**kw, "n": 6, "steps": 3, "extractor": PixelFeatures()})

    monkeypatch.setattr(probe_mod.ValidationProbe, "__init__", with_pixels)
    run = tmp_path / "r"
    train(tmp_path / "c.npz", run, TrainConfig(preset="tiny", batch=4, steps=3, probe_every=1e-9, **FAST),
          progress=False)
    probes = [json.loads(x)["probe"] for x in (run / "stats.jsonl").read_text().splitlines() if '"probe"' in x]
    assert len(probes) == 3
    p = probes[-1]
    assert set(p["kid"]) == {"clip", "fruit", "overall", "validation_mix"} and np.isfinite(p["kid"]["overall"])
    assert all(v is None or np.isfinite(v) for v in p["kid"].values())   # None: under 2 validation images
    assert 0 <= p["fidelity"]["overall"] <= 1 and 0 <= p["memorisation"]["near_copy_share"] <= 1


def test_a_shipped_model_folder_is_probed_through_its_onnx(tmp_path):
    """The probe puts the same question to a model folder (no checkpoint): its ONNX teacher, step by step."""
    from export.footage import FootageConfig, build_cache
    from export.probe import OnnxDenoiser, ValidationProbe
    from tests.test_export_pipeline import make_footage
    from tests.modelmaker import make_model_dir

    build_cache([make_footage(tmp_path / "src")], tmp_path / "c.npz",
                FootageConfig(resolution=16, holdout=0.3, dedup_threshold=0))
    model = OnnxDenoiser(make_model_dir(tmp_path / "m"), "student")   # the stand-in folder has one network
    probe = ValidationProbe(tmp_path / "c.npz", ["clip", "fruit"], tmp_path, n=4, steps=2, extractor=PixelFeatures())
    out = probe(model)
    assert np.isfinite(out["kid"]["overall"]) and 0 <= out["fidelity"]["overall"] <= 1


def test_the_student_probe_samples_as_the_box_does(tmp_path, monkeypatch):
    """The distillation's curve in stats.jsonl: the same probe, with 2 consistency steps."""
    from tests.test_export_loop import FAST
    from export import probe as probe_mod
    from export.distill import DistillConfig, distill
    from export.footage import FootageConfig, build_cache
    from export.train import TrainConfig, train
    from tests.test_export_pipeline import make_footage

    build_cache([make_footage(tmp_path / "src")], tmp_path / "c.npz",
                FootageConfig(resolution=32, holdout=0.3, dedup_threshold=0))
    real = probe_mod.ValidationProbe.__init__
    monkeypatch.setattr(probe_mod.ValidationProbe, "__init__",
                        lambda self, *a, **kw: real(self, *a, **{**kw, "n": 6, "extractor": PixelFeatures()}))
    run = tmp_path / "r"
    teacher = train(tmp_path / "c.npz", run, TrainConfig(preset="tiny", batch=4, steps=2, **FAST), progress=False)
    distill(tmp_path / "c.npz", teacher, run, DistillConfig(batch=4, steps=2, probe_every=1e-9, **FAST),
            progress=False)
    probes = [json.loads(x)["probe"] for x in (run / "stats.jsonl").read_text().splitlines() if '"probe"' in x]
    assert probes and all(p["sampler"] == "consistency 2" for p in probes)
    assert np.isfinite(probes[-1]["kid"]["overall"]) and 0 <= probes[-1]["fidelity"]["overall"] <= 1


def test_the_validation_mix_draws_subjects_in_the_validation_halfs_proportions():
    """A validation half of 20 tomatoes, 2 bananas and no melon: 8 tomatoes, 1 banana, no melon of the
    8 grown a subject (the equal "overall" pool would judge 8 bananas against 2 photographs)."""
    from export.probe import ValidationProbe

    probe = object.__new__(ValidationProbe)
    probe.names, probe.n = ["bananas", "melon", "tomatoes"], 8
    probe.val = types.SimpleNamespace(source=np.array(["tomatoes"] * 20 + ["bananas"] * 2))
    feats = [np.full((8, 4), float(i)) for i in range(3)]
    mix = probe._in_validation_proportions(feats)
    assert sorted(mix[:, 0].tolist()) == [0.0] + [2.0] * 8
