"""The shipped model (models/default) honours models/MANIFEST.md, byte for byte."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

MODEL = Path(__file__).resolve().parents[1] / "models" / "default"
pytestmark = pytest.mark.skipif(not (MODEL / "manifest.json").exists(), reason="models/default not built yet")


@pytest.fixture(scope="module")
def mf():
    return json.loads((MODEL / "manifest.json").read_text())


def test_manifest_schema(mf):
    assert mf["format"] == "humus-model/1" and mf["name"] == "default"
    h, w = mf["resolution"]
    assert h >= 64 and w >= 64 and mf["channels"] == 3 and mf["value_range"] == [-1.0, 1.0]
    assert mf["precond"] == {**mf["precond"], "kind": "edm", "sigma_data": 0.5}
    assert mf["conditioning"]["decay"]["range"] == [0.0, 1.0]
    st, te = mf["networks"]["student"], mf["networks"]["teacher"]
    assert st["sampler"] == "consistency" and te["sampler"] == "heun"
    assert {"1", "2", "4"} <= set(st["steps"]) and st["default_steps"] == 2
    for k, sig in st["steps"].items():
        assert len(sig) == int(k) and sig[0] == mf["precond"]["sigma_max"]
        assert all(a > b > 0 for a, b in zip(sig, sig[1:]))
        assert all(float(str(np.float32(s))) == s for s in sig)  # shortest float32 decimals
    assert len(te["steps"]["35"]) == 35 and te["default_steps"] >= 35
    subjects = mf["conditioning"]["subject"]["names"]
    assert subjects == sorted(mf["data_summary"]["sources"])           # one per footage source
    for net in (st, te):
        assert net["batch"] == 1
        assert net["inputs"] == {"x": [1, 3, h, w], "sigma": [1], "decay": [1], "subject": [1]}
        assert net["outputs"] == {"denoised": [1, 3, h, w]}
        assert net["parity_max_abs_diff"] < 1e-3
    up = mf["stages"]["upsampler"]
    assert up["inputs"] == {"image": [1, 3, h, w]} and up["outputs"] == {"upsampled": [1, 3, 4 * h, 4 * w]}
    m = mf["metrics"]   # measured as the wall shows it: at the cascade's output resolution
    assert m["resolution"] == [4 * h, 4 * w]
    assert "InceptionV3" in m["features"]["kind"] and m["features"]["dim"] == 2048
    for key in ("teacher_35", "student_1", "student_2", "student_4", "floor_train", "floor_validation"):
        assert np.isfinite(m["kid"][key]), key
        lo, hi = m["kid_ci90"][key]
        assert lo <= m["kid"][key] <= hi, key
    assert set(m["by_subject"]) == set(subjects)
    for name in subjects:  # the grid a viewer looks at, per subject
        assert (MODEL / "eval" / f"grid_{name}.jpg").stat().st_size > 10_000
    # The decay distributions `sample` draws from: one per source, the training split's counts.
    dist = mf["decay_distribution"]["by_source"]
    assert set(dist) == set(mf["data_summary"]["sources"])
    assert sum(e["images"]["train"] for e in dist.values()) == mf["data_summary"]["train"]
    assert all(len(e["decay_quantiles"]) == 100 and 0 <= min(e["decay_quantiles"]) <= max(e["decay_quantiles"]) <= 1
               for e in dist.values())
    assert {"torch", "onnx", "onnxruntime", "python"} <= set(mf["tools"])
    notice = (MODEL / "NOTICE").read_text()
    assert "Solymos" in notice and "Ahmed" in notice and "Ritschel" in notice


def test_files_sha256_size_and_graph(mf):
    import onnx

    for name, net in mf["networks"].items():
        p = MODEL / net["file"]
        assert hashlib.sha256(p.read_bytes()).hexdigest() == net["sha256"], name
        assert p.stat().st_size < 40 * 2**20  # small enough for git
        g = onnx.load(str(p))
        assert g.opset_import[0].version == 17
        assert [i.name for i in g.graph.input] == ["x", "sigma", "decay", "subject"]
        assert [o.name for o in g.graph.output] == ["denoised"]
        dims = [d.dim_value for d in g.graph.input[0].type.tensor_type.shape.dim]
        assert dims == net["inputs"]["x"]  # static, no symbolic batch
        assert g.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_reference_pairs_reproduce_and_sigmas_match_schedule(mf):
    pytest.importorskip("onnxruntime")
    from firmware.generate.conditions import Conditions
    from firmware.generate.engines import open_engine
    from firmware.generate.manifest import load_model_dir

    from export.schedule import karras_sigmas

    info = load_model_dir(MODEL)
    assert info.stage_errors == () and info.output_resolution == (256, 256)
    for name in ("student", "teacher"):
        ref = np.load(MODEL / mf["networks"][name]["reference"]["output"])
        eng = open_engine(info, network=name, kind="onnxruntime")
        got = eng.denoise(ref["x"], ref["sigma"], Conditions(ref["decay"], ref["subject"]))
        assert np.abs(got - ref["denoised"]).max() < 1e-4
        assert info.network(name).sigmas() == tuple(mf["networks"][name]["steps"][str(mf["networks"][name]["default_steps"])])
    assert mf["networks"]["teacher"]["steps"]["35"] == karras_sigmas(35)


def test_the_cascade_stage_reproduces_its_reference_and_enlarges(mf):
    pytest.importorskip("onnxruntime")
    from firmware.generate.manifest import load_model_dir
    from firmware.generate.stages import Upsampler

    info = load_model_dir(MODEL)
    up = Upsampler(info.upsampler)   # the reference check runs when it loads
    assert up.failed is None and up.active
    ref = np.load(MODEL / mf["stages"]["upsampler"]["reference"]["output"])
    assert np.abs(up(ref["image"]) - ref["upsampled"]).max() < 1e-4
    assert (MODEL / mf["stages"]["upsampler"]["file"]).stat().st_size < 4 * 2**20
