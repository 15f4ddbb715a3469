"""Issue 13: a bad model never stops the show.

Every hostile model directory is refused by `load_model_dir` with a ModelError naming manifest.json
and the key, and the real box built on it (fake clock, simulated devices) runs on: the footage in the
idle, the dissolve when a visitor comes, exactly one model fault in the trace (what the status file
reports), the generator marked unhealthy, and no exception. Hypothesis mutates the tiny real model's
manifest at every key the box reads and runs the box on each result for a few frames.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from firmware.box.conductor import Box
from firmware.clock import FakeClock
from firmware.generate.manifest import ModelError, load_model_dir
from modelmaker import edited_copy
from scenario import hf_energy, run_frames, small_config

FOOTAGE = [np.full((90, 120, 3), v, np.uint8) for v in (60, 120, 180)]
# A visitor at 0.2 s and a fast sequence: the immersion (the dissolve) comes within a second.
FAST = {"show": {"dwell_s": 0.1, "approach_s": 0.3, "immersion_s": 0.8, "emergence_s": 0.3, "hold_s": 0.3,
                 "release_s": 0.3, "cooldown_s": 0.0},
        "presence": {"script": [[0.0, 6.0], [0.2, 1.0], [60.0, 1.0]], "loop": False}}


def run_show(model_dir, seconds=1.6, **sections):
    merged = {k: dict(v) for k, v in FAST.items()}
    for k, v in sections.items():
        merged.setdefault(k, {}).update(v)
    box = Box(small_config(model_dir, **merged), FakeClock(), threaded=False, footage_frames=FOOTAGE)
    seen = []
    try:
        box.warm_up()
        run_frames(box, seconds, lambda b, f: seen.append((b.cue.state, hf_energy(f), float(f.mean()))))
    finally:
        box.close()
    return box, seen


def assert_show_went_on_without_the_model(box, seen):
    faults = [t for _, t in box.trace.faults if t.startswith("model:")]
    assert len(faults) == 1 and "showing footage only" in faults[0], box.trace.faults
    assert box.session.engine is None and box.session.net is None
    health = box.devices_health()["generator"]
    assert not health["ok"] and health["detail"].startswith("no model")
    idle = [hf for state, hf, _ in seen if state == "idle"]
    drowning = [hf for state, hf, _ in seen if state == "immersion"]
    assert idle and drowning, [s for s, _, _ in seen]
    assert max(drowning) > 3 * np.mean(idle) + 1       # the dissolve ran: the picture turned to noise
    assert min(mean for _, _, mean in seen) > 30       # never a black frame


@pytest.fixture(scope="module")
def model_files(tiny_model):
    return {name: (tiny_model / name) for name in ("student.onnx", "reference.npz")}


def model_dir(tmp_path, tiny_model, edit=None, text=None, name="m") -> os.PathLike:
    d = edited_copy(tiny_model, tmp_path / name, edit)
    if text is not None:
        (d / "manifest.json").write_bytes(text)
    return d


def net(m):
    return m["networks"]["student"]


def _set(path, value):
    def edit(m):
        node = m
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return edit


S = ("networks", "student")
HOSTILE_MANIFESTS = {   # the fifteen, and more
    "atol-string": (_set(S + ("reference", "atol"), "0.001"), "reference.atol"),
    "batch-0": (_set(S + ("batch",), 0), "batch"),
    "batch-string": (_set(S + ("batch",), "1"), "batch"),
    "batch-bool": (_set(S + ("batch",), True), "batch"),
    "steps-0": (_set(S + ("steps",), {"0": []}), "steps.0"),
    "steps-arabic-digit": (_set(S + ("steps",), {"\u0662": [80.0, 1.0]}), "steps"),
    "sigma-data-string": (_set(("precond", "sigma_data"), "0.5"), "precond.sigma_data"),
    "conditioning-list": (_set(("conditioning",), []), "conditioning"),
    "value-range-number": (_set(("value_range",), 1.0), "value_range"),
    "value-range-reversed": (_set(("value_range",), [1.0, -1.0]), "value_range"),
    "output-1111": (_set(S + ("outputs", "denoised"), [1, 1, 1, 1]), "outputs.denoised"),
    "absurd-shape": (lambda m: (net(m)["inputs"].update(x=[64, 3, 4096, 4096]),
                                net(m)["outputs"].update(denoised=[64, 3, 4096, 4096])), "over the limit"),
    "huge-dim": (_set(S + ("inputs", "x"), [1, 3, 100000, 100000]), "inputs.x"),
    "sigma-nan": (_set(S + ("steps", "2"), [80.0, float("nan")]), "steps.2"),
    "sigma-inf": (_set(S + ("steps", "1"), [float("inf")]), "steps.1"),
    "default-steps-missing": (_set(S + ("default_steps",), 3), "default_steps: 3"),
    "fresh-noise-above-1": (_set(S + ("fresh_noise",), 1.5), "fresh_noise"),
    "fresh-noise-nan": (_set(S + ("fresh_noise",), float("nan")), "fresh_noise"),
    "fresh-noise-text": (_set(S + ("fresh_noise",), "0"), "fresh_noise"),
    "fresh-noise-on-heun": (lambda m: net(m).update(sampler="heun", fresh_noise=0.0), "only a consistency sampler"),
    "not-square": (_set(("resolution",), [32, 64]), "resolution"),
    "channels-4": (_set(("channels",), 4), "channels"),
    "unknown-key": (_set(("precond", "sigma_dta"), 0.5), "precond.sigma_dta: unknown key"),
    "file-dotdot": (_set(S + ("file",), "../ok/student.onnx"), "outside the model directory"),
    "file-absolute": (None, "outside the model directory"),        # filled in by the test
    "sha-upper": (lambda m: net(m).update(sha256=net(m)["sha256"].upper()), "sha256"),
    "sha-wrong": (_set(S + ("sha256",), "0" * 64), "file corrupt or replaced"),
    "no-networks": (_set(("networks",), {}), "networks"),
    "sampler-unknown": (_set(S + ("sampler",), "ddim"), "sampler"),
    "name-too-long": (_set(("name",), "n" * 5000), "name"),
}
RAW_MANIFESTS = {
    "top-level-list": b"[]",
    "not-utf8": b'{"format": "humus-model/1", "name": "\xff"}',
    "not-json": b"{format: humus}",
    "deep-nesting": b'{"training": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "five-megabytes": b'{"credits": "' + b"x" * (5 << 20) + b'"}',
    "empty": b"",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_MANIFESTS))
def test_hostile_manifest_is_refused_and_the_show_goes_on(tiny_model, tmp_path, case):
    edit, match = HOSTILE_MANIFESTS[case]
    if case == "file-dotdot":
        shutil.copytree(tiny_model, tmp_path / "ok")
    if case == "file-absolute":
        edit = _set(S + ("file",), str(tiny_model / "student.onnx"))
    d = model_dir(tmp_path, tiny_model, edit)
    with pytest.raises(ModelError, match=match) as err:
        load_model_dir(d)
    assert str(d / "manifest.json") in str(err.value)
    assert_show_went_on_without_the_model(*run_show(d))


@pytest.mark.parametrize("case", sorted(RAW_MANIFESTS))
def test_unreadable_manifest_is_refused_and_the_show_goes_on(tiny_model, tmp_path, case):
    d = model_dir(tmp_path, tiny_model, text=RAW_MANIFESTS[case])
    with pytest.raises(ModelError, match="manifest.json"):
        load_model_dir(d)
    assert_show_went_on_without_the_model(*run_show(d))


def test_model_file_symlinked_out_of_the_model_dir_is_refused(tiny_model, tmp_path):
    d = model_dir(tmp_path, tiny_model)
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(d / "student.onnx", outside)
    (d / "student.onnx").symlink_to(outside)
    with pytest.raises(ModelError, match="networks.student.file: 'student.onnx' is outside"):
        load_model_dir(d)
    assert_show_went_on_without_the_model(*run_show(d))


@pytest.mark.parametrize("case", ["reference-garbage", "reference-wrong-shape", "reference-bomb", "onnx-garbage",
                                  "no-manifest", "config-steps-3"])
def test_a_model_that_loads_but_cannot_run_never_stops_the_show(tiny_model, tmp_path, case):
    """Past the manifest: the reference check, the runtime's loader, a [model] steps with no schedule."""
    d = model_dir(tmp_path, tiny_model)
    sections = {}
    if case == "reference-garbage":
        (d / "reference.npz").write_bytes(b"PK\x03\x04 not really a zip")
    elif case == "reference-wrong-shape":
        np.savez(d / "reference.npz", x=np.zeros((1, 3, 8, 8), np.float32), sigma=np.ones(1, np.float32),
                 decay=np.ones(1, np.float32), denoised=np.zeros((1, 3, 8, 8), np.float32))
    elif case == "reference-bomb":      # 8 MB of zeros in a small compressed file (far over what it needs)
        ref = dict(np.load(d / "reference.npz"))
        np.savez_compressed(d / "reference.npz", **ref, pad=np.zeros(2_000_000, np.float32))
    elif case == "onnx-garbage":
        import hashlib
        (d / "student.onnx").write_bytes(b"\x08\x07garbage" * 100)
        digest = hashlib.sha256((d / "student.onnx").read_bytes()).hexdigest()
        _edit_file(d, _set(S + ("sha256",), digest))
    elif case == "no-manifest":
        (d / "manifest.json").unlink()
    else:
        sections = {"model": {"steps": 3}}
    box, seen = run_show(d, **sections)
    assert_show_went_on_without_the_model(box, seen)
    if case == "config-steps-3":
        assert "no entry for 3 steps" in box.trace.faults[0][1]


def _edit_file(d, edit):
    raw = json.loads((d / "manifest.json").read_text())
    edit(raw)
    (d / "manifest.json").write_text(json.dumps(raw))


def test_the_good_tiny_model_runs_in_the_same_harness(tiny_model):
    """The harness can fail: with the honest model there is an engine and no fault."""
    box, seen = run_show(tiny_model, seconds=2.5)
    assert box.session.engine is not None and not box.trace.faults
    assert "emergence" in [s for s, _, _ in seen]


# --- property-based: mutate the manifest anywhere the box reads it -------------------------------

KEY_PATHS = [("format",), ("name",), ("resolution",), ("resolution", 0), ("channels",), ("value_range",),
             ("value_range", 1), ("precond",), ("precond", "sigma_data"), ("precond", "sigma_max"),
             ("conditioning",), ("conditioning", "decay"), ("conditioning", "decay", "default"), ("networks",),
             S, S + ("file",), S + ("sha256",), S + ("batch",), S + ("inputs",), S + ("inputs", "x"),
             S + ("inputs", "x", 2), S + ("inputs", "sigma"), S + ("outputs", "denoised"),
             S + ("outputs", "denoised", 0), S + ("sampler",), S + ("steps",), S + ("steps", "2"),
             S + ("steps", "2", 1), S + ("default_steps",), S + ("fresh_noise",), S + ("reference",),
             S + ("reference", "atol"),
             S + ("reference", "output"), ("training",), ("extra",), ("decay_distribution",),
             ("decay_distribution", "by_source"), ("decay_distribution", "by_source", "tomatoes"),
             ("decay_distribution", "by_source", "tomatoes", "decay_quantiles"),
             ("decay_distribution", "by_source", "tomatoes", "decay_quantiles", 0)]
hostile_values = (st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.sampled_from([0, 1, 2, 3, 32, 4096, -1])
                  | st.floats() | st.text(max_size=20) | st.sampled_from(["../ok/student.onnx", "/etc/passwd",
                                                                          "student.onnx", "2", "heun", "RGB"])
                  | st.lists(st.integers(-1, 70000), max_size=5) | st.lists(st.floats(), max_size=4)
                  | st.dictionaries(st.text(max_size=4), st.integers() | st.floats(), max_size=3))


def _mutate(manifest: dict, path: tuple, value, delete: bool) -> None:
    node = manifest
    for k in path[:-1]:
        if isinstance(node, dict) and k in node:
            node = node[k]
        elif isinstance(node, list) and isinstance(k, int) and k < len(node):
            node = node[k]
        else:
            return
    last = path[-1]
    if isinstance(node, dict):
        if delete:
            node.pop(last, None)
        else:
            node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(KEY_PATHS), hostile_values, st.booleans()), min_size=1, max_size=3))
def test_any_mutated_manifest_is_refused_cleanly_and_the_box_runs(tiny_model, tmp_path_factory, mutations):
    d = tmp_path_factory.mktemp("hm") / "m"
    d.mkdir()
    for name in ("student.onnx", "reference.npz"):
        os.link(tiny_model / name, d / name)
    manifest = json.loads((tiny_model / "manifest.json").read_text())
    for path, value, delete in mutations:
        _mutate(manifest, path, value, delete)
    (d / "manifest.json").write_text(json.dumps(manifest, allow_nan=True))
    try:
        info = load_model_dir(d)
    except ModelError as exc:
        assert str(d / "manifest.json") in str(exc)
        info = None
    event("refused with a ModelError" if info is None else "accepted")
    box = Box(small_config(d), FakeClock(), threaded=False, footage_frames=FOOTAGE)
    try:
        box.warm_up()
        run_frames(box, 0.5)
        assert box.devices.display.last.mean() > 30
    finally:
        box.close()
    if info is None:
        assert box.session.engine is None and len([f for _, f in box.trace.faults if f.startswith("model:")]) == 1
    else:
        # what validation let through must be what the contract allows: shapes, files, schedules
        n = info.network("student")
        assert n.inputs["x"] == n.outputs["denoised"] and n.inputs["x"][1] == 3
        assert n.path.resolve().parent == d.resolve()
        assert all(len(s) == k and all(a > b > 0 for a, b in zip(s, s[1:])) for k, s in n.steps.items())


json_like = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                         lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                         max_leaves=20)
manifest_like = st.fixed_dictionaries({"format": st.just("humus-model/1") | json_like}, optional={
    k: json_like for k in ("name", "resolution", "channels", "value_range", "precond", "conditioning", "networks",
                           "training", "other")})


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=200) | json_like.map(lambda o: json.dumps(o, allow_nan=True).encode())
       | manifest_like.map(lambda o: json.dumps(o, allow_nan=True).encode()))
def test_any_manifest_bytes_give_only_a_model_error(data):
    from firmware.fuzz import fuzz_model_manifest
    fuzz_model_manifest(data)


def test_humus_run_with_a_bad_model_shows_the_fault_in_the_status_file(tiny_model, tmp_path):
    """End to end, as systemd runs it (no --sim): exit 0, the fault in status.json, one journal line."""
    import subprocess
    import sys
    from pathlib import Path
    REPO_ROOT = Path(__file__).resolve().parents[1]
    d = model_dir(tmp_path, tiny_model, _set(S + ("outputs", "denoised"), [1, 1, 1, 1]))
    status = tmp_path / "status.json"
    config = tmp_path / "humus.toml"
    config.write_text(f'[model]\ndir = "{d}"\nengine = "onnxruntime"\n'
                      f'[display]\ntype = "headless"\nwidth = 160\nheight = 96\nfps = 20.0\n'
                      f'[status]\npath = "{status}"\nstate_dir = "{tmp_path}"\n')
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "run", "--config", str(config), "--duration", "1.5"],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    model_lines = [ln for ln in r.stderr.splitlines() if "model:" in ln]
    assert len(model_lines) == 1 and "outputs.denoised" in model_lines[0] and "showing footage only" in model_lines[0]
    snap = json.loads(status.read_text())
    assert snap["devices"]["generator"]["ok"] is False and snap["state"] == "degraded"
    assert any("outputs.denoised" in f["text"] for f in snap["faults"]) and snap["fps"] > 0
