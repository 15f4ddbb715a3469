"""TensorRT as the box runs it, minus TensorRT: the engine cache's real code with blobs that know
whether they are whole, and the tiny model the harness's releases carry."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from firmware.generate.engine_interface import Engine
from firmware.generate.manifest import NetworkInfo
from firmware.generate.trt import cache_key, cached_engine

TRT_VERSION, GPU = "10.3.0-sim", "Orin (simulated)"
_MAGIC = b"HUMUS-SIM-BLOB\n"
SIDE = 16


def make_blob(kind: bytes, seed: str, size: int = 3000) -> bytes:
    """A blob of `size` payload bytes headed by its own sha256: `is_whole` tells a torn one."""
    payload = (kind + b":" + seed.encode() + b"\n") * (size // (len(kind) + len(seed) + 2) + 1)
    payload = payload[:size]
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def is_whole(blob: bytes) -> bool:
    head = len(_MAGIC) + 32
    return (blob.startswith(_MAGIC) and len(blob) > head
            and hashlib.sha256(blob[head:]).digest() == blob[len(_MAGIC):head])


class SimTensorRT(Engine):
    """Opens like TensorRTEngine: the engine from `cached_engine` (built and cached on a miss, with
    the timing cache), then "deserialised": here, checked whole. Denoises with a stand-in."""

    kind = "tensorrt"

    def __init__(self, net: NetworkInfo, cache_dir: Path) -> None:
        super().__init__(net)
        self.timing_in: bytes | None = None            # the timing cache a build was given
        name = cache_key(net.sha256, TRT_VERSION, GPU, "fp16")
        blob, self.cached = cached_engine(Path(cache_dir), name, self._build)
        self.whole = is_whole(blob)
        self.providers = (f"TensorRT {TRT_VERSION} fp16 (simulated)",)

    def _build(self, timing: bytes) -> tuple[bytes, bytes]:
        self.timing_in = timing
        return make_blob(b"engine", self.net.sha256), make_blob(b"timing", GPU, 1000)

    def problems(self, must_be_cached: bool) -> list[str]:
        """What a power cut did to the cache, as this boot met it."""
        out = []
        if not self.whole:
            out.append("engine cache: a half-written engine was read (TensorRT would be handed it)")
        if self.timing_in and not is_whole(self.timing_in):
            out.append("engine cache: a half-written timing cache was read")
        if must_be_cached and not self.cached:
            out.append("engine cache: the engine built before the cut is gone (minutes of rebuilding at boot)")
        return out

    def _run(self, x, sigma, decay, subject=None):
        return np.tanh(x * 0.5).astype(np.float32)


def write_model(dest: Path, name: str) -> Path:
    """A model folder the box accepts (manifest checked, sha256 of the network file): the bytes of
    the network are a stand-in, which SimTensorRT never parses."""
    dest.mkdir(parents=True, exist_ok=True)
    onnx = make_blob(b"onnx", name, 4000)
    (dest / "student.onnx").write_bytes(onnx)
    shape = [1, 3, SIDE, SIDE]
    manifest = {"format": "humus-model/1", "name": name, "resolution": [SIDE, SIDE], "channels": 3,
                "value_range": [-1.0, 1.0], "color": "RGB",
                "precond": {"kind": "edm", "sigma_data": 0.5, "sigma_min": 0.002, "sigma_max": 80.0},
                "conditioning": {"decay": {"range": [0.0, 1.0], "default": 0.5}},
                "networks": {"student": {"file": "student.onnx", "sha256": hashlib.sha256(onnx).hexdigest(),
                                         "batch": 1, "inputs": {"x": shape, "sigma": [1], "decay": [1]},
                                         "outputs": {"denoised": shape}, "sampler": "consistency",
                                         "steps": {"1": [80.0], "2": [80.0, 0.8]}, "default_steps": 2}}}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return dest
