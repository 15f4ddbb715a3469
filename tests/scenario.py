"""Helpers for whole-box scenarios: a small display, a fake clock, the tiny real ONNX model."""
from __future__ import annotations

import numpy as np

from firmware.box.conductor import Box
from firmware.config.load import parse_config


def small_config(model_dir, **sections):
    data = {"display": {"type": "headless", "width": 320, "height": 180, "fps": 20.0},
            "model": {"dir": str(model_dir), "engine": "onnxruntime", "engine_cache": "/tmp/humus-engines"},
            "show": {"layout": "diptych"}}
    for k, v in sections.items():
        data.setdefault(k, {}).update(v)
    return parse_config(data, "<test>")


def run_frames(box: Box, seconds: float, on_frame=None):
    period = 1.0 / box.config.display.fps
    for _ in range(int(round(seconds / period))):
        frame = box.step()
        if on_frame:
            on_frame(box, frame)
        box.clock.advance(period)


def hf_energy(frame: np.ndarray) -> float:
    """Mean absolute difference between horizontal neighbours: ~0 on smooth pictures, large on noise."""
    f = frame.astype(np.int16)
    return float(np.abs(np.diff(f, axis=1)).mean())
