"""Subjects: the model is conditioned on the footage source; the show picks one per visitor by the
configured weights and the idle drift wanders through them."""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.box.conductor import Box
from firmware.clock import FakeClock
from firmware.config.errors import ConfigError
from firmware.config.load import parse_config
from firmware.generate.conditions import Conditions
from firmware.generate.engines import open_engine
from firmware.generate.manifest import ModelError, load_model_dir
from firmware.show.subjects import DRIFT_SEGMENTS_PER_SUBJECT, drift_subject, pick_subject, subject_weights
from modelmaker import edited_copy, make_model_dir
from scenario import run_frames, small_config

NAMES = ("bananas", "melon", "tomatoes")


@pytest.fixture(scope="module")
def subject_model(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("subj") / "m", subjects=NAMES)


def test_weights_follow_the_config_and_name_the_unknown():
    w, unknown = subject_weights({"melon": 3, "tomatoes": 1, "pears": 2}, NAMES)
    assert np.allclose(w, [0, 0.75, 0.25]) and unknown == ["pears"]
    w, _ = subject_weights({}, NAMES)
    assert np.allclose(w, 1 / 3)
    assert subject_weights({"x": 1}, ())[0].size == 0 and pick_subject(np.zeros(0), 3) is None


def test_visitors_are_drawn_by_weight_and_replay_exactly():
    w, _ = subject_weights({"bananas": 1, "melon": 1, "tomatoes": 2}, NAMES)
    picks = [pick_subject(w, v) for v in range(4000)]
    share = np.bincount(picks, minlength=3) / len(picks)
    assert np.allclose(share, [0.25, 0.25, 0.5], atol=0.03)
    assert picks == [pick_subject(w, v) for v in range(4000)]
    only_melon, _ = subject_weights({"melon": 1}, NAMES)
    assert {pick_subject(only_melon, v) for v in range(200)} == {1}


def test_the_drift_wanders_through_every_subject():
    w, _ = subject_weights({}, NAMES)
    seen = [drift_subject(w, j) for j in range(0, 300)]
    assert set(seen) == {0, 1, 2}
    assert seen[:DRIFT_SEGMENTS_PER_SUBJECT] == [seen[0]] * DRIFT_SEGMENTS_PER_SUBJECT  # stays a while


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), st.floats(allow_nan=True, allow_infinity=True),
                       max_size=4))
def test_config_subject_weights_are_checked_at_the_edge(weights):
    ok = all(0 <= w < float("inf") for w in weights.values()) and (not weights or any(w > 0 for w in weights.values()))
    try:
        cfg = parse_config({"show": {"subjects": weights}}, "<hyp>")
    except ConfigError as exc:
        assert not ok and "subjects" in str(exc)
    else:
        assert ok and cfg.show.subjects == weights


def test_the_engine_feeds_the_subject_and_it_changes_the_image(subject_model):
    info = load_model_dir(subject_model)
    assert info.subjects == NAMES
    eng = open_engine(info, "student", "onnxruntime", threads=1)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    a, b = eng.denoise(x, 1.0, Conditions(0.5, 0)), eng.denoise(x, 1.0, Conditions(0.5, 2))
    assert np.abs(a - b).mean() > 0.01
    np.testing.assert_array_equal(eng.denoise(x, 1.0, Conditions(0.5)), a)   # no subject given = the first


def test_each_visitor_grows_their_own_subject(subject_model):
    seen = []

    class Spy:
        def __init__(self, inner):
            self.inner = inner

        def denoise(self, x, s, cond):
            seen.append(cond.subject)
            return self.inner.denoise(x, s, cond)

        def describe(self):
            return "spy"

        def close(self):
            pass

    info = load_model_dir(subject_model)
    cfg = small_config(subject_model, show={"subjects": {"melon": 1}})
    box = Box(cfg, FakeClock(), threaded=False, model=info,
              engine=Spy(open_engine(info, "student", "onnxruntime", threads=1)))
    run_frames(box, 30.0)
    assert seen and set(seen) == {1.0}          # melon only, for the visitor and the drift alike
    box.close()


def test_unknown_configured_subjects_are_a_fault_not_a_stop(subject_model):
    box = Box(small_config(subject_model, show={"subjects": {"pears": 1, "melon": 1}}), FakeClock(), threaded=False)
    assert any("pears" in text for _, text in box.trace.faults)
    run_frames(box, 2.0)
    assert box.frames == 40
    box.close()


@pytest.mark.parametrize("patch,key", [
    (lambda m: m["conditioning"].update(subject={"names": []}), "names"),
    (lambda m: m["conditioning"].update(subject={"names": ["a", "a", "b"]}), "names"),
    (lambda m: m["conditioning"].update(subject={"names": "abc"}), "names"),
    (lambda m: m["conditioning"].pop("subject"), "has 'subject' but conditioning.subject names none"),
    (lambda m: m["networks"]["student"]["inputs"].pop("subject"), "lacks 'subject'"),
    (lambda m: m["networks"]["student"]["inputs"].update(subject=[4]), "inputs.subject"),
])
def test_hostile_subject_manifests_name_the_key(subject_model, tmp_path, patch, key):
    with pytest.raises(ModelError, match=key):
        load_model_dir(edited_copy(subject_model, tmp_path / "m", patch))
