"""`humus-export upsampler-judge`: the cascade's stage alone, on real photographs shrunk and enlarged again."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from export import cli  # noqa: E402
from export.footage import TEST, TRAIN, VALIDATION  # noqa: E402
from export.upsampler_judge import enlarge_with_stage, judge_upsamplers, open_stage, shrink, table  # noqa: E402
from modelmaker import add_upsampler, make_model_dir  # noqa: E402


def _stripes(rng, side: int, period: int) -> np.ndarray:
    """Sharp vertical stripes of a random colour pair: detail that a 4x shrink destroys."""
    a, b = rng.integers(0, 256, (2, 3))
    cols = (np.arange(side) // period) % 2
    return np.where(cols[None, :, None] == 1, a, b).astype(np.uint8).repeat(side, 0).reshape(side, side, 3)


def _cache(path, side: int = 128) -> None:
    """Two subjects; "stripes" has train and test photographs, "rare" only training ones (no figure)."""
    rng = np.random.default_rng(0)
    images, source, part = [], [], []
    for s, n_train, n_test in (("stripes", 10, 6), ("rare", 4, 0)):
        for k in range(n_train + n_test + 2):
            images.append(_stripes(rng, side, 2 if s == "stripes" else 8))
            source.append(s)
            part.append(TRAIN if k < n_train else TEST if k < n_train + n_test else VALIDATION)
    part = np.array(part, np.int8)
    np.savez_compressed(path, images=np.stack(images), decay=np.full(len(images), 0.5, np.float32),
                        source=np.array(source), heldout=part != TRAIN, part=part,
                        group=np.array([f"g{i}" for i in range(len(images))]), summary=json.dumps({}))


class HighFrequency:
    """A stand-in for Inception in these tests: mean colour and the energy of pixel-to-pixel steps,
    which is exactly what enlarging a shrunk photograph loses."""

    kind = "test features"

    def features(self, images: np.ndarray) -> np.ndarray:
        x = images.astype(np.float64) / 255.0
        steps = np.abs(np.diff(x, axis=2)).mean(axis=(1, 2))
        return np.concatenate([x.mean(axis=(1, 2)), 4 * steps], axis=1)


def test_shrink_averages_blocks_in_the_value_range():
    img = np.zeros((1, 8, 8, 3), np.uint8)
    img[0, :4, :4] = 255                      # one white 4x4 block
    small = shrink(img, 4)
    assert small.shape == (1, 3, 2, 2) and small.dtype == np.float32
    np.testing.assert_allclose(small[0, :, 0, 0], 1.0)
    np.testing.assert_allclose(small[0, :, 1, 1], -1.0)
    np.testing.assert_allclose(shrink(img, 4, (0.0, 1.0))[0, :, 0, 0], 1.0)
    with pytest.raises(ValueError, match="6x6 images do not shrink by 4"):
        shrink(np.zeros((1, 6, 6, 3), np.uint8), 4)


def test_the_stage_is_judged_on_what_it_adds(tmp_path):
    model = add_upsampler(make_model_dir(tmp_path / "m", side=32))
    cache = tmp_path / "c128.npz"
    _cache(cache)
    lines = []
    res = judge_upsamplers([model], cache, per_subject=8, boots=20, extractor=HighFrequency(), log=lines.append)
    assert set(res) == {"stripes"}            # "rare" has no test photographs: no figure, not a zero
    r = res["stripes"]
    assert r["samples"] == {"reference": 6, "photographs": 8, "half": "test"}
    kid = r["kid"]
    assert set(kid) == {"photographs", "bicubic", str(model)}
    # Period-2 stripes shrink to flat colour: neither enlargement brings them back, the photographs do.
    assert kid["photographs"] < kid["bicubic"] and kid["photographs"] < kid[str(model)]
    assert lines and lines[0].startswith("stripes: ")
    # The stage really ran, through the firmware: its own output on the same small images.
    small = shrink(np.stack([_stripes(np.random.default_rng(3), 128, 2)]), 4)
    sess = ort.InferenceSession(str(model / "upsampler.onnx"), providers=["CPUExecutionProvider"])
    want = sess.run(["upsampled"], {"image": small})[0]
    from firmware.generate.manifest import load_model_dir
    got = enlarge_with_stage(open_stage(load_model_dir(model)), small)
    expect = np.round((np.clip(want, -1, 1) + 1) / 2 * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    assert np.array_equal(got, expect)
    md = table(res, [str(model)])
    assert md.splitlines()[0] == f"| subject | photographs | bicubic | {model} |"
    assert md.splitlines()[2].startswith("| stripes (6 test) | ")


def test_an_ablation_is_judged_on_the_validation_half(tmp_path, capsys):
    """Choosing between stages reads the validation half (2 photographs of each subject here, "rare"
    included); the test half is kept for the shipping decision."""
    model = add_upsampler(make_model_dir(tmp_path / "m", side=32))
    cache = tmp_path / "c128.npz"
    _cache(cache)
    res = judge_upsamplers([model], cache, per_subject=8, boots=20, extractor=HighFrequency(), log=lambda s: None,
                           half="validation")
    assert set(res) == {"stripes", "rare"}
    assert res["stripes"]["samples"] == {"reference": 2, "photographs": 8, "half": "validation"}
    assert any(line.startswith("| stripes (2 validation) | ") for line in table(res, [str(model)]).splitlines())
    with pytest.raises(ValueError, match="held-out part must be 'validation' or 'test'"):
        judge_upsamplers([model], cache, half="training", extractor=HighFrequency())
    with pytest.raises(SystemExit) as e:
        cli.main(["upsampler-judge", "--model", str(model), "--cache", str(cache), "--half", "train"])
    assert e.value.code == 2
    assert "invalid choice: 'train'" in capsys.readouterr().err


def test_cli_refuses_a_cache_at_another_side_and_a_model_without_a_stage(tmp_path, capsys):
    model = add_upsampler(make_model_dir(tmp_path / "m", side=32))
    plain = make_model_dir(tmp_path / "plain", side=32)
    cache = tmp_path / "c64.npz"
    _cache(cache, side=64)
    assert cli.main(["upsampler-judge", "--model", str(model), "--cache", str(cache)]) == 2
    assert f"{cache}: holds 64x64 photographs but {model} makes 128x128" in capsys.readouterr().err
    assert cli.main(["upsampler-judge", "--model", str(plain), "--cache", str(cache)]) == 2
    assert f"{plain}: manifest.json has no stages.upsampler to judge" in capsys.readouterr().err



def test_the_manifest_names_the_recipe_a_stage_was_trained_with():
    from export.upsampler import recipe

    assert recipe({}) == "4x residual CNN over bilinear, L1 on footage crops, subjects balanced (export/upsampler.py)"
    r = recipe({"perceptual": 0.5, "adversarial": 0.02, "adversarial_after": 200, "blur": 0.5,
                "student_share": 0.3, "student_model": "m", "init_onnx": "models/default"})
    assert "L1 + 0.5 x random-feature L1 + 0.02 x patch GAN (from step 200)" in r
    assert "inputs blurred up to 0.5 px, 30% made by the student of m" in r and "started from models/default" in r


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30) | st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5).map(
    lambda xs: ",".join(map(str, xs))))
def test_detail_gains_from_the_command_line_are_checked_once(text):
    """`detail-gain --gains`: any text is a sorted tuple of gains in 0.5-8, or a ValueError naming the item."""
    from export.detail_gain import parse_gains

    try:
        gains = parse_gains(text)
    except ValueError as e:
        assert str(e).startswith("--gains: ") and ("is not a number" in str(e) or "is outside 0.5-8" in str(e))
    else:
        assert gains and list(gains) == sorted(set(gains)) and all(0.5 <= g <= 8.0 for g in gains)
