"""Is generated decay new, or the training set played back? The nearest-neighbour ratio test.

For each generated image: d1 = distance to its nearest training image, d2 = distance to the nearest
training image of *another group* (another photograph's object, another tenth of the clip, another
banana). A ratio d1 / d2 below 1/3 means the image sits much closer to one training image than to
anything else: a near-copy (the test of Carlini 2023, Somepalli 2023, Favero 2025). The second
neighbour is taken from another group because neighbouring frames of one time-lapse, or one banana on
consecutive days, are near-copies of each other: within a group, d2 would be as small as d1 and hide the
copy.

Features: InceptionV3 pool3 (the bundled TorchScript of export/inception.py), L2-normalised, so the
distance is a cosine distance in the same space KID is measured in. Nothing is trained on them: they
only judge.
"""
from __future__ import annotations

import numpy as np

COPY_RATIO = 1.0 / 3.0
FEATURES = "InceptionV3 pool3, L2-normalised (export/inception.py)"


def _normalise(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, np.float64)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def neighbour_ratios(gen: np.ndarray, train: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """d1 / d2 per generated feature row (see the module docstring). ``groups``: one label per training
    row. Needs training images of at least two groups."""
    groups = np.asarray(groups)
    if len(set(groups.tolist())) < 2:
        raise ValueError("the memorisation check needs training images of at least two groups")
    g, t = _normalise(gen), _normalise(train)
    d = np.sqrt(np.maximum(2.0 - 2.0 * g @ t.T, 0.0))          # unit vectors: |a-b|^2 = 2 - 2 a.b
    nearest = d.argmin(1)
    d1 = d[np.arange(len(g)), nearest]
    other = groups[None, :] != groups[nearest][:, None]
    d2 = np.where(other, d, np.inf).min(1)
    return d1 / np.maximum(d2, 1e-12)


def report(gen: np.ndarray, train: np.ndarray, groups: np.ndarray) -> dict:
    r = neighbour_ratios(gen, train, groups)
    return {"near_copy_share": float((r < COPY_RATIO).mean()), "ratio_median": float(np.median(r)),
            "ratio_p05": float(np.quantile(r, 0.05)), "images": int(len(r)), "threshold": COPY_RATIO,
            "features": FEATURES, "second_neighbour": "from another group (photo, banana, tenth of a clip)"}
