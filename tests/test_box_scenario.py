"""Whole-box scenarios: the real box on simulated devices and a fake clock, a visitor cycle in ms."""
import threading

import numpy as np
import pytest

from firmware.box.conductor import Box
from firmware.clock import FakeClock
from firmware.render import noise as nz
from scenario import hf_energy, run_frames, small_config


@pytest.fixture
def cycle(tiny_model):
    """One full visitor cycle, every frame's cue and picture statistics recorded."""
    box = Box(small_config(tiny_model), FakeClock(), threaded=False)
    log = []

    def on_frame(b, frame):
        cam = b.camera_picture.picture
        log.append({"t": b.clock.now(), "state": b.cue.state, "sigma": b.cue.sigma,
                    "hf": hf_energy(frame), "frame": frame.copy() if b.frames % 5 == 0 else None,
                    "cam_diff": float(np.abs(frame.astype(np.int16) - cam).mean()) if cam is not None else None})
    run_frames(box, 40.0, on_frame)
    yield box, log
    box.close()


def test_states_follow_the_scripted_visitor(cycle):
    box, log = cycle
    names = [s for _, s, _ in box.trace.states]
    assert names[:6] == ["approach", "immersion", "emergence", "hold", "release", "idle"]
    assert box.devices.display.frames_shown == len(log) == 800
    assert not box.trace.faults


def test_noise_measured_in_the_frames_rises_through_the_immersion(cycle):
    _, log = cycle
    imm = [e for e in log if e["state"] == "immersion"]
    hf = [e["hf"] for e in imm]
    q = len(hf) // 4
    quarters = [np.mean(hf[i * q:(i + 1) * q]) for i in range(4)]
    assert quarters[0] < quarters[1] < quarters[2] < quarters[3]
    assert quarters[3] > 5 * quarters[0]
    # and the picture drifts away from the visitor as it drowns
    assert imm[-1]["cam_diff"] > 3 * imm[0]["cam_diff"]


def test_generated_frames_differ_from_noise_and_from_the_camera(cycle):
    box, log = cycle
    hold = [e for e in log if e["state"] == "hold" and e["frame"] is not None]
    peak = [e for e in log if e["state"] == "immersion"][-1]
    assert hold, "no hold frames"
    h = hold[len(hold) // 2]
    assert h["hf"] < 0.5 * peak["hf"]             # not the sea of noise any more
    assert h["cam_diff"] > 20                      # and not the visitor's picture
    res = box.session.worker.visitor_result.get()
    assert res.done and res.failed is None and len(res.preds) == len(box.session.sigmas)
    # the frame shows the final prediction, upscaled onto the tiles
    tile = box.compositor.tiles[0]
    want = nz.model_to_tile(nz.to_u8(res.preds[-1][0]), tile, box.session.model_side)
    got = h["frame"][tile.y:tile.y + tile.h, tile.x:tile.x + tile.w]
    assert np.abs(got.astype(np.int16) - want).mean() < 1.0


def test_emergence_reveals_the_steps_in_order(cycle):
    box, log = cycle
    emg = [e for e in log if e["state"] == "emergence"]
    hf = [e["hf"] for e in emg]
    assert hf[-1] < hf[0]  # the noise recedes as the images grow


def test_dmx_follows_the_cues(cycle):
    box, log = cycle
    frames = box.devices.dmx.transport.frames
    assert len(frames) >= 40 * 40 * 0.95          # fixed rate, the whole time
    t_of = {s: t for t, s, _ in box.trace.states}
    looks = box.config.lights.looks

    def dimmer_at(t):
        return min(frames, key=lambda f: abs(f.t - t)).data[0]
    assert dimmer_at(t_of["approach"] - 0.1) == round(looks["idle"].intensity * 255)
    # immersion: the light opens with the noise (noise_follow = 1)
    start, end = t_of["immersion"] + 1.5, t_of["emergence"] - 0.05
    assert dimmer_at(end) > dimmer_at(start) + 20
    assert dimmer_at(end) == pytest.approx(looks["immersion"].intensity * 255, abs=3)
    # colour of the hold look on the RGB channels of fixture 1 (after the cross-fade)
    f = min(frames, key=lambda f: abs(f.t - (t_of["release"] - 0.1))).data
    assert list(f[1:4]) == [round(c * 255) for c in looks["hold"].color]


def test_display_never_waits_for_a_slow_generation(tiny_model):
    """The engine blocks until released; the box keeps presenting frames (the sea of noise holds)."""
    from firmware.generate.engines import open_engine
    from firmware.generate.manifest import load_model_dir
    model = load_model_dir(tiny_model)
    real = open_engine(model, "student", "onnxruntime")
    gate = threading.Event()

    class Slow:
        def denoise(self, x, s, cond):
            gate.wait(30)
            return real.denoise(x, s, cond)
        def describe(self):
            return "slow"
        def close(self):
            pass
    box = Box(small_config(tiny_model), FakeClock(), threaded=True, threaded_dmx=False,
              engine=Slow(), model=model)
    try:
        run_frames(box, 18.0)   # through approach and immersion into the emergence, engine stuck
        assert box.cue.state == "emergence" and box.frames == 360
        assert box.session.worker.busy and not box.session.worker.visitor_result.get().preds
        stuck = box.devices.display.last.copy()
        assert hf_energy(stuck) > 40            # nothing generated yet: the noise holds, no freeze
        gate.set()
        for _ in range(200):
            if box.session.worker.visitor_result.get().done:
                break
            threading.Event().wait(0.01)
        run_frames(box, 10.0)
        assert box.cue.state == "hold" and box.session.worker.visitor_result.get().done
        assert hf_energy(box.devices.display.last) < hf_energy(stuck)
    finally:
        gate.set()
        box.close()


class Flaky:
    """An engine whose first `fails` evaluations once armed raise (a transient CUDA error), then work."""

    def __init__(self, real, fails):
        self.real, self.fails, self.calls, self.armed = real, fails, 0, False

    def denoise(self, x, s, cond):
        self.calls += self.armed
        if self.armed and self.calls <= self.fails:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.real.denoise(x, s, cond)

    def describe(self):
        return "flaky"

    def close(self):
        pass


@pytest.mark.parametrize("fails", [1, 100])
def test_failed_generation_is_tried_again_then_gives_up(tiny_model, fails, caplog):
    from firmware.box.planner import VISITOR_TRIES
    from firmware.generate.engines import open_engine
    from firmware.generate.manifest import load_model_dir
    model = load_model_dir(tiny_model)
    engine = Flaky(open_engine(model, "student", "onnxruntime"), fails)
    box = Box(small_config(tiny_model), FakeClock(), threaded=False, engine=engine, model=model)
    try:
        states, submit = [], box.session.worker.submit_visitor

        def submit_armed(job):  # the engine breaks when the visitor's generation starts (the drift worked)
            engine.armed = True
            submit(job)
        box.session.worker.submit_visitor = submit_armed
        run_frames(box, 30.0, lambda b, f: states.append((b.cue.state, hf_energy(f))))
        res = box.session.worker.visitor_result.get()
        faults = [r.message for r in caplog.records if "generation failed: CUDA error" in r.message]
        if fails == 1:   # one transient error: the second try grows the images
            assert res.done and res.failed is None and len(res.preds) == len(box.session.sigmas)
            assert box.session.generation.job_tries == 2 and len(faults) == 1
            hold = [e for s, e in states if s == "hold"]
            assert hold and max(hold) < 40          # images, not noise
        else:            # a broken engine: VISITOR_TRIES generations, then the idle, never a still sea of noise
            assert res.failed is not None and box.session.generation.job_tries == VISITOR_TRIES
            assert engine.calls == VISITOR_TRIES    # each try failed at its first evaluation
            assert faults                           # and it was logged (once: faults log on change)
            assert box.cue.state != "immersion"     # the show went on
    finally:
        box.close()


def test_no_camera_grows_from_pure_noise_and_no_model_shows_footage(tiny_model, tmp_path):
    footage = [np.full((90, 120, 3), v, np.uint8) for v in (60, 120, 180)]
    box = Box(small_config(tiny_model, camera={"type": "none"}), FakeClock(), threaded=False,
              footage_frames=footage)
    run_frames(box, 30.0)
    assert [s for _, s, _ in box.trace.states][:4] == ["approach", "immersion", "emergence", "hold"]
    assert box.session.worker.visitor_result.get().done
    box.close()
    box = Box(small_config(tmp_path / "missing"), FakeClock(), threaded=False, footage_frames=footage)
    assert box.session.engine is None and any("model" in f for _, f in box.trace.faults)
    run_frames(box, 40.0)
    assert "emergence" in [s for _, s, _ in box.trace.states]
    # idle: the left tile is footage (flat colour), never a crash or a black frame
    assert box.devices.display.last.mean() > 30
    box.close()


def test_seeded_generation_starts_from_the_visitor_plus_their_noise(tiny_model):
    """seed_strength > 0: the generation starts part-way down the noise levels, from the visitor's
    downscaled picture plus that visitor's own noise (the same eps the dissolve used)."""
    from firmware.generate.engines import open_engine
    from firmware.generate.manifest import load_model_dir
    model = load_model_dir(tiny_model)
    real = open_engine(model, "student", "onnxruntime")
    calls = []

    class Recording:
        def denoise(self, x, sigma, cond):
            calls.append((x.copy(), float(np.asarray(sigma).ravel()[0])))
            return real.denoise(x, sigma, cond)
        def describe(self):
            return "recording"
        def close(self):
            pass
    box = Box(small_config(tiny_model, show={"seed_strength": 0.8}), FakeClock(), threaded=False,
              engine=Recording(), model=model)
    submitted = []
    submit = box.session.worker.submit_visitor
    box.session.worker.submit_visitor = lambda job: (submitted.append((job, box.camera_picture.picture.copy())), submit(job))
    run_frames(box, 22.0)
    box.close()
    (job, cam), = submitted
    # the idle drift's calls start at sigma_max; the visitor's seeded growth starts part-way down
    visitor = [(x, s) for x, s in calls if s < model.sigma_max]
    x0, s0 = visitor[0]
    assert 0.5 < s0 < model.sigma_max / 10 and len(visitor) == len(job.sigmas)
    seed = np.stack([nz.from_u8(nz.resize(cam[t.y:t.y + t.h, t.x:t.x + t.w], 32, 32, smooth=False))
                     for t in box.compositor.tiles])
    np.testing.assert_allclose(x0, seed + s0 * box.session.generation.noise.model_eps, atol=1e-5)
    np.testing.assert_allclose(job.eps, box.session.generation.noise.model_eps)
