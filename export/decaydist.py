"""Per-source decay distributions: recorded in the manifest, drawn from by `sample`.

The show and `sample` should grow images with the decay values the data has, not one fixed
value: the tomato grades, for example, are 45% grade 0. A distribution is recorded as K = 100
quantiles of the source's training decay values at (i + 0.5) / K (the inverted CDF, so every
value is one the data holds); drawing one of the K uniformly at random draws from the data's
distribution to 1% resolution, discrete (tomato grades, banana stages) or continuous
(time-lapse positions) alike. A 10-bin histogram and the image counts are recorded beside it
for people. numpy only: the firmware side (export/sample.py) reads it without torch.
"""
from __future__ import annotations

import numpy as np

QUANTILES = 100
KEY = "decay_distribution"


def describe(decay: np.ndarray, heldout: np.ndarray, source: np.ndarray) -> dict:
    """The manifest block, from a cache's per-image decay (NaN = unknown), split and source tag;
    the distribution is the training split's."""
    out = {"quantiles": QUANTILES, "split": "training", "by_source": {},
           "how": f"per source: {QUANTILES} quantiles of its training decay values at (i + 0.5) / {QUANTILES} "
                  f"(inverted CDF); drawing one uniformly at random draws from the data"}
    for s in sorted(set(source.tolist())):
        m = source == s
        d = decay[m & ~heldout]
        d = d[np.isfinite(d)]
        entry = {"images": {"train": int((m & ~heldout).sum()), "heldout": int((m & heldout).sum())},
                 "decay_known": int(len(d))}
        if len(d):
            q = np.quantile(d, (np.arange(QUANTILES) + 0.5) / QUANTILES, method="inverted_cdf")
            counts, edges = np.histogram(d, bins=10, range=(0.0, 1.0))
            entry.update({"decay_quantiles": [round(float(v), 4) for v in q],
                          "decay_mean": round(float(d.mean()), 4),
                          "histogram": {"edges": [round(float(e), 2) for e in edges],
                                        "counts": [int(c) for c in counts]}})
        out["by_source"][s] = entry
    return out


def draw(block: dict, n: int, rng: np.random.Generator, where: str = "manifest") -> tuple[np.ndarray, list[str]]:
    """n (decay, source) draws: sources in equal proportion (none swamps the others; what the show
    does without a subject), each decay from its source's recorded quantiles. Sources without
    known decay are skipped; none at all is an error naming the key."""
    by = (block or {}).get("by_source") or {}
    usable = {s: e["decay_quantiles"] for s, e in by.items() if e.get("decay_quantiles")}
    if not usable:
        raise ValueError(f"{where}: no '{KEY}.by_source.*.decay_quantiles' to draw decay values from; pass --decay "
                       f"or record them with `humus-export decay-dist --model DIR --cache CACHE`")
    names = sorted(usable)
    src = [names[i] for i in rng.integers(len(names), size=n)]
    dec = np.array([usable[s][rng.integers(len(usable[s]))] for s in src], np.float32)
    return dec, src
