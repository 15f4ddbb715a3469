"""Run a shipped ONNX network through torch eager, op by op, for `humus bench`'s speed ratio.

The box runs ONNX (onnxruntime / TensorRT); the studio trains in torch. To compare like with like,
this executes the *same graph and weights* from the ONNX file with torch's eager kernels (no graph
optimisation), so the ratio shows what the ONNX engines buy. Prints one JSON line.

    python -m export.torch_eager --model models/default --network student --seconds 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _conv(x, w, b=None, a=None):
    pads = a.get("pads", [0] * 4)
    if pads[:2] != pads[2:]:
        x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
        pads = [0, 0]
    return F.conv2d(x, w, b, stride=a.get("strides", [1, 1]), padding=pads[:2],
                    dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))


def _resize(x, roi=None, scales=None, sizes=None, a=None):
    mode = a.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if sizes is not None and sizes.numel():
        size = [int(s) for s in sizes[2:]]
        return F.interpolate(x, size=size, mode="nearest" if mode == "nearest" else "bilinear")
    sf = [float(s) for s in scales[2:]]
    return F.interpolate(x, scale_factor=sf, mode="nearest" if mode == "nearest" else "bilinear")


def _norm(x, scale, bias, a, groups=None):
    eps = a.get("epsilon", 1e-5)
    if groups is None:
        return F.instance_norm(x, weight=scale, bias=bias, eps=eps)
    return F.group_norm(x, groups, scale, bias, eps)


OPS = {
    "Add": lambda a, x, y: x + y, "Sub": lambda a, x, y: x - y, "Mul": lambda a, x, y: x * y,
    "Div": lambda a, x, y: x / y, "Pow": lambda a, x, y: torch.pow(x, y),
    "Sqrt": lambda a, x: torch.sqrt(x), "Exp": lambda a, x: torch.exp(x), "Log": lambda a, x: torch.log(x),
    "Sin": lambda a, x: torch.sin(x), "Cos": lambda a, x: torch.cos(x), "Neg": lambda a, x: -x,
    "Tanh": lambda a, x: torch.tanh(x), "Sigmoid": lambda a, x: torch.sigmoid(x),
    "Relu": lambda a, x: F.relu(x), "Erf": lambda a, x: torch.erf(x), "Abs": lambda a, x: x.abs(),
    "Reciprocal": lambda a, x: 1.0 / x, "Identity": lambda a, x: x, "Softmax": lambda a, x: torch.softmax(x, a.get("axis", -1)),
    "Conv": lambda a, x, w, b=None: _conv(x, w, b, a),
    "ConvTranspose": lambda a, x, w, b=None: F.conv_transpose2d(x, w, b, stride=a.get("strides", [1, 1]),
                                                               padding=a.get("pads", [0] * 4)[:2]),
    "MatMul": lambda a, x, y: torch.matmul(x, y),
    "Gemm": lambda a, x, w, b=None: (a.get("alpha", 1.0) * (x.T if a.get("transA") else x)
                                     @ (w.T if a.get("transB") else w)) + (a.get("beta", 1.0) * b if b is not None else 0),
    "Reshape": lambda a, x, s: x.reshape([int(d) if int(d) != 0 else x.shape[i] for i, d in enumerate(s)]),
    "Transpose": lambda a, x: x.permute(*a["perm"]),
    "Concat": lambda a, *xs: torch.cat(xs, dim=a["axis"]),
    "Unsqueeze": lambda a, x, ax=None: _unsqueeze(x, ax if ax is not None else a["axes"]),
    "Squeeze": lambda a, x, ax=None: x.squeeze(*[int(i) for i in (ax if ax is not None else a.get("axes", []))]) if (ax is not None or a.get("axes")) else x.squeeze(),
    "Shape": lambda a, x: torch.tensor(x.shape, dtype=torch.int64),
    "Gather": lambda a, x, i: torch.index_select(x, a.get("axis", 0), i.reshape(-1).long()).reshape(
        list(x.shape[:a.get("axis", 0)]) + list(i.shape) + list(x.shape[a.get("axis", 0) + 1:])),
    "Cast": lambda a, x: x.to({1: torch.float32, 7: torch.int64, 6: torch.int32, 9: torch.bool, 10: torch.float16}[a["to"]]),
    "Resize": lambda a, x, roi=None, scales=None, sizes=None: _resize(x, roi, scales, sizes, a),
    "InstanceNormalization": lambda a, x, s, b: _norm(x, s, b, a),
    "GroupNormalization": lambda a, x, s, b: _norm(x, s, b, a, a["num_groups"]),
    "ReduceMean": lambda a, x, ax=None: x.mean(dim=[int(i) for i in (ax if ax is not None else a["axes"])],
                                               keepdim=bool(a.get("keepdims", 1))),
    "Flatten": lambda a, x: x.flatten(a.get("axis", 1)),
    "Expand": lambda a, x, s: x.expand(*[int(d) for d in s]) if len(s) == x.dim() else x * torch.ones([int(d) for d in s]),
    "Slice": lambda a, x, st, en, ax=None, sp=None: _slice(x, st, en, ax, sp),
    "Where": lambda a, c, x, y: torch.where(c.bool(), x, y),
    "Equal": lambda a, x, y: x == y,
    "Split": lambda a, x, sizes=None: _split(x, sizes, a),
    "Einsum": lambda a, *xs: torch.einsum(_s(a["equation"]), *xs),
    "DepthToSpace": lambda a, x: _depth_to_space(x, a["blocksize"], _s(a.get("mode", b"DCR"))),
    "SpaceToDepth": lambda a, x: F.pixel_unshuffle(x, a["blocksize"]),
    "ConstantOfShape": lambda a, s: torch.full([int(d) for d in s], float(
        __import__("onnx").numpy_helper.to_array(a["value"]).item()) if "value" in a else 0.0),
    "Clip": lambda a, x, lo=None, hi=None: torch.clamp(x, lo, hi),
    "Max": lambda a, *xs: torch.stack(torch.broadcast_tensors(*xs)).max(0).values,
    "Min": lambda a, *xs: torch.stack(torch.broadcast_tensors(*xs)).min(0).values,
}


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


def _split(x, sizes, a):
    axis = a.get("axis", 0)
    if sizes is None:
        sizes = a.get("split")
    if sizes is None:
        n = a.get("num_outputs", 2)
        return tuple(torch.chunk(x, n, dim=axis))
    return tuple(torch.split(x, [int(v) for v in sizes], dim=axis))


def _depth_to_space(x, b, mode):
    if mode == "CRD":
        return F.pixel_shuffle(x, b)
    n, c, h, w = x.shape
    x = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(n, c // (b * b), h * b, w * b)


def _unsqueeze(x, axes):
    for ax in sorted(int(i) for i in axes):
        x = x.unsqueeze(ax)
    return x


def _slice(x, starts, ends, axes=None, steps=None):
    axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    idx = [slice(None)] * x.dim()
    for s, e, a, st in zip(starts, ends, axes, steps):
        n = x.shape[a]
        idx[a] = slice(max(-n, min(int(s), n)), max(-n - 1, min(int(e), n)), st)
    return x[tuple(idx)]


class EagerGraph:
    """An ONNX graph executed node by node with torch eager kernels."""

    def __init__(self, path: str) -> None:
        import onnx
        from onnx import numpy_helper
        m = onnx.load(path)
        self.consts = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in m.graph.initializer}
        self.nodes = []
        for n in m.graph.node:
            a = _attrs(n)
            if n.op_type == "Constant":
                self.consts[n.output[0]] = torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
                continue
            if n.op_type not in OPS or OPS[n.op_type] is None:
                raise NotImplementedError(f"{path}: op {n.op_type} not supported by the eager runner")
            self.nodes.append((OPS[n.op_type], a, list(n.input), list(n.output)))
        self.inputs = [i.name for i in m.graph.input if i.name not in self.consts]
        self.outputs = [o.name for o in m.graph.output]

    @torch.inference_mode()
    def __call__(self, **feeds: torch.Tensor):
        env = dict(self.consts)
        env.update(feeds)
        for fn, a, ins, outs in self.nodes:
            args = [env[i] if i else None for i in ins]
            while args and args[-1] is None:
                args.pop()
            result = fn(a, *args)
            if isinstance(result, tuple):
                env.update(zip(outs, result))
            else:
                env[outs[0]] = result
        return [env[o] for o in self.outputs]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--network", default="student")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--checkpoint", help="a training checkpoint of the same network: time the original "
                   "nn.Module (the studio's torch model) instead of the ONNX graph op by op")
    p.add_argument("--weights", default="ema", choices=["ema", "model"],
                   help="which weights of --checkpoint: its EMA or the raw ones (key 'model')")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1, as the box gives onnxruntime: one core stays free)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    sys.path.insert(0, ".")
    from firmware.generate.manifest import load_model_dir
    net = load_model_dir(a.model).network(a.network)
    if a.checkpoint:
        from export.train import load_denoiser
        module = load_denoiser(a.checkpoint, a.weights).eval()

        def g(x, sigma, decay, subject=None):
            with torch.inference_mode():
                return [module(x, sigma, decay, None if subject is None else subject.long())]
        kind = f"nn.Module from {a.checkpoint}"
    else:
        g = EagerGraph(str(net.path))
        kind = "ONNX graph op by op"
    x = torch.randn(*net.inputs["x"])
    s = torch.full((net.batch,), 2.0)
    d = torch.full((net.batch,), 0.5)
    feeds = {"x": x, "sigma": s, "decay": d}
    if "subject" in net.inputs:   # a subject-conditioned graph: the first subject (a float class index)
        feeds["subject"] = torch.zeros((net.batch,))
    # The same input through onnxruntime for a parity figure.
    import onnxruntime as ort
    sess = ort.InferenceSession(str(net.path), providers=["CPUExecutionProvider"])
    ref = sess.run(["denoised"], {k: v.numpy() for k, v in feeds.items()})[0]
    out = g(**feeds)[0].numpy()
    times = []
    end = time.perf_counter() + a.seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        g(**feeds)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "what": kind,
                      "per_step_median_ms": statistics.median(times) * 1e3,
                      "max_abs_diff_vs_onnxruntime": float(np.abs(out - ref).max())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
