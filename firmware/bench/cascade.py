"""`humus bench` figures for the cascade and the real display path.

* The upsampler stage: its median time per image, and images/s at the model's *output*
  resolution (the generator's steps plus one upsampler pass), which is what the wall shows.
* FLOPs per finished image (generator steps + upsampler) and the Orin Nano roofline estimate.
* `--window`: the realtime loop through a real X11 window (pygame, 1920x1080 by default), not the
  headless sink: an X server must receive and present every frame, which costs what a headless
  copy does not. With no screen, an Xvfb is started for the run when one is installed.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time

import numpy as np


def bench_upsampler(model, seconds: float, threads: int, providers: tuple[str, ...] | None = None) -> dict | None:
    from firmware.bench.cost import _stats, _timeit
    from firmware.generate.stages import Upsampler

    if model.upsampler is None:
        return None
    up = Upsampler(model.upsampler, threads=max(1, threads), providers=providers)
    if up.failed:
        return {"skipped": f"upsampler {up.failed}"}
    x = np.random.default_rng(0).uniform(-1, 1, (1, model.channels, *model.resolution)).astype(np.float32)
    s = _stats(_timeit(lambda: up(x), seconds / 2))
    providers = up.providers
    up.close()
    return {"median_ms": round(s["median_ms"], 3), "p99_ms": round(s["p99_ms"], 3),
            "output": list(model.output_resolution), "providers": list(providers)}


def output_images_per_s(step_ms: list[float], upsampler_ms: float | None) -> float:
    """One finished image = its generator steps + at most one upsampler pass."""
    return 1000.0 / (sum(step_ms) + (upsampler_ms or 0.0))


def cascade_estimate(model, net, steps: int) -> dict | None:
    """FLOPs per finished image and the Orin Nano estimate, upsampler included."""
    from firmware.bench.cost import BATCH1_EFFICIENCY, ORIN_NANO_BYTES_S, ORIN_NANO_FP16_FLOPS, onnx_cost

    gen = onnx_cost(net.path)
    if gen is None:
        return None
    up = onnx_cost(model.upsampler.path) if model.upsampler is not None else (0.0, 0.0)
    if up is None:
        return None
    t = lambda c: max(c[0] / (ORIN_NANO_FP16_FLOPS * BATCH1_EFFICIENCY), c[1] / ORIN_NANO_BYTES_S)  # noqa: E731
    t_image = steps * t((gen[0] / net.batch, gen[1] / net.batch)) + t(up)
    return {"output": list(model.output_resolution), "steps": steps,
            "generator_gflop_per_image": steps * gen[0] / net.batch / 1e9, "upsampler_gflop": up[0] / 1e9,
            "gflop_per_image": (steps * gen[0] / net.batch + up[0]) / 1e9,
            "orin_nano_ms_per_image": t_image * 1e3, "orin_nano_images_per_s": 1.0 / t_image}


@contextlib.contextmanager
def x_display(width: int, height: int):
    """An X display for a real window: the one in $DISPLAY, else an Xvfb started for the run."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"], "existing"
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise RuntimeError("no screen ($DISPLAY unset) and no Xvfb installed (apt install xvfb)")
    num = 90 + os.getpid() % 500
    proc = subprocess.Popen([xvfb, f":{num}", "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock = f"/tmp/.X11-unix/X{num}"
        for _ in range(100):
            if os.path.exists(sock) or proc.poll() is not None:
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            raise RuntimeError(f"Xvfb :{num} exited ({proc.returncode})")
        saved = {k: os.environ.get(k) for k in ("DISPLAY", "SDL_VIDEODRIVER")}
        os.environ["DISPLAY"], os.environ["SDL_VIDEODRIVER"] = f":{num}", "x11"
        try:
            yield f":{num}", "Xvfb"
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def windowed(config):
    """The config with a real pygame window at the configured size (X11, not fullscreen)."""
    from firmware.config.devices import DisplayPygame

    d = config.display
    return config.model_copy(update={"display": DisplayPygame(type="pygame", driver="x11", fullscreen=False,
                                                              width=d.width, height=d.height, fps=d.fps)})
