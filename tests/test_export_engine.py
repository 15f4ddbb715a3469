"""`humus-export engine`: opens and checks the engine `auto` would run; a clear error without one."""
import json
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "export.cli", "engine", *args], capture_output=True,
                          text=True, timeout=120)


def test_engine_auto_checks_the_reference_and_reports_what_runs(tiny_model, tmp_path):
    r = run("--model", str(tiny_model), "--cache", str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["ok"] and rep["kind"] == "onnxruntime" and "CPUExecutionProvider" in rep["engine"]


def test_engine_tensorrt_without_tensorrt_fails_clearly(tiny_model, tmp_path):
    r = run("--model", str(tiny_model), "--engine", "tensorrt", "--cache", str(tmp_path / "cache"))
    assert r.returncode == 1
    rep = json.loads(r.stdout)
    assert not rep["ok"] and "TensorRT is not available" in rep["error"]
