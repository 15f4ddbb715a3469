"""`humus-export engine`: build (or check) the accelerated engine for a model directory, on the box.

A TensorRT engine is tied to the GPU and the TensorRT version, so it is built where it runs: on the
Jetson, from the shipped ONNX, into the engine cache the runtime reads (keyed by ONNX sha256 +
TensorRT version + GPU name, see firmware/generate/trt.py). The runtime would build it at first start
anyway; running this after an update moves the minutes of building out of the show's start.
Then every engine `auto` would try is opened and checked against the manifest's fp32 reference, and
what would run is printed. Needs no torch: it goes through the firmware's own engines.
"""
from __future__ import annotations

import json
from pathlib import Path


def build_engine_cmd(model_dir: str, network: str, kind: str, cache: str) -> dict:
    from firmware.generate.engine_interface import EngineError
    from firmware.generate.engines import open_engine
    from firmware.generate.manifest import load_model_dir

    model = load_model_dir(model_dir)
    report = {"model": str(model_dir), "network": network, "cache": cache}
    try:
        engine = open_engine(model, network, kind, cache_dir=Path(cache))
    except EngineError as exc:
        report.update(ok=False, error=str(exc))
        return report
    report.update(ok=True, engine=engine.describe(), kind=engine.kind)
    engine.close()
    return report


def register(sub) -> None:
    e = sub.add_parser("engine", help="build/check the TensorRT (or onnxruntime) engine for a model dir")
    e.add_argument("--model", default="models/default")
    e.add_argument("--network", default="student")
    e.add_argument("--engine", default="auto", choices=["auto", "tensorrt", "onnxruntime"])
    e.add_argument("--cache", default="/var/lib/humus/engines", help="the runtime's engine cache")
    e.set_defaults(fn=lambda a: _run(a))


def _run(a) -> None:
    report = build_engine_cmd(a.model, a.network, a.engine, a.cache)
    print(json.dumps(report, indent=1))
    if not report["ok"]:
        raise SystemExit(1)
