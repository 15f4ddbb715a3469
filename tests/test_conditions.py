"""Conditions: one value from the show to the network, turned into the input feed in one place."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware.generate.conditions import Conditions, show_conditions
from firmware.generate.engine_interface import Engine, EngineError
from firmware.generate.manifest import NetworkInfo
from firmware.generate.worker import DriftJob, GenerationWorker, VisitorJob
from firmware.soak.faults import FaultyEngine


def _net(*conditions: str, batch: int = 2) -> NetworkInfo:
    inputs = {"x": (batch, 3, 4, 4), "sigma": (batch,), **{k: (batch,) for k in conditions}}
    return NetworkInfo(name="student", path=Path("student.onnx"), sha256="0" * 64, batch=batch,
                       inputs=inputs, outputs={"denoised": inputs["x"]}, sampler="consistency",
                       steps={1: (80.0,)}, default_steps=1, reference=None)


class Feeds(Engine):
    """Records every feed the engine would hand its runtime."""

    def __init__(self, net):
        super().__init__(net)
        self.feeds = []

    def _run(self, feed):
        self.feeds.append({k: v.copy() for k, v in feed.items()})
        return feed["x"] * 0.5


def test_a_new_condition_in_the_manifest_reaches_the_network_by_name():
    """An input the box has never heard of ('light') is fed from the conditions with no signature
    changed on the way; a network without subjects never sees one."""
    e = Feeds(_net("decay", "light"))
    x = np.ones((3, 3, 4, 4), np.float32)        # 3 images at batch 2: split and padded
    e.denoise(x, np.array([1.0, 2.0, 3.0]), Conditions(0.25, subject=2, extra=(("light", 0.75),)))
    first, padded = e.feeds
    assert set(first) == {"x", "sigma", "decay", "light"}
    assert list(first["light"]) == [0.75, 0.75] and list(first["decay"]) == [0.25, 0.25]
    # the pad's sigma is 1 (the preconditioning divides by it), its conditions 0
    assert list(padded["sigma"]) == [3.0, 1.0] and list(padded["light"]) == [0.75, 0.0]
    assert all(v.dtype == np.float32 and v.flags.c_contiguous for f in e.feeds for v in f.values())


def test_a_subject_index_becomes_the_float_the_network_takes_and_none_means_the_first():
    e = Feeds(_net("decay", "subject", batch=1))
    x = np.zeros((1, 3, 4, 4), np.float32)
    e.denoise(x, 2.0, Conditions(0.5, subject=2))
    e.denoise(x, 2.0, Conditions(0.5))
    assert [f["subject"].tolist() for f in e.feeds] == [[2.0], [0.0]]


def test_an_input_the_conditions_do_not_give_is_a_clear_error():
    e = Feeds(_net("decay", "light"))
    with pytest.raises(EngineError, match=r"no value for input\(s\) \['light'\]"):
        e.denoise(np.zeros((2, 3, 4, 4), np.float32), 1.0, Conditions(0.5))


def test_conditions_from_a_reference_pair_round_trip():
    named = {"decay": np.array([0.3], np.float32), "subject": np.array([1.0], np.float32),
             "light": np.array([0.9], np.float32)}
    got = Conditions.from_inputs(named).inputs()
    assert got.keys() == named.keys() and all(got[k] is named[k] for k in named)


def test_show_conditions_resolve_a_named_subject_once():
    subjects = ("bananas", "melon", "tomatoes")
    assert show_conditions(0.4, "tomatoes", subjects) == Conditions(0.4, 2)
    assert show_conditions(0.4, "pears", subjects) == Conditions(0.4, None)   # the planner draws one
    assert show_conditions(0.4, "melon", ()) == Conditions(0.4, None)


def test_the_worker_and_fault_injection_pass_the_conditions_through_untouched():
    """The regression of issue 22: the soak's engine proxy had a signature of its own and every
    generation under the soak failed. Now the one value goes from the job to the engine as it is."""
    seen = []

    class Spy:
        def denoise(self, x, sigma, cond):
            seen.append(cond)
            return np.tanh(x)

        def describe(self):
            return "spy"

        def close(self):
            pass

    w = GenerationWorker(FaultyEngine(Spy()), threaded=False)
    cond = Conditions(0.7, subject=1, extra=(("light", 0.2),))
    eps = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    w.submit_visitor(VisitorJob(1, eps, (80.0, 2.0), "consistency", cond))
    w.process_pending()
    w.submit_drift(DriftJob(0.5, eps, (80.0,), "consistency", cond))
    w.process_pending()
    assert w.visitor_result.get().failed is None and w.images_done == 2 and w.health.ok
    assert len(seen) == 3 and all(c is cond for c in seen)


def test_the_decay_is_snapped_to_what_the_chosen_subject_was_trained_on(tmp_path):
    """A network that saw tomatoes only at grades k/9 grows melon skin between them: the box asks for the
    subject's nearest training value. The shipped manifest's tomatoes are the 1/9 grid; a subject without
    values, no subject, or per-image decays are left as asked; hostile quantiles refuse the model."""
    from firmware.generate.conditions import snap_decay
    from firmware.generate.manifest import ModelError, load_model_dir
    from modelmaker import edited_copy, make_model_dir

    shipped = load_model_dir(Path(__file__).resolve().parents[1] / "models" / "default")
    tomatoes = shipped.subjects.index("tomatoes")
    assert shipped.decay_support[tomatoes] == tuple(round(k / 9, 4) for k in range(10))
    assert snap_decay(Conditions(0.6, tomatoes), shipped.decay_support) == Conditions(0.5556, tomatoes)
    support = {0: (0.0, 0.5, 1.0)}
    assert snap_decay(Conditions(0.7, 0), support).decay == 0.5
    assert snap_decay(Conditions(0.8, 0), support).decay == 1.0
    assert snap_decay(Conditions(0.7, 1), support).decay == 0.7          # no values known for it
    assert snap_decay(Conditions(0.7, None), support).decay == 0.7
    per_image = Conditions(np.array([0.7, 0.2], np.float32), 0)
    assert snap_decay(per_image, support) is per_image
    model = make_model_dir(tmp_path / "m", side=32)
    bad = edited_copy(model, tmp_path / "bad", lambda m: m.update(
        decay_distribution={"by_source": {"x": {"decay_quantiles": [0.1, 1.5]}}}))
    with pytest.raises(ModelError, match=r"decay_distribution.*decay_quantiles"):
        load_model_dir(bad)
