import json
import shutil

import numpy as np
import pytest

from firmware.generate.conditions import Conditions
from firmware.generate.engine_interface import EngineError
from firmware.generate.engines import open_engine
from firmware.generate.manifest import ModelError, load_model_dir
from firmware.generate.sampler import sample
from firmware.generate.worker import GenerationWorker, VisitorJob, seeded_sigmas, slerp
from modelmaker import edited_copy


def test_manifest_loads_and_checks_sha(tiny_model, tmp_path):
    m = load_model_dir(tiny_model)
    assert m.resolution == (32, 32) and m.network("student").sigmas(2) == (80.0, 0.8)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    with open(broken / "student.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match=r"networks.student.sha256: student.onnx has sha256"):
        load_model_dir(broken)


@pytest.mark.parametrize("edit,match", [
    (lambda m: m.pop("format"), "missing key 'format'"),
    (lambda m: m["networks"]["student"].update(sampler="ddim"), "sampler: 'ddim' is not allowed"),
    (lambda m: m["networks"]["student"]["steps"].update({"2": [0.8, 80.0]}), "steps.2: expected 2 positive, strictly decreasing"),
    (lambda m: m["networks"]["student"].update(default_steps=3), "default_steps: 3"),
    (lambda m: m["networks"]["student"]["inputs"].pop("decay"), "missing input 'decay'"),
])
def test_manifest_errors_name_the_key(tiny_model, tmp_path, edit, match):
    with pytest.raises(ModelError, match=match):
        load_model_dir(edited_copy(tiny_model, tmp_path / "m", edit))


def test_sampler_uses_exactly_the_manifest_sigmas(tiny_model):
    m = load_model_dir(tiny_model)
    net = m.network("student")
    engine = open_engine(m, "student", "onnxruntime")
    for steps in (1, 2, 4):
        seen = []
        def denoise(x, s, cond):
            seen.append(s)
            return engine.denoise(x, s, cond)
        eps = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
        final, preds = sample(denoise, net.sigmas(steps), eps, net.sampler, Conditions(0.5))
        assert tuple(seen) == net.sigmas(steps)
        assert len(preds) == steps and final.shape == (1, 3, 32, 32)


def test_consistency_re_noising_keeps_the_input_noise_as_the_manifest_asks(tiny_model, tmp_path):
    """fresh_noise 1: Song et al.'s fresh noise, as before; 0: each re-noising reuses the noise the step's
    input held, (x - x0) / sigma, so the image stays on one path; in between, a unit-variance blend."""
    def denoise(x, s, cond):              # a made-up denoiser: any x0 that is not x itself
        seen.append((x.copy(), s))
        return (0.5 * np.tanh(x / (1.0 + s))).astype(np.float32)

    eps = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    sig = (80.0, 2.0, 0.5)
    runs = {}
    for fresh in (1.0, 0.0, 0.6):
        seen = []
        sample(denoise, sig, eps, "consistency", None, rng=np.random.default_rng(5), fresh=fresh)
        runs[fresh] = seen
    seen = []
    sample(denoise, sig, eps, "consistency", None, rng=np.random.default_rng(5))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(seen, runs[1.0]))         # the default, bit for bit
    z = np.random.default_rng(5).standard_normal((2, 1, 3, 8, 8)).astype(np.float32)  # what rng gives
    for fresh, calls in runs.items():
        assert [s for _, s in calls] == list(sig)
        for i in (1, 2):
            x_prev, s_prev = calls[i - 1]
            x0 = denoise(x_prev, s_prev, None)
            kept = (x_prev - x0) / s_prev
            want = x0 + sig[i] * (fresh * z[i - 1] + np.sqrt(1 - fresh ** 2) * kept)
            np.testing.assert_allclose(calls[i][0], want, atol=1e-5)
    assert not np.allclose(runs[0.0][1][0], runs[1.0][1][0])
    # The box reads the share from the manifest and the worker passes it on.
    m = edited_copy(tiny_model, tmp_path / "m", lambda mf: mf["networks"]["student"].update(fresh_noise=0.0))
    assert load_model_dir(m).network("student").fresh == 0.0 and load_model_dir(tiny_model).network("student").fresh == 1.0


def test_heun_sampler_matches_hand_computation():
    # D(x, s) = x / (1 + s^2) is the exact denoiser for x0 ~ N(0, 1): the ODE has a closed form.
    denoise = lambda x, s, cond: x / (1.0 + s * s)
    eps = np.ones((1, 1, 2, 2), np.float32)
    sig = np.geomspace(80, 0.01, 60)
    final, _ = sample(denoise, sig, eps, "heun")
    # x(sigma) = x(s0) * sqrt(1 + sigma^2) / sqrt(1 + s0^2); at sigma=0: 80 / sqrt(6401)
    assert final[0, 0, 0, 0] == pytest.approx(80 / np.sqrt(1 + 80 ** 2), rel=2e-2)


def test_engine_reference_guard_rejects_a_nan_model(tmp_path):
    from modelmaker import make_model_dir
    d = make_model_dir(tmp_path / "nan", nan=True)
    m = load_model_dir(d)
    engine = open_engine(m, "student", "onnxruntime")  # no reference pair: loads
    out = engine.denoise(np.zeros((1, 3, 32, 32), np.float32), 1.0, Conditions(0.5))
    assert np.isnan(out).all()
    # With a reference pair that the engine cannot reproduce, the engine is refused.
    good = make_model_dir(tmp_path / "good")
    ref = np.load(good / "reference.npz")
    np.savez(d / "reference.npz", **{k: ref[k] for k in ref.files})
    raw = json.loads((d / "manifest.json").read_text())
    raw["networks"]["student"]["reference"] = {"output": "reference.npz", "atol": 1e-3}
    (d / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(EngineError, match="NaN"):
        open_engine(load_model_dir(d), "student", "onnxruntime")


def test_engine_auto_falls_back_to_onnxruntime_without_tensorrt(tiny_model):
    engine = open_engine(load_model_dir(tiny_model), "student", "auto")
    assert engine.kind == "onnxruntime" and "CPUExecutionProvider" in engine.providers
    with pytest.raises(EngineError, match="TensorRT is not available"):
        open_engine(load_model_dir(tiny_model), "student", "tensorrt")


def test_worker_publishes_every_step_and_survives_a_failing_engine(tiny_model):
    m = load_model_dir(tiny_model)
    engine = open_engine(m, "student", "onnxruntime")
    w = GenerationWorker(engine, threaded=False)
    eps = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    w.submit_visitor(VisitorJob(1, eps, (80.0, 2.0, 0.8, 0.3), "consistency", Conditions(0.5)))
    w.process_pending()
    r = w.visitor_result.get()
    assert r.done and r.failed is None and len(r.preds) == 4 and w.images_done == 2
    assert not np.allclose(r.preds[0], r.preds[-1])

    class Broken:
        def denoise(self, *a):
            raise RuntimeError("CUDA error: an illegal memory access")
        def close(self):
            pass
    w2 = GenerationWorker(Broken(), threaded=False)
    w2.submit_visitor(VisitorJob(2, eps, (80.0,), "consistency", Conditions(0.5)))
    w2.process_pending()
    assert w2.visitor_result.get().failed and not w2.health.ok


def test_seeded_sigmas_and_slerp():
    assert seeded_sigmas((80.0, 0.8), 0.0, 80.0) == (80.0, 0.8)
    s = seeded_sigmas((80.0, 2.0, 0.8, 0.3), 0.6, 80.0)
    assert s[0] < 80.0 and list(s) == sorted(s, reverse=True)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(4096), rng.standard_normal(4096)
    mid = slerp(a, b, 0.5)
    assert np.linalg.norm(mid) == pytest.approx(np.linalg.norm(a), rel=0.05)
