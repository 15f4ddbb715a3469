"""`evaluate`'s generated sets (export/quality.py): what the model is asked for is what is judged."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from modelmaker import make_model_dir  # noqa: E402


def test_evaluate_asks_a_subject_model_for_each_subject_it_judges(tmp_path):
    """Each subject's generated set is grown *as that subject*: the sets evaluate judges per subject are
    what the model makes when asked for it (once every set was grown as the model's first subject, so a
    model that had learnt its subjects was judged on bananas against tomato photographs)."""
    from export.footage import Dataset
    from export.quality import generate_sets
    from export.sample import Generator

    names = ("bananas", "melon", "tomatoes")
    model = make_model_dir(tmp_path / "m", side=32, subjects=names)
    src = np.array(["tomatoes"] * 4 + ["bananas"] * 4 + ["pears"] * 4)   # pears: a subject the model lacks
    full = Dataset(np.zeros((12, 32, 32, 3), np.uint8), np.linspace(0, 1, 12).astype(np.float32), src,
                   np.zeros(12, bool), {})
    sched = {s: {"total": 3} for s in ("bananas", "pears", "tomatoes")}
    sets = generate_sets(model, full, sched, [("student", 2)], seed=5)
    gen = Generator(model)
    for i, s in enumerate(sched):
        asked = names.index(s) if s in names else None
        want = gen.generate_many(3, 2, decay=sets[s]["decay"], seed=5 + 1 + i, subject=asked)
        assert np.array_equal(sets[s]["images"]["student_2"], want), s
    # The sets differ by subject, not only by their decay draws.
    same_decay = gen.generate_many(3, 2, decay=sets["tomatoes"]["decay"], seed=5 + 1 + 2, subject=0)
    assert not np.array_equal(sets["tomatoes"]["images"]["student_2"], same_decay)
