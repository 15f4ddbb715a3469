"""Distances between sets of features (KID, FID) and how sure we can be of them.

Why a bootstrap. At ~230 reference images KID's own noise is as large as the differences between
our models: the old estimate (mean over random half-subsets, one generated set per model) once
put the 2-step student 6x better than the teacher on one half of the held-out split and 5x worse
on the other. Two things fix that:

- Many more generated images than reference images. The generated side costs only compute, so
  each model gets thousands; then the reference set is what is left of the noise.
- A *paired* bootstrap: every replicate resamples the reference set once and scores every model
  against that same resample, so the ratio KID(student)/KID(teacher) is judged with the noise
  they share cancelled, and gets a confidence interval and a probability of meeting a goal.

The estimator is the full unbiased MMD^2 with KID's cubic polynomial kernel (Binkowski et al.
2018), computed from kernel matrices once; a bootstrap replicate only reweights them. Pairs of
the same original image are left out of the within-set terms (a resample repeats images, and
k(x, x) would otherwise bias the replicate upwards).
"""
from __future__ import annotations

import numpy as np


def poly_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KID's kernel: (a.b / d + 1)^3."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def fid(f1: np.ndarray, f2: np.ndarray) -> float:
    """Frechet distance between Gaussian fits; Tr sqrt(S1 S2) from the eigenvalues of S1 S2
    (real, non-negative in exact arithmetic)."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    ev = np.linalg.eigvals(s1 @ s2)
    tr = np.sqrt(np.clip(ev.real, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr)


def _off_diagonal_mean(k: np.ndarray) -> float:
    """Mean of k[i, j] over i != j: a set's term in the unbiased MMD^2."""
    n = len(k)
    return float((k.sum() - np.trace(k)) / (n * (n - 1)))


def mmd2_unbiased(f1: np.ndarray, f2: np.ndarray) -> float:
    """KID over the whole of both sets: the unbiased MMD^2 with the cubic kernel (no subsets)."""
    return (_off_diagonal_mean(poly_kernel(f1, f1)) + _off_diagonal_mean(poly_kernel(f2, f2))
            - 2 * float(poly_kernel(f1, f2).mean()))


def _within(k: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mean of k[i, j] over pairs i != j of original images, weighted by resample counts w
    [B, n]; one value per replicate."""
    diag = np.diag(k)
    num = np.einsum("bi,ij,bj->b", w, k, w, optimize=True) - (w * w) @ diag
    den = w.sum(1) ** 2 - (w * w).sum(1)
    return num / den


def _counts(g: np.random.Generator, n: int, boots: int) -> np.ndarray:
    """Resample counts [boots, n]. A replicate that drew one image n times has no pair of
    distinct images, so no within-set term (0/0): it is drawn again. That only happens for tiny
    sets (a subject with 4 held-out images: 1.6% of replicates), which are then conditioned on
    holding two distinct images."""
    w = g.multinomial(n, np.full(n, 1.0 / n), size=boots)
    if n >= 2:
        while (bad := (w > 0).sum(1) < 2).any():
            w[bad] = g.multinomial(n, np.full(n, 1.0 / n), size=int(bad.sum()))
    return w.astype(np.float64)


def kid_panel(f_ref: np.ndarray, sets: dict[str, np.ndarray], boots: int = 400, seed: int = 0,
              ratios: dict[str, tuple[str, str]] | None = None, goal: float | None = None) -> dict:
    """KID of each generated set against one reference set, with paired bootstrap statistics.

    Returns {"kid": {name: estimate}, "se": {name: bootstrap std}, "ci90": {name: [lo, hi]},
    "ratio": {label: {"value", "ci90", "p_le_goal", "goal", "excess"}}} where ``ratios`` maps a
    label to (numerator, denominator) set names; ``p_le_goal`` is the share of replicates whose
    ratio is at or below ``goal`` (None without a goal), ``excess`` the estimate and interval of
    KID(num) - goal * KID(den). A ratio replicate with a denominator <= 0 counts as above any goal
    (the denominator is at the floor, so no ratio can be shown); an interval end that is
    unbounded for that reason is None.
    """
    g = np.random.default_rng(seed)
    n_ref = len(f_ref)
    k_rr = poly_kernel(f_ref, f_ref)
    w_ref = _counts(g, n_ref, boots)
    rr_point = _off_diagonal_mean(k_rr)
    rr_boot = _within(k_rr, w_ref)
    point, boot = {}, {}
    for name, f in sets.items():
        if len(f) < 2:
            raise ValueError(f"generated set {name!r} has {len(f)} images; KID needs at least 2")
        k_gg, k_rg = poly_kernel(f, f), poly_kernel(f_ref, f)
        point[name] = rr_point + _off_diagonal_mean(k_gg) - 2 * float(k_rg.mean())
        w_gen = _counts(g, len(f), boots)
        cross = np.einsum("bi,ij,bj->b", w_ref, k_rg, w_gen, optimize=True) / (w_ref.sum(1) * w_gen.sum(1))
        boot[name] = rr_boot + _within(k_gg, w_gen) - 2 * cross
    out = {"kid": point,
           "se": {k: float(np.std(v)) for k, v in boot.items()},
           "ci90": {k: [float(x) for x in np.percentile(v, [5, 95])] for k, v in boot.items()},
           "boots": boots, "ratio": {}}
    for label, (num, den) in (ratios or {}).items():
        if num not in boot or den not in boot:
            continue
        b_num, b_den = boot[num], boot[den]
        r = np.where(b_den > 0, b_num / np.where(b_den > 0, b_den, 1.0), np.inf)
        # Order statistics, not interpolation: replicates at +inf must not turn the bound into nan.
        lo, hi = (float(x) for x in np.quantile(r, [0.05, 0.95], method="inverted_cdf"))
        out["ratio"][label] = {
            "value": point[num] / point[den] if point[den] > 0 else None,
            "ci90": [_finite(lo), _finite(hi)],
            "p_le_goal": None if goal is None else float(np.mean(r <= goal)),
            "goal": goal}
        if goal is not None:
            # The goal as a difference, KID(num) - goal * KID(den) <= 0: no division, so its
            # interval stays finite when the denominator's KID comes near zero.
            ex = b_num - goal * b_den
            out["ratio"][label]["excess"] = {"value": point[num] - goal * point[den],
                                             "ci90": [float(x) for x in np.percentile(ex, [5, 95])]}
    return out


def _finite(x: float) -> float | None:
    """JSON has no infinity: an unbounded interval end is written as null."""
    return x if np.isfinite(x) else None
