"""Engines run one network of a model directory: `denoise(x, sigma, cond) -> x0_hat`.

Backends, tried in this order by `engine = "auto"`:
  tensorrt     native TensorRT engine built on the box from the ONNX (firmware.generate.trt)
  onnxruntime  providers TensorrtExecutionProvider -> CUDAExecutionProvider -> CPUExecutionProvider
What actually runs is read back from the session, logged, and reported by `humus status`.
Vendor modules are imported here lazily, inside the backend that needs them.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from firmware.generate.conditions import Conditions
from firmware.generate.engine_interface import Engine, EngineError
from firmware.generate.manifest import ModelInfo, NetworkInfo
from firmware.generate.providers import choose_providers

log = logging.getLogger("humus.engine")


class OnnxRuntimeEngine(Engine):
    kind = "onnxruntime"

    def __init__(self, net: NetworkInfo, providers: tuple[str, ...] | None = None, threads: int = 0,
                 cache_dir: Path | None = None) -> None:
        super().__init__(net)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EngineError(f"onnxruntime is not installed: {exc}") from None
        available = ort.get_available_providers()
        chosen = choose_providers(available, providers)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Leave one core to the display and DMX threads: a generation that takes every core makes the
        # projector stutter, which the audience sees; a slower generation they do not.
        opts.intra_op_num_threads = threads or max(1, thread_count_hint() - 1)
        opts.inter_op_num_threads = 1
        # Idle ORT worker threads spin-wait by default, burning the core the display needs.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        provider_args = [self._provider_options(p, cache_dir) for p in chosen]
        try:
            self.session = new_session(lambda: ort.InferenceSession(
                str(net.path), sess_options=opts, providers=chosen, provider_options=provider_args), cache_dir)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"{net.path}: onnxruntime could not load it: {exc}") from None
        # What actually runs, not what we asked for.
        self.providers = tuple(self.session.get_providers())
        log.info("onnxruntime engine for %s runs on %s", net.path.name, ", ".join(self.providers))
        self._binding = self.session.io_binding()
        self._out = np.empty(net.outputs["denoised"], np.float32)

    @staticmethod
    def _provider_options(provider: str, cache_dir: Path | None) -> dict:
        if provider == "TensorrtExecutionProvider" and cache_dir is not None:
            from firmware.appliance import fsops
            fsops.makedirs(cache_dir)
            return {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache_dir), "trt_timing_cache_enable": True}
        return {}

    def _run(self, feed):
        # IO binding into a preallocated output: no per-call allocation of the result.
        b = self._binding
        for name, arr in feed.items():
            b.bind_cpu_input(name, arr)
        b.bind_output("denoised", "cpu", element_type=np.float32, shape=self._out.shape,
                      buffer_ptr=self._out.ctypes.data)
        self.session.run_with_iobinding(b)
        return self._out.copy()


_TORN_ORT_ENGINE = re.compile(r"could not deserialize engine from cache: (\S+)")


def new_session(make, cache_dir: Path | None):
    """`make()`, once more after removing a cached engine onnxruntime refuses to deserialise.

    onnxruntime's TensorRT provider writes its engine cache itself, with no fsync and no rename
    (firmware/crash cannot record it): a power cut during its first build can leave a truncated
    engine, which it then refuses at every start, so the box would run on the CPU for good. Only a
    file inside our own cache folder is removed; the second session builds it again."""
    try:
        return make()
    except Exception as exc:
        m = _TORN_ORT_ENGINE.search(str(exc))
        if cache_dir is None or m is None or Path(m.group(1)).resolve().parent != Path(cache_dir).resolve():
            raise
        from firmware.appliance import fsops
        log.warning("onnxruntime refuses its cached engine %s (cut short by a power cut?); "
                    "removed, building it again", m.group(1))
        fsops.unlink(m.group(1), missing_ok=True)
        return make()


def _open_tensorrt(net: NetworkInfo, cache_dir: Path | None, threads: int) -> Engine:
    from firmware.generate.trt import TensorRTEngine  # imports tensorrt lazily
    return TensorRTEngine(net, cache_dir=cache_dir)


def _open_tensorrt_mixed(net: NetworkInfo, cache_dir: Path | None, threads: int) -> Engine:
    """fp16 with normalisation/softmax layers pinned to fp32: the retry when plain fp16 fails the guard."""
    from firmware.generate.trt import TensorRTEngine
    return TensorRTEngine(net, cache_dir=cache_dir, fp32_sensitive=True)


def _open_ort(net: NetworkInfo, cache_dir: Path | None, threads: int) -> Engine:
    return OnnxRuntimeEngine(net, threads=threads, cache_dir=cache_dir)


def _open_ort_cpu(net: NetworkInfo, cache_dir: Path | None, threads: int) -> Engine:
    return OnnxRuntimeEngine(net, providers=("CPUExecutionProvider",), threads=threads)


# Explicit backend table: engine kind -> constructors to try, in order.
BACKENDS = {
    "tensorrt": (_open_tensorrt, _open_tensorrt_mixed),
    "onnxruntime": (_open_ort, _open_ort_cpu),
    "auto": (_open_tensorrt, _open_tensorrt_mixed, _open_ort, _open_ort_cpu),
}


def open_engine(model: ModelInfo, network: str = "student", kind: str = "auto",
                cache_dir: Path | None = None, threads: int = 0, guard: bool = True) -> Engine:
    """Open the first backend of `kind` that loads and passes the reference check."""
    net = model.network(network)
    errors: list[str] = []
    for opener in BACKENDS[kind]:
        try:
            engine = opener(net, cache_dir, threads)
        except EngineError as exc:
            if str(exc) not in errors:  # the same missing library is logged once, not per variant
                errors.append(str(exc))
                log.info("engine fallback: %s", exc)
            continue
        if guard:
            problem = check_reference(engine, net)
            if problem:
                errors.append(f"{engine.describe()}: {problem}")
                log.warning("engine %s failed its reference check (%s); trying the next one",
                            engine.describe(), problem)
                engine.close()
                continue
        return engine
    raise EngineError(f"no engine could run {net.path}: " + "; ".join(errors))


def check_reference(engine: Engine, net: NetworkInfo) -> str | None:
    """Compare the engine with the fp32 reference pair shipped in the manifest. None = fine."""
    ref = net.reference or {}
    path = net.path.parent / ref.get("output", "reference.npz")
    if not ref or not path.is_file():
        return None  # nothing to compare with (e.g. a test model); the sha256 still vouches for it
    want = dict(net.inputs)
    want["denoised"] = net.outputs["denoised"]
    try:
        import zipfile
        # np.load inflates whatever the zip declares: bound it by what the manifest's shapes need
        limit = 8 * sum(int(np.prod(s)) for s in want.values()) + (1 << 16)
        with zipfile.ZipFile(path) as z:
            declared = sum(i.file_size for i in z.infolist())
        if declared > limit:
            return f"reference {path.name} unpacks to {declared} bytes, more than its arrays need ({limit})"
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in want}
    except Exception as exc:  # not an npz, a key missing, a pickle: the reference is unusable
        return f"reference {path.name} unreadable ({type(exc).__name__}: {exc})"
    for k, shape in want.items():
        if tuple(data[k].shape) != tuple(shape) or data[k].dtype != np.float32:
            return (f"reference {path.name}: {k} is {data[k].dtype}{list(data[k].shape)}, "
                    f"expected float32{list(shape)}")
    try:
        cond = Conditions.from_inputs({k: v for k, v in data.items() if k not in ("x", "sigma", "denoised")})
        got = engine.denoise(data["x"], data["sigma"], cond)
    except Exception as exc:  # the runtime's own error types
        return f"engine failed on the reference input ({type(exc).__name__}: {exc})"
    if not np.all(np.isfinite(got)):
        return "output has NaN/Inf"
    if float(np.abs(got).max()) < 1e-6:
        return "output is all zero (black)"
    err = float(np.abs(got - data["denoised"]).max())
    tol = float(ref.get("atol", 2e-2))
    if err > tol:
        return f"max abs difference {err:.4g} from the fp32 reference exceeds {tol:g}"
    return None


def thread_count_hint() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
