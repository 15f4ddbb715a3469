"""KID with paired-bootstrap intervals (export/metrics.py) on sets whose answer is known."""
from __future__ import annotations

import json

import numpy as np
import pytest

from export.metrics import _within, kid_panel, mmd2_unbiased, poly_kernel


def gauss(n, shift=0.0, seed=0, d=16):
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


def test_unbiased_mmd_matches_the_pairwise_definition():
    a, b = gauss(7, seed=1), gauss(9, 0.3, seed=2)
    d = a.shape[1]
    k = lambda x, y: (x @ y / d + 1) ** 3  # noqa: E731
    aa = np.mean([k(a[i], a[j]) for i in range(7) for j in range(7) if i != j])
    bb = np.mean([k(b[i], b[j]) for i in range(9) for j in range(9) if i != j])
    ab = np.mean([k(x, y) for x in a for y in b])
    assert mmd2_unbiased(a, b) == pytest.approx(aa + bb - 2 * ab, rel=1e-12)
    # The panel's point estimate is the same estimator, from the kernels it keeps for the bootstrap.
    assert kid_panel(a, {"b": b}, boots=5)["kid"]["b"] == pytest.approx(mmd2_unbiased(a, b), rel=1e-12)


def test_reweighting_leaves_out_pairs_of_the_same_image():
    x = gauss(5, seed=3)
    k = poly_kernel(x, x)
    ones = np.ones((1, 5))
    assert _within(k, ones)[0] == pytest.approx((k.sum() - np.trace(k)) / 20)
    # Image 0 drawn twice, image 4 not at all: the (0, 0) pair must not count.
    w = np.array([[2.0, 1, 1, 1, 0]])
    pairs = [(i, j) for i in range(5) for j in range(5) if i != j]
    want = sum(w[0, i] * w[0, j] * k[i, j] for i, j in pairs) / sum(w[0, i] * w[0, j] for i, j in pairs)
    assert _within(k, w)[0] == pytest.approx(want)


def test_panel_orders_models_and_judges_the_ratio_goal():
    ref = gauss(200, seed=10)
    sets = {"same": gauss(800, seed=11), "near": gauss(800, 0.15, seed=12), "far": gauss(800, 0.4, seed=13)}
    p = kid_panel(ref, sets, boots=300, seed=0, goal=1.25,
                  ratios={"near/far": ("near", "far"), "far/near": ("far", "near"), "x/missing": ("near", "nope")})
    assert p["kid"]["same"] < p["kid"]["near"] < p["kid"]["far"]
    assert p["ci90"]["same"][0] < 0 < p["ci90"]["same"][1]  # same distribution: zero is inside
    assert p["ci90"]["far"][0] > 0  # a real shift: zero is outside
    for name, (lo, hi) in p["ci90"].items():
        assert lo <= p["kid"][name] <= hi, name
    near_far, far_near = p["ratio"]["near/far"], p["ratio"]["far/near"]
    assert near_far["value"] < 0.5 and near_far["p_le_goal"] > 0.95
    assert far_near["value"] > 2 and far_near["p_le_goal"] < 0.05
    assert near_far["ci90"][0] <= near_far["value"] <= near_far["ci90"][1]
    ex = near_far["excess"]
    assert ex["value"] == pytest.approx(p["kid"]["near"] - 1.25 * p["kid"]["far"]) and ex["ci90"][1] < 0
    assert far_near["excess"]["ci90"][0] > 0


def test_ratio_over_a_kid_at_zero_is_unbounded_not_nan():
    ref = gauss(100, seed=30)
    p = kid_panel(ref, {"off": gauss(400, 0.3, seed=31), "same": gauss(400, seed=32)}, boots=200, seed=1,
                  ratios={"off/same": ("off", "same")}, goal=1.25)
    r = p["ratio"]["off/same"]
    assert r["ci90"][1] is None and r["p_le_goal"] < 0.5  # "same" is at zero in many replicates
    assert json.loads(json.dumps(p)) == p  # plain JSON: no NaN or Infinity
    assert "x/missing" not in p["ratio"]


def test_panel_is_reproducible_and_rejects_a_set_too_small():
    ref, s = gauss(50, seed=20), {"a": gauss(60, 0.2, seed=21)}
    assert kid_panel(ref, s, boots=50, seed=4) == kid_panel(ref, s, boots=50, seed=4)
    with pytest.raises(ValueError, match="'tiny'"):
        kid_panel(ref, {"tiny": gauss(1)}, boots=10)


def test_tiny_sets_give_finite_intervals():
    """Two or four images (a rare subject's held-out photographs): no replicate may be all one
    image, which has no within-set pair and would make the interval NaN."""
    p = kid_panel(gauss(2, seed=40), {"a": gauss(4, 0.5, seed=41), "b": gauss(3, seed=42)}, boots=400, seed=2,
                  ratios={"a/b": ("a", "b")}, goal=1.25)
    for name in ("a", "b"):
        assert np.isfinite(p["se"][name]) and all(np.isfinite(p["ci90"][name])), name
    assert all(np.isfinite(p["ratio"]["a/b"]["excess"]["ci90"]))
