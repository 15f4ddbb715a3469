"""Measurement primitives of `humus bench`: timing loops, FLOPs and bytes from an ONNX graph, and the
Orin Nano roofline estimate (shared by stages.py and cascade.py)."""
from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import numpy as np


def _timeit(fn, seconds: float = 1.0, min_runs: int = 5, max_runs: int = 10_000) -> list[float]:
    out = []
    end = time.perf_counter() + seconds
    while (len(out) < min_runs or time.perf_counter() < end) and len(out) < max_runs:
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _stats(samples: list[float]) -> dict:
    s = sorted(samples)
    p = lambda q: s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]  # noqa: E731
    return {"median_ms": statistics.median(s) * 1e3, "p99_ms": p(0.99) * 1e3, "n": len(s)}


def onnx_flops(path: Path) -> float | None:
    cost = onnx_cost(path)
    return cost[0] if cost else None


def onnx_cost(path: Path) -> tuple[float, float] | None:
    """2 x multiply-adds of Conv, Gemm, MatMul and Einsum nodes, per batch.

    Shapes are read from one real onnxruntime run with every operand exposed as an output:
    static shape inference loses dimensions behind Reshape/Shape chains (GroupNorm exports)."""
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        return None
    m = onnx.load(str(path))
    inits = {i.name: list(i.dims) for i in m.graph.initializer}
    heavy = [n for n in m.graph.node if n.op_type in ("Conv", "Gemm", "MatMul", "Einsum")]
    wanted = {t for n in heavy for t in list(n.input[:2]) + [n.output[0]] if t and t not in inits}
    have = {o.name for o in m.graph.output}
    for name in sorted(wanted - have - {i.name for i in m.graph.input}):
        m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
             for i in sess.get_inputs()}
    names = [o.name for o in sess.get_outputs()]
    shapes = dict(zip(names, (list(a.shape) for a in sess.run(names, feeds))))
    shapes.update({i: list(v.shape) for i, v in feeds.items()})
    shapes.update(inits)
    flops = 0.0
    # fp16 bytes moved per evaluation: weights once, each heavy node's output written and read once
    moved = 2.0 * sum(math.prod(v) for v in inits.values())
    for n in heavy:
        out, a = shapes.get(n.output[0]), shapes.get(n.input[0])
        if out is not None:
            moved += 2 * 2.0 * math.prod(out)
        w = shapes.get(n.input[1]) if len(n.input) > 1 else None
        if out is None or a is None:
            continue
        if n.op_type == "Conv":
            flops += 2.0 * math.prod(out) * math.prod(w[1:])
        elif n.op_type in ("MatMul", "Gemm"):
            flops += 2.0 * math.prod(out) * a[-1]
        else:  # Einsum: every index of the equation is looped over once
            eq = next(x.s.decode() for x in n.attribute if x.name == "equation").replace(" ", "")
            lhs = eq.split("->")[0].split(",")
            sizes = {}
            for term, shape in zip(lhs, (a, w)):
                sizes.update(zip(term, shape or []))
            flops += 2.0 * math.prod(sizes.values())
    return flops, moved


ORIN_NANO_FP16_FLOPS = 17e12   # the figure for an Orin Nano (fp16, peak)
ORIN_NANO_BYTES_S = 102e9        # LPDDR5 bandwidth
BATCH1_EFFICIENCY = 0.2          # small convs at batch 1 reach a fraction of peak (launches, tails)


def jetson_estimate(flops_per_eval: float, bytes_per_eval: float, steps: int, side: int) -> dict:
    """Roofline estimate for an Orin Nano: an evaluation takes the longer of its compute at 20% of
    peak and its memory traffic at full bandwidth. Both grow with pixel count, so at resolution r
    the cost scales by (r/side)^2; the affordable side at 30 images/s follows."""
    t_compute = flops_per_eval / (ORIN_NANO_FP16_FLOPS * BATCH1_EFFICIENCY)
    t_memory = bytes_per_eval / ORIN_NANO_BYTES_S
    t_eval = max(t_compute, t_memory)
    ips = 1.0 / (t_eval * steps)
    return {"flops_per_eval_g": flops_per_eval / 1e9, "flops_per_image_g": flops_per_eval * steps / 1e9,
            "mbytes_per_eval_fp16": bytes_per_eval / 1e6, "bound": "compute" if t_compute >= t_memory
            else "memory", "eval_ms": t_eval * 1e3, "orin_nano_images_per_s": ips,
            "max_side_at_30_images_per_s": int(side * math.sqrt(ips / 30.0) // 8 * 8)}
