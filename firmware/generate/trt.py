"""Native TensorRT engine, built on the box from the shipped ONNX, cached, fp16 with a guard.

A TensorRT engine is tied to the GPU model and the TensorRT version, so it is built on the box and
cached under a key of (ONNX sha256, TensorRT version, GPU name); any change rebuilds. A timing cache
makes rebuilds fast. Both cache files are written atomically (`cached_engine`), so a power cut during a
first boot leaves each whole or absent: TensorRT is never handed half an engine. fp16 can overflow in GroupNorm/attention: `open_engine` compares the output with
the manifest's fp32 reference and, on failure, `build_engine` is retried with normalisation and
softmax layers pinned to fp32 before falling back to the next engine.

Imports `tensorrt` and `cuda` (cuda-python) lazily: only this backend needs them.
"""
from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Callable

import numpy as np

from firmware.generate.engine_interface import Engine, EngineError
from firmware.generate.manifest import NetworkInfo

log = logging.getLogger("humus.trt")

FP32_LAYER_PATTERN = re.compile(r"(norm|softmax|reduce|pow|sqrt|exp)", re.IGNORECASE)


def cache_key(onnx_sha256: str, trt_version: str, gpu_name: str, precision: str) -> str:
    """Pure: the engine file name for this model on this box. Any part changing means a rebuild."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower() or "gpu"
    tag = hashlib.sha256(f"{onnx_sha256}|{trt_version}|{gpu_name}|{precision}".encode()).hexdigest()[:16]
    return f"{onnx_sha256[:12]}-trt{trt_version}-{gpu}-{precision}-{tag}.engine"


def _cudart():
    """cuda-python's runtime module: `cuda.bindings.runtime` from cuda-python 12.6 on (the only
    name left in 13.x, as JetPack 7 ships it), `cuda.cudart` before."""
    try:
        from cuda.bindings import runtime
        return runtime
    except ImportError:
        from cuda import cudart
        return cudart


def _gpu_name() -> str:
    cudart = _cudart()
    err, props = cudart.cudaGetDeviceProperties(0)
    if int(err) != 0:
        raise EngineError(f"no CUDA device ({err})")
    name = props.name
    return name.decode() if isinstance(name, bytes) else str(name)


TIMING_CACHE = "timing.cache"


def cached_engine(cache_dir: Path, name: str, build: Callable[[bytes], tuple[bytes, bytes]]) -> tuple[bytes, bool]:
    """(engine blob, came from the cache). On a miss, `build(timing cache bytes)` returns the new blob
    and timing cache, and both are cached, atomically. The folder is made durably: a build takes
    minutes, and an engine synced into a folder whose own name was not would vanish at a power cut."""
    from firmware.appliance import fsops
    from firmware.appliance.atomic import write_atomic
    fsops.makedirs(cache_dir, durable=True)
    path = cache_dir / name
    if path.is_file():
        return path.read_bytes(), True
    timing = cache_dir / TIMING_CACHE
    blob, new_timing = build(timing.read_bytes() if timing.is_file() else b"")
    write_atomic(timing, new_timing)
    write_atomic(path, blob)
    return blob, False


def build_engine(onnx_path: Path, timing_cache: bytes, fp16: bool = True, fp32_sensitive: bool = False,
                 progress=None) -> tuple[bytes, bytes]:
    """Build and serialise an engine: (engine, new timing cache). `fp32_sensitive` keeps
    normalisation-like layers in fp32."""
    import tensorrt as trt
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"{onnx_path}: TensorRT cannot parse it: {errs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    tcache = config.create_timing_cache(timing_cache)
    config.set_timing_cache(tcache, ignore_mismatch=False)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
        if fp32_sensitive:
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
            for i in range(network.num_layers):
                layer = network.get_layer(i)
                if FP32_LAYER_PATTERN.search(layer.name) or FP32_LAYER_PATTERN.search(str(layer.type)):
                    layer.precision = trt.float32
                    for j in range(layer.num_outputs):
                        layer.set_output_type(j, trt.float32)
    if progress:
        progress(f"building TensorRT engine for {onnx_path.name} (fp16={fp16}); this takes minutes")
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise EngineError(f"{onnx_path}: TensorRT engine build failed")
    return bytes(blob), bytes(config.get_timing_cache().serialize())


class TensorRTEngine(Engine):
    kind = "tensorrt"

    def __init__(self, net: NetworkInfo, cache_dir: Path | None = None, fp16: bool = True,
                 fp32_sensitive: bool = False) -> None:
        super().__init__(net)
        try:
            import tensorrt as trt
            cudart = _cudart()
        except ImportError as exc:
            raise EngineError(f"TensorRT is not available: {exc}") from None
        self._cudart = cudart
        cache_dir = Path(cache_dir or "/var/lib/humus/engines")
        precision = "fp16" if fp16 else "fp32"
        if fp16 and fp32_sensitive:
            precision = "fp16mixed"
        path = cache_dir / cache_key(net.sha256, trt.__version__, _gpu_name(), precision)
        blob, cached = cached_engine(cache_dir, path.name, lambda timing: build_engine(
            net.path, timing, fp16, fp32_sensitive, progress=log.info))
        if cached:
            log.info("TensorRT engine from cache %s", path.name)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(blob)
        if self.engine is None:
            from firmware.appliance import fsops
            fsops.unlink(path, missing_ok=True)  # a stale/corrupt cache entry: rebuild next time
            raise EngineError(f"{path}: cannot deserialise the cached engine")
        self.context = self.engine.create_execution_context()
        self.providers = (f"TensorRT {trt.__version__} {precision}",)
        # Preallocated host and device buffers: nothing is allocated per frame.
        self._host = {n: np.empty(s, np.float32) for n, s in {**net.inputs, **net.outputs}.items()}
        self._dev = {}
        for name, arr in self._host.items():
            err, ptr = cudart.cudaMalloc(arr.nbytes)
            if int(err) != 0:
                self.close()   # the caller never gets this engine: free what was allocated so far
                raise EngineError(f"cudaMalloc failed for {name}: {err}")
            self._dev[name] = ptr
            self.context.set_tensor_address(name, ptr)
        err, self._stream = cudart.cudaStreamCreate()

    def _run(self, feed):
        cu = self._cudart
        h2d, d2h = cu.cudaMemcpyKind.cudaMemcpyHostToDevice, cu.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name, arr in feed.items():
            cu.cudaMemcpyAsync(self._dev[name], arr.ctypes.data, arr.nbytes, h2d, self._stream)
        self.context.execute_async_v3(self._stream)
        out = self._host["denoised"]
        cu.cudaMemcpyAsync(out.ctypes.data, self._dev["denoised"], out.nbytes, d2h, self._stream)
        cu.cudaStreamSynchronize(self._stream)
        return out.copy()

    def close(self) -> None:
        for ptr in self._dev.values():
            self._cudart.cudaFree(ptr)
        self._dev = {}
