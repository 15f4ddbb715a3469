"""The cascade (generator + one upsampler pass), the sampler's step reports, and the demo footage."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from firmware.box.conductor import Box
from firmware.clock import FakeClock
from firmware.generate.conditions import Conditions
from firmware.generate.engines import open_engine
from firmware.generate.manifest import load_model_dir
from firmware.generate.sampler import sample
from firmware.generate.stages import StageError, Upsampler, parse_upsampler
from firmware.generate.worker import GenerationWorker, VisitorJob
from firmware.render import noise as nz
from firmware.render.footage import DEMO_CLIP, footage_path, load_footage
from modelmaker import add_upsampler, edited_copy, make_model_dir
from scenario import run_frames, small_config


@pytest.fixture
def heun_model(tiny_model, tmp_path):
    """The tiny model described as an ODE network (Heun, 3 steps), as a teacher would be."""
    return edited_copy(tiny_model, tmp_path / "heun", lambda m: m["networks"]["student"].update(
        sampler="heun", steps={"3": [10.0, 5.0, 1.0]}, default_steps=3))


@pytest.fixture(scope="module")
def cascade_model(tmp_path_factory):
    return add_upsampler(make_model_dir(tmp_path_factory.mktemp("cascade") / "m"))


def _engine(model_dir):
    info = load_model_dir(model_dir)
    return info, open_engine(info, "student", "onnxruntime", threads=1)


@pytest.mark.parametrize("sampler,steps", [("heun", 3), ("euler", 3), ("consistency", 4)])
def test_sampler_reports_each_step_once_and_the_last_report_is_the_image(sampler, steps):
    calls, reports = [], []
    sigmas = [10.0, 5.0, 1.0, 0.5][:steps]
    eps = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)

    def denoise(x, s, cond):
        calls.append(s)
        return np.tanh(x * 0.3).astype(np.float32)

    final, _ = sample(denoise, sigmas, eps, sampler, rng=np.random.default_rng(1),
                      callback=lambda i, s, d: reports.append((i, s, d.copy())))
    assert [r[0] for r in reports] == list(range(steps))
    assert [r[1] for r in reports] == sigmas
    np.testing.assert_array_equal(reports[-1][2], final)
    if sampler == "heun":
        assert len(calls) == 2 * steps - 1  # the mid-step calls are not reported


def test_heun_network_through_the_worker_shows_the_final_image(heun_model):
    info, engine = _engine(heun_model)
    worker = GenerationWorker(engine, threaded=False)
    eps = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)
    sigmas = info.network("student").sigmas()
    worker.submit_visitor(VisitorJob(visitor=1, eps=eps, sigmas=sigmas, sampler="heun",
                                     cond=Conditions(0.5)))
    worker.process_pending()
    res = worker.visitor_result.get()
    want, _ = sample(engine.denoise, sigmas, eps, "heun", Conditions(0.5))
    assert res.done and res.failed is None
    assert len(res.preds) == len(sigmas) == 3      # one picture per step, not one per denoiser call
    np.testing.assert_allclose(res.preds[-1], want, atol=1e-6)
    worker.close()


def test_scenario_with_a_heun_network_holds_the_final_image(heun_model):
    box = Box(small_config(heun_model), FakeClock(), threaded=False)
    held = []
    run_frames(box, 30.0, lambda b, f: held.append(f.copy()) if b.cue.state == "hold" else None)
    assert held, "the scripted visitor reached the hold"
    want, _ = sample(box.session.engine.denoise, box.session.sigmas, box.session.generation.noise.model_eps, "heun",
                     box.session.conditions(box.venue.inputs))
    tile = box.compositor.tiles[0]
    expect = nz.model_to_tile(nz.to_u8(want[0]), tile, box.session.model_side)
    got = held[-1][tile.y:tile.y + tile.h, tile.x:tile.x + tile.w]
    assert np.abs(got.astype(np.int16) - expect).mean() < 1.0
    box.close()


def test_upsampler_stage_loads_and_enlarges(cascade_model):
    info = load_model_dir(cascade_model)
    assert info.resolution == (32, 32) and info.output_resolution == (128, 128)
    up = Upsampler(info.upsampler)
    assert up.active and up.failed is None
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    y = up(x)
    assert y.shape == (2, 3, 128, 128) and np.all(np.abs(y) <= 1.0)
    # not a plain nearest enlargement: the stage does its own work
    assert np.abs(y - x.repeat(4, 2).repeat(4, 3)).mean() > 0.01


def test_box_grows_at_the_output_resolution_and_reports_the_stage(cascade_model):
    box = Box(small_config(cascade_model), FakeClock(), threaded=False)
    run_frames(box, 30.0)
    res = box.session.worker.visitor_result.get()
    assert res.done and res.preds[0].shape[-1] == 32       # steps at the generator's side
    assert res.preds[-1].shape[-2:] == (128, 128)          # the finished image, upsampled once
    assert box.session.worker.drift_result.get().images.shape[-1] == 128
    assert box.devices_health()["upsampler"]["ok"]
    box.close()


def _break(model_dir, how):
    m = json.loads((model_dir / "manifest.json").read_text())
    st = m["stages"]["upsampler"]
    if how == "sha":
        st["sha256"] = "0" * 64
    elif how == "reference":
        z = dict(np.load(model_dir / "reference_upsampler.npz"))
        z["upsampled"] = z["upsampled"] + 0.5
        np.savez(model_dir / "reference_upsampler.npz", **z)
    elif how == "missing":
        (model_dir / "upsampler.onnx").unlink()
    elif how == "garbage":
        (model_dir / "upsampler.onnx").write_bytes(b"not onnx")
        st["sha256"] = __import__("hashlib").sha256(b"not onnx").hexdigest()
    elif how == "outside":  # a real, valid file, but not the model directory's own
        (model_dir.parent / "elsewhere").mkdir()
        shutil.copy(model_dir / "upsampler.onnx", model_dir.parent / "elsewhere" / "upsampler.onnx")
        st["file"] = "../elsewhere/upsampler.onnx"
    (model_dir / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("how", ["sha", "reference", "missing", "garbage", "outside"])
def test_a_broken_upsampler_falls_back_to_the_base_image(tmp_path, how, caplog):
    d = add_upsampler(make_model_dir(tmp_path / "m"))
    _break(d, how)
    box = Box(small_config(d), FakeClock(), threaded=False)
    frames = []
    run_frames(box, 30.0, lambda b, f: frames.append(f.mean()))
    assert box.session.model is not None and box.session.engine is not None     # the generator still runs
    res = box.session.worker.visitor_result.get()
    assert res.done and res.failed is None and res.preds[-1].shape[-1] == 32
    health = box.devices_health()["upsampler"]
    assert not health["ok"]
    assert any("showing the base image upscaled" in text for _, text in box.trace.faults)
    assert len(frames) == 600 and all(np.isfinite(frames))
    box.close()


@pytest.mark.parametrize("patch,key", [
    ({"file": "/etc/passwd"}, "file"),
    ({"file": "../x.onnx"}, "file"),
    ({"file": 7}, "file"),
    ({"sha256": "abc"}, "sha256"),
    ({"sha256": "z" * 64}, "sha256"),           # 64 characters are not 64 hex digits (the hand check took it)
    ({"reference": {"output": "reference_upsampler.npz", "atol": 0.5}}, "reference.atol"),
    ({"inputs": {"image": [1, 3, 32]}}, "inputs.image"),
    ({"inputs": {"image": [1, 3, 16, 16]}}, "inputs.image"),
    ({"inputs": {"image": "big"}}, "inputs.image"),
    ({"outputs": {"upsampled": [1, 3, 100, 100]}}, "outputs.upsampled"),
    ({"outputs": {"upsampled": [1, 3, 32, 32]}}, "outputs.upsampled"),
    ({"outputs": {"image": [1, 3, 128, 128]}}, "outputs"),
    ({"reference": {"output": "reference_upsampler.npz", "atol": "0.1"}}, "reference.atol"),
    ({"reference": {"output": "reference_upsampler.npz", "atol": float("nan")}}, "reference.atol"),
    ({"surprise": 1}, "unknown key"),
])
def test_hostile_stage_entries_name_the_key(cascade_model, patch, key):
    raw = json.loads((cascade_model / "manifest.json").read_text())["stages"]["upsampler"]
    with pytest.raises(StageError, match=key.replace(".", r"\.")):
        parse_upsampler({**raw, **patch}, cascade_model, "manifest.json", 3, (32, 32))


def test_studio_tools_refuse_a_model_with_a_broken_stage(tmp_path):
    pytest.importorskip("PIL")
    from export.sample import Generator
    from firmware.generate.manifest import ModelError
    d = add_upsampler(make_model_dir(tmp_path / "m"))
    _break(d, "missing")
    with pytest.raises(ModelError, match="upsampler.onnx"):
        Generator(d)


def test_the_demo_clip_ships_with_its_credits_and_is_the_default_footage():
    assert footage_path(None) == DEMO_CLIP and DEMO_CLIP.is_file()
    assert DEMO_CLIP.stat().st_size <= 8 * 2**20
    notice = (DEMO_CLIP.parent / "NOTICE").read_text()
    assert "Peter Solymos" in notice and "CC-BY-4.0" in notice and "Ritschel" in notice
    frames = load_footage(DEMO_CLIP)
    assert len(frames) >= 100 and frames[0].shape == (384, 384, 3)
    # real footage: frames change over the clip (decay), they are not one still
    assert np.abs(frames[0].astype(np.int16) - frames[-1]).mean() > 10


def test_a_box_with_no_footage_configured_shows_the_demo_clip(tiny_model):
    box = Box(small_config(tiny_model), FakeClock(), threaded=False)
    assert box.footage is not None and len(box.footage.frames) == len(load_footage(DEMO_CLIP))
    frame = box.step()
    left = box.compositor.tiles[0]
    assert frame[left.y:left.y + left.h, left.x:left.x + left.w].std() > 5   # a picture, not a grey fill
    box.close()
