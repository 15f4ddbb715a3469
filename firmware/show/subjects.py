"""Which subject (footage source the model was conditioned on) each visitor and the idle drift get.

Pure: the configured weights and the model's subject names in, an index per visitor or drift
segment out, the same for the same key, so a recorded rehearsal replays exactly.
"""
from __future__ import annotations

import numpy as np

DRIFT_SEGMENTS_PER_SUBJECT = 3   # the idle walk keeps one subject for this many slerp segments


def subject_weights(configured: dict[str, float], names: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """Normalised weights over the model's subjects, and the configured names it does not have.

    Nothing configured (or nothing configured that the model has) means every subject equally."""
    if not names:
        return np.zeros(0), sorted(configured)
    unknown = sorted(set(configured) - set(names))
    w = np.array([float(configured.get(n, 0.0)) for n in names]) if configured else np.ones(len(names))
    if w.sum() <= 0:
        w = np.ones(len(names))
    return w / w.sum(), unknown


def pick_subject(weights: np.ndarray, key: int, stream: int = 0) -> int | None:
    """The subject for one visitor (key = visitor number) or drift stretch (stream 1); None without
    subjects."""
    if len(weights) == 0:
        return None
    u = np.random.default_rng([0x5B1EC7, stream, abs(int(key))]).random()
    return int(min(np.searchsorted(np.cumsum(weights), u, side="right"), len(weights) - 1))


def drift_subject(weights: np.ndarray, segment: int) -> int | None:
    """The idle drift wanders through the subjects, one every few segments of its walk."""
    return pick_subject(weights, segment // DRIFT_SEGMENTS_PER_SUBJECT, stream=1)
