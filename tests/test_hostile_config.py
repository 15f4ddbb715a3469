"""Issue 13: configs that passed `check-config` and then crashed or misbehaved are refused at the edge,
naming the file and key (exit 2, no traceback); what is accepted runs the real box.

Hypothesis writes configs with hostile values at the keys the show, lights, presence, camera and model
read; each is either refused with a ConfigError naming the file and the key, or runs the real box (the
tiny real model, simulated devices, fake clock) for a second of frames without an exception.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from firmware import cli
from firmware.box.conductor import Box
from firmware.clock import FakeClock
from firmware.config.devices import PresenceSim
from firmware.config.errors import ConfigError
from firmware.config.load import MAX_CONFIG_BYTES, load_config
from firmware.config.schema import Config
from scenario import run_frames

REPO = Path(__file__).resolve().parents[1]

HOSTILE = {   # TOML text -> the key the error must name
    "sigma-peak-inf": ("[show]\nsigma_peak = inf\n", "show.sigma_peak"),
    "sigma-peak-nan": ("[show]\nsigma_peak = nan\n", "show.sigma_peak"),
    "sigma-peak-huge": ("[show]\nsigma_peak = 1e300\n", "show.sigma_peak"),
    "hold-1e308": ("[show]\nhold_s = 1e308\n", "show.hold_s"),
    "colour-nan": ("[lights.looks.idle]\nintensity = 0.3\ncolor = [nan, 0.5, 0.5]\n", "lights.looks.idle.color.0"),
    "colour-inf": ("[lights.looks.safe]\nintensity = 0.3\ncolor = [0.5, inf, 0.5]\n", "lights.looks.safe.color.1"),
    "colour-over-1": ("[lights.looks.idle]\nintensity = 0.3\ncolor = [0.5, 0.5, 7]\n", "lights.looks.idle.color.2"),
    "intensity-nan": ("[lights.looks.hold]\nintensity = nan\ncolor = [0.5, 0.5, 0.5]\n", "lights.looks.hold.intensity"),
    "backoff-negative": ("[camera]\nreconnect_backoff_s = [-1.0, 5.0]\n", "camera.reconnect_backoff_s.0"),
    "backoff-nan": ("[camera]\nreconnect_backoff_s = [nan, nan]\n", "camera.reconnect_backoff_s.0"),
    "backoff-zero": ("[camera]\nreconnect_backoff_s = [0.0, 0.0]\n", "camera.reconnect_backoff_s.0"),
    "backoff-reversed": ("[camera]\nreconnect_backoff_s = [10.0, 1.0]\n", "reconnect_backoff_s: the first wait"),
    "backoff-three": ("[camera]\nreconnect_backoff_s = [1.0, 2.0, 3.0]\n", "camera.reconnect_backoff_s"),
    "fps-true": ("[display]\nfps = true\n", "display.fps"),
    "height-string": ('[camera]\nheight = "1080"\n', "camera.height"),
    "own-process-yes": ('[dmx]\nown_process = "yes"\n', "dmx.own_process"),
    "mirror-1": ("[camera]\nmirror = 1\n", "camera.mirror"),
    "steps-float": ("[model]\nsteps = 2.0\n", "model.steps"),
    "threads-bool": ("[model]\nthreads = true\n", "model.threads"),
    "dir-number": ("[model]\ndir = 3\n", "model.dir"),
    "script-string-point": ('[presence]\nscript = [[0.0, "6"]]\n', "presence.script.0.1"),
    "script-negative": ("[presence]\nscript = [[-1.0, 6.0]]\n", "presence.script.0.0"),
    "script-inf": ("[presence]\nscript = [[0.0, inf]]\n", "presence.script.0.1"),
    "baud-string": ('[presence]\ntype = "ld2410"\nbaud = "256000"\n', "presence.baud"),
    "pin-negative": ('[presence]\ntype = "motion"\npin = -1\n', "presence.pin"),
    "long-string": ('[camera]\ntype = "v4l2"\ndevice = "' + "d" * 5000 + '"\n', "camera.device"),
    "long-name": ('[[lights.fixtures]]\nname = "' + "n" * 100 + '"\naddress = 1\nchannels = ["dimmer"]\n',
                  "lights.fixtures.0.name"),
    "escalate-huge": ("[camera]\nescalate_after = 1e3\n", "camera.escalate_after"),
    "trigger-km": ("[show]\ntrigger_m = 1000.0\nrelease_m = 2000.0\n", "show.trigger_m"),
    "datetime": ("[show]\nhold_s = 1979-05-27T07:32:00Z\n", "show.hold_s"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_config_is_refused_naming_file_and_key(tmp_path, case, capsys):
    text, key = HOSTILE[case]
    path = tmp_path / "humus.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}: " in str(err.value) and key in str(err.value)
    assert cli.main(["check-config", str(path)]) == 2
    err_text = capsys.readouterr().err
    assert key in err_text and "Traceback" not in err_text
    for command in (["run", "--sim", "--headless"], ["safe"]):     # the same refusal, before any device opens
        with pytest.raises(SystemExit) as stop:
            cli.main([*command, "--config", str(path), "--duration", "0.1"])
        assert stop.value.code == 2
    assert key in capsys.readouterr().err


def test_check_config_dev_zero_is_refused_quickly(tmp_path):
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "check-config", "/dev/zero"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"over {MAX_CONFIG_BYTES} bytes" in r.stderr and "Traceback" not in r.stderr
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match="over 1048576 bytes"):
        load_config(big)


def test_humus_safe_with_a_nan_colour_exits_2_without_traceback(tmp_path):
    path = tmp_path / "humus.toml"
    path.write_text(HOSTILE["colour-nan"][0])
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "safe", "--config", str(path), "--duration", "0.1"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "lights.looks.idle.color.0" in r.stderr and "Traceback" not in r.stderr


def test_sim_keeps_the_configs_presence_script(tmp_path):
    path = tmp_path / "humus.toml"
    path.write_text("[presence]\nscript = [[0.0, 5.0], [1.0, 0.5]]\nloop = false\n")
    config = cli.sim_config(load_config(path), headless=True)
    assert isinstance(config.presence, PresenceSim)
    assert config.presence.script == [(0.0, 5.0), (1.0, 0.5)] and config.presence.loop is False


def test_the_camera_retry_loop_has_a_floor_even_for_a_config_built_in_code():
    """reconnect_backoff_s is bounded by the config; a (0, 0) built without validation still waits."""
    import threading
    from firmware.devices.camera import watchdog as cw
    waits = []

    class Stop:
        def wait(self, s):
            waits.append(s)

    class Cfg:
        escalation_command, escalate_after, reconnect_backoff_s = None, 3, (0.0, float("nan"))
    w = cw.__dict__.get("CameraWatchdog") or next(v for v in vars(cw).values()
                                                  if isinstance(v, type) and hasattr(v, "_failed"))
    obj = w.__new__(w)
    obj.failures, obj.reconnects, obj.escalations, obj.cfg, obj._stop, obj.name = 0, 0, 0, Cfg(), Stop(), "camera"
    nxt = obj._failed(0.0)
    nxt = obj._failed(float("nan"))
    assert waits == [cw.MIN_BACKOFF_S, cw.MIN_BACKOFF_S] and nxt == cw.MIN_BACKOFF_S
    assert threading.active_count() >= 1


# --- property-based: hostile values where the show reads them, then the real box --------------------

numbers = (st.floats() | st.integers(-10, 10**6) | st.sampled_from([0, 0.0, -0.0, 1, 0.5, 2.5, 80.0, 1e308, 1e-308])
           | st.floats(0, 20))
values = (numbers | st.booleans() | st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=8)
          | st.lists(numbers, max_size=4))
SHOW_KEYS = ["trigger_m", "release_m", "dwell_s", "leave_grace_s", "cooldown_s", "approach_s", "immersion_s",
             "emergence_s", "hold_s", "release_s", "drift_period_s", "seed_strength", "sigma_peak", "decay",
             "footage_fps", "layout"]
look = st.fixed_dictionaries({"intensity": numbers, "color": st.lists(numbers, min_size=3, max_size=3)},
                             optional={"noise_follow": numbers, "strobe": numbers})
configs = st.fixed_dictionaries({}, optional={
    "show": st.dictionaries(st.sampled_from(SHOW_KEYS), values, max_size=4),
    "lights": st.fixed_dictionaries({}, optional={"fade_s": numbers, "looks": st.dictionaries(
        st.sampled_from(["idle", "approach", "immersion", "emergence", "hold", "release", "safe"]), look,
        max_size=3)}),
    "presence": st.fixed_dictionaries({}, optional={"script": st.lists(st.lists(numbers, min_size=2, max_size=2),
                                                                        max_size=4),
                                                    "stale_after_s": numbers, "rate_hz": numbers}),
    "camera": st.fixed_dictionaries({}, optional={"reconnect_backoff_s": st.lists(numbers, max_size=3),
                                                  "fps": values, "mirror": values}),
    "model": st.fixed_dictionaries({}, optional={"steps": values, "threads": st.integers(-1, 70)}),
})


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return "[" + ", ".join(_toml(x) for x in v) + "]"


def _render(data: dict) -> str:
    out = []
    for section, body in data.items():
        looks = body.pop("looks", {}) if section == "lights" else {}
        out.append(f"[{section}]")
        out += [f"{k} = {_toml(v)}" for k, v in body.items()]
        for name, lk in looks.items():
            out.append(f"[lights.looks.{name}]")
            out += [f"{k} = {_toml(v)}" for k, v in lk.items()]
    return "\n".join(out) + "\n"


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(configs)
def test_any_hostile_config_is_refused_by_key_or_runs_the_box(tiny_model, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("hc") / "humus.toml"
    base = (f"[model]\ndir = {json.dumps(str(tiny_model))}\nengine = \"onnxruntime\"\n"
            "[display]\ntype = \"headless\"\nwidth = 160\nheight = 96\nfps = 20.0\n")
    text = _render({k: dict(v) for k, v in data.items()})
    path.write_text(text.replace("[model]\n", base.split("[display]")[0], 1) + base[base.index("[display]"):]
                    if "[model]" in text else base + text)
    try:
        config = load_config(path)
    except ConfigError as exc:
        lines = str(exc).splitlines()
        assert len(lines) >= 2, str(exc)        # "invalid config" and one line per offending key
        first = lines[1].strip()
        assert first.startswith(f"{path}: ") and first.split(": ")[1].split(".")[0] in Config.model_fields
        event("refused with a ConfigError")
        return
    event("accepted: the box ran")
    box = Box(config, FakeClock(), threaded=False,
              footage_frames=[np.full((48, 64, 3), 90, np.uint8)])
    try:
        box.warm_up()
        run_frames(box, 1.0)
    finally:
        box.close()
    assert box.frames == 20 and box.devices.display.last.shape == (96, 160, 3)
    steps = config.model.steps
    if steps is not None and steps not in (1, 2, 4):      # the tiny model's schedules
        assert box.session.engine is None and any("no entry for" in t for _, t in box.trace.faults)
