"""`humus run --sim --headless --record`: the newcomer's first command, end to end, as a subprocess."""
import json
import subprocess
import sys

import numpy as np


def test_sim_run_writes_preview_dmx_trace_and_state_log(tiny_model, tmp_path):
    cfg = tmp_path / "humus.toml"
    cfg.write_text(f'[model]\ndir = "{tiny_model}"\nengine = "onnxruntime"\n'
                   '[show]\nlayout = "full"\n')
    out = tmp_path / "preview.mp4"
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "run", "--sim", "--headless", "--config",
                        str(cfg), "--record", str(out), "--duration", "38", "--width", "320",
                        "--height", "180", "--fps", "10", "--record-scale", "1"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "approach -> immersion -> emergence -> hold -> release -> idle" in r.stdout

    import av
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 380 and frames[0].shape == (180, 320, 3)
    # the recording really changes: idle, the visitor, the noise and the grown images differ
    means = np.array([f.mean() for f in frames[::20]])
    assert means.std() > 1.0

    states = [json.loads(l) for l in (tmp_path / "preview.states.jsonl").read_text().splitlines()]
    assert [s["state"] for s in states if "state" in s][:6] == \
        ["approach", "immersion", "emergence", "hold", "release", "idle"]
    dmx = [json.loads(l) for l in (tmp_path / "preview.dmx.jsonl").read_text().splitlines()]
    assert len(dmx) > 10 and all(len(d["slots"]) <= 512 for d in dmx)
    assert len({tuple(d["slots"][:5]) for d in dmx}) > 5  # the lights moved with the show


def test_run_with_a_broken_config_exits_2_and_names_the_key(tmp_path):
    cfg = tmp_path / "humus.toml"
    cfg.write_text('[dmx]\ntype = "artnet"\nuniverse = -1\n')
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "run", "--sim", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "dmx.universe" in r.stderr and str(cfg) in r.stderr
