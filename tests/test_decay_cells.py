"""Decay drawn within each label's cell (train.decay_cells, DecayDraw): graded footage made continuous."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from export.footage import Dataset  # noqa: E402
from export.train import DecayDraw, decay_cells, draw_batch  # noqa: E402
from tests.test_export_loop import cache  # noqa: E402,F401


def _ds(decay, source):
    n = len(decay)
    return Dataset(np.zeros((n, 4, 4, 3), np.uint8), np.asarray(decay, np.float32), np.asarray(source),
                   np.zeros(n, bool), {})


def test_graded_subjects_get_cells_halfway_to_their_own_neighbours():
    ds = _ds([0, 1 / 3, 2 / 3, 1, 0, 0.5, 1, np.nan], ["b", "b", "b", "b", "t", "t", "t", "t"])
    lo, hi = decay_cells(ds)
    np.testing.assert_allclose(lo, [0, 1 / 6, 1 / 2, 5 / 6, 0, 0.25, 0.75, 0.5], atol=1e-6)
    np.testing.assert_allclose(hi, [1 / 6, 1 / 2, 5 / 6, 1, 0.25, 0.75, 1, 0.5], atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 9) | st.none()), min_size=1, max_size=40))
def test_each_subjects_cells_hold_their_label_and_tile_its_range(rows):
    decay = [np.nan if g is None else g / 9 for _, g in rows]
    ds = _ds(decay, [s for s, _ in rows])
    lo, hi = decay_cells(ds)
    d = np.where(np.isfinite(ds.decay), ds.decay, 0.5)
    assert np.all(lo <= d + 1e-7) and np.all(d <= hi + 1e-7) and np.all(lo >= 0) and np.all(hi <= 1)
    for s in set(ds.source):
        mine = (ds.source == s) & np.isfinite(ds.decay)
        cells = sorted(set(zip(lo[mine].round(6), hi[mine].round(6))))
        if cells:   # no gaps and no overlaps between one subject's cells, from its lowest label to its highest
            assert all(a[1] == b[0] for a, b in zip(cells, cells[1:]))
            assert cells[0][0] == round(float(d[mine].min()), 6) and cells[-1][1] == round(float(d[mine].max()), 6)


def test_a_jittered_draw_stays_in_the_cell_and_spreads_over_it():
    ds = _ds([0.0, 1 / 9, 2 / 9], ["t", "t", "t"])
    images = torch.zeros(3, 3, 4, 4)
    plain, jitter = DecayDraw(ds, "cpu"), DecayDraw(ds, "cpu", jitter=True)
    gen = torch.Generator().manual_seed(0)
    idx = torch.full((2000,), 1)
    got = jitter(idx, gen).numpy()
    assert got.min() >= 1 / 18 - 1e-6 and got.max() <= 3 / 18 + 1e-6 and got.std() > 0.025
    assert torch.equal(plain(idx, gen), torch.full((2000,), 1 / 9))
    _, dec, _ = draw_batch(images, jitter, 500, torch.Generator().manual_seed(1))
    assert len(np.unique(dec.numpy())) > 400          # continuous values, not the three grades
    _, dec, _ = draw_batch(images, plain, 500, torch.Generator().manual_seed(1))
    assert {round(float(v), 5) for v in dec} <= {0.0, round(1 / 9, 5), round(2 / 9, 5)}


def test_a_teacher_trained_with_jitter_is_fed_other_decays(cache, tmp_path):  # noqa: F811
    from export.train import TrainConfig, train
    from tests.test_export_loop import FAST, _load

    runs = {j: _load(train(cache, tmp_path / str(j), TrainConfig(preset="tiny", batch=4, steps=3, decay_jitter=j,
                                                                   **FAST), progress=False)) for j in (False, True)}
    assert runs[True]["train"]["decay_jitter"] is True
    assert any(not torch.equal(runs[True]["model"][k], runs[False]["model"][k]) for k in runs[False]["model"])
