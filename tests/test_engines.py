"""Engine selection, caching key and fallback logic, with the vendor modules absent (no GPU here)."""
import logging
import sys

import numpy as np
import pytest

from firmware.generate import engines
from firmware.generate.conditions import Conditions
from firmware.generate.engine_interface import Engine, EngineError
from firmware.generate.engines import open_engine
from firmware.generate.manifest import load_model_dir
from firmware.generate.trt import cache_key


def test_runtime_modules_never_import_vendor_libraries_or_torch():
    """Import the whole runtime with an import hook that records every top-level module asked for."""
    import subprocess
    code = """
import sys
asked = set()
class Spy:
    def find_spec(self, name, path=None, target=None):
        asked.add(name.split('.')[0])
        return None
sys.meta_path.insert(0, Spy())
import firmware.cli, firmware.box.conductor, firmware.bench.stages, firmware.safe, firmware.generate.trt
import firmware.devices.camera.table, firmware.devices.presence.table, firmware.devices.dmx.open
import firmware.devices.display.table, firmware.devices.projector.control
firmware.cli.build_parser()
print(' '.join(sorted(asked)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    asked = set(out.split())
    assert "firmware" in asked  # the spy works
    for vendor in ("torch", "tensorrt", "cuda", "picamera2", "Jetson", "RPi", "export", "pythonosc"):
        assert vendor not in asked, f"the runtime imports {vendor} at start-up"


def test_cuda_runtime_module_is_found_under_both_cuda_python_names(monkeypatch):
    """cuda-python 13 (JetPack 7, and the image of the GPU machine used here) only has
    cuda.bindings.runtime; 11.x/12.x have cuda.cudart."""
    import types

    from firmware.generate import trt

    new = types.ModuleType("cuda.bindings.runtime")
    old = types.ModuleType("cuda.cudart")
    cuda_pkg, bindings_pkg = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    cuda_pkg.__path__, bindings_pkg.__path__ = [], []
    bindings_pkg.runtime, cuda_pkg.cudart = new, old
    monkeypatch.setitem(sys.modules, "cuda", cuda_pkg)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings_pkg)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", new)
    monkeypatch.setitem(sys.modules, "cuda.cudart", old)
    assert trt._cudart() is new
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)  # None in sys.modules: ImportError
    assert trt._cudart() is old


def test_cache_key_changes_with_every_part():
    base = cache_key("ab" * 32, "10.3.0", "Orin (nvgpu)", "fp16")
    assert base == cache_key("ab" * 32, "10.3.0", "Orin (nvgpu)", "fp16")
    others = [cache_key("cd" * 32, "10.3.0", "Orin (nvgpu)", "fp16"),
              cache_key("ab" * 32, "10.4.0", "Orin (nvgpu)", "fp16"),
              cache_key("ab" * 32, "10.3.0", "NVIDIA H100", "fp16"),
              cache_key("ab" * 32, "10.3.0", "Orin (nvgpu)", "fp16mixed")]
    assert len({base, *others}) == 5
    assert base.endswith(".engine") and "/" not in base and " " not in base


def test_auto_without_tensorrt_runs_onnxruntime_and_reports_what_runs(tiny_model, caplog):
    caplog.set_level(logging.INFO, "humus.engine")
    e = open_engine(load_model_dir(tiny_model), "student", "auto")
    assert e.kind == "onnxruntime"
    assert e.providers == tuple(e.session.get_providers()) == ("CPUExecutionProvider",)
    assert "CPUExecutionProvider" in e.describe()
    fallbacks = [r for r in caplog.records if "engine fallback" in r.getMessage()]
    assert len(fallbacks) == 1 and "TensorRT is not available" in fallbacks[0].getMessage()


class Black(Engine):
    """An accelerated engine gone wrong: fp16 overflow gives black frames."""
    kind = "fake-fp16"

    def _run(self, feed):
        return np.zeros_like(feed["x"])


def test_engine_failing_the_reference_falls_back_to_the_next(tiny_model, monkeypatch, caplog):
    caplog.set_level(logging.INFO, "humus.engine")
    opened = []

    def black(net, cache_dir, threads):
        opened.append("black")
        return Black(net)
    monkeypatch.setitem(engines.BACKENDS, "auto", (black, engines._open_ort))
    e = open_engine(load_model_dir(tiny_model), "student", "auto")
    assert opened == ["black"] and e.kind == "onnxruntime"
    msgs = [r.getMessage() for r in caplog.records if "reference check" in r.getMessage()]
    assert len(msgs) == 1 and "black" in msgs[0]


def test_no_engine_at_all_is_a_clear_error(tiny_model, monkeypatch):
    monkeypatch.setitem(engines.BACKENDS, "auto", (lambda n, c, t: Black(n),))
    with pytest.raises(EngineError, match="no engine could run .*student.onnx.*all zero"):
        open_engine(load_model_dir(tiny_model), "student", "auto")


def test_batch_splitting_and_padding_match_one_by_one(tiny_model):
    e = open_engine(load_model_dir(tiny_model), "student", "onnxruntime")
    x = np.random.default_rng(3).standard_normal((3, 3, 32, 32)).astype(np.float32)
    together = e.denoise(x, np.array([1.0, 2.0, 3.0]), Conditions(0.5))
    for i in range(3):
        alone = e.denoise(x[i:i + 1], float(i + 1), Conditions(0.5))
        np.testing.assert_allclose(together[i], alone[0], atol=1e-6)


def test_a_cached_engine_onnxruntime_refuses_is_removed_and_built_again(tmp_path):
    """onnxruntime's TensorRT provider writes its cache without fsync: a power cut can leave a
    truncated engine it refuses at every start. Ours is removed and the session made once more;
    a path outside the cache folder, or any other error, is left alone."""
    cache = tmp_path / "engines"
    cache.mkdir()
    torn = cache / "TensorrtExecutionProvider_TRTKernel_graph_1_fp16.engine"
    torn.write_bytes(b"half an eng")
    calls = []

    def make():
        calls.append(torn.exists())
        if torn.exists():
            raise RuntimeError(f"[ONNXRuntimeError] : 1 : FAIL : TensorRT EP could not deserialize engine "
                               f"from cache: {torn}")
        return "session"
    assert engines.new_session(make, cache) == "session"
    assert calls == [True, False] and not torn.exists()
    outside = tmp_path / "elsewhere.engine"
    outside.write_bytes(b"x")

    def refuses_outside():
        raise RuntimeError(f"TensorRT EP could not deserialize engine from cache: {outside}")
    with pytest.raises(RuntimeError):
        engines.new_session(refuses_outside, cache)
    assert outside.exists()
    with pytest.raises(ValueError):
        engines.new_session(lambda: (_ for _ in ()).throw(ValueError("bad model")), cache)
