"""Go on training a shipped model whose torch checkpoints are gone: read its weights back from
the ONNX files and write checkpoints that `train` (resume) and `distill --init` take.

The exporter (export/onnx.py) keeps parameter names as initializer names, except two kinds that
constant folding renames: GroupNorm's scale and shift become anonymous `onnx::Mul_N` / `onnx::Add_N`
tensors, and the subject embedding (a bias-free Linear on a one-hot) an `onnx::MatMul_N`, transposed.
Each is matched to its module through the name of the node that uses it.
The result is checked against onnxruntime, for every subject: the round trip must reproduce the
ONNX output (max difference < 1e-4) or nothing is written.

A network shipped without subjects can gain subject conditioning (network.py): its embedding starts
at zero, so the warm start is exactly the shipped network until training moves it. A network shipped
with subjects keeps them, and the footage must name the same subjects in the same order.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from .network import UNet, UNetConfig
from .precond import EDMDenoiser
from .schedule import SIGMA_DATA

ROUND_TRIP_ATOL = 1e-4


def denoiser_from_onnx(path: Path, net_cfg: UNetConfig) -> EDMDenoiser:
    import onnx
    from onnx import numpy_helper

    model = EDMDenoiser(UNet(net_cfg), sigma_data=SIGMA_DATA)
    sd = model.state_dict()
    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    new = {k: torch.from_numpy(inits[k].copy()) for k in sd if k in inits}
    # The renamed tensors are found by the node that uses them: its name is the module's path
    # ("/net/down.0.0/n1/Mul" -> net.down.0.0.n1). By node, not by counting initialisers: identical
    # tensors (GroupNorms still at their initial 1s and 0s) are stored once, and the other users
    # reach it through Identity nodes.
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}

    def stored(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    role = {"Mul": "weight", "Add": "bias", "MatMul": "weight"}
    for node in graph.node:
        if node.op_type not in role:
            continue
        tensors = [t for t in map(stored, node.input) if t in inits]
        key = ".".join(node.name.strip("/").split("/")[:-1]) + "." + role[node.op_type]
        if len(tensors) != 1 or key not in sd or key in new:
            continue
        value = inits[tensors[0]]
        value = value.T if node.op_type == "MatMul" else value.reshape(-1)
        if tuple(value.shape) != tuple(sd[key].shape):
            raise ValueError(f"{path}: {tensors[0]} (node {node.name}) has shape {value.shape}, "
                             f"{key} wants {tuple(sd[key].shape)}; not this network")
        new[key] = torch.from_numpy(value.copy())
    missing = sorted(set(sd) - set(new))
    if missing:
        raise ValueError(f"{path}: no tensor for {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} "
                         f"({len(missing)} of {len(sd)}); not this network")
    model.load_state_dict(new)
    return model.eval()


def round_trip_error(model: EDMDenoiser, path: Path, resolution: int) -> float:
    """The largest difference between the ONNX graph and the torch network over noise levels and
    every subject (a wrong subject embedding shows only when the subject changes)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    subjects = int(model.net.cfg.subjects)
    g, worst = np.random.default_rng(0), 0.0
    for subject in (range(subjects) if subjects else [None]):
        k = None if subject is None else np.array([subject], np.float32)
        for s in (0.01, 0.3, 2.0, 20.0):
            x = g.uniform(-1, 1, (1, 3, resolution, resolution)) + s * g.standard_normal((1, 3, resolution, resolution))
            x, d, sig = x.astype(np.float32), np.array([0.3], np.float32), np.array([s], np.float32)
            feed = {"x": x, "sigma": sig, "decay": d} | ({} if k is None else {"subject": k})
            ref = sess.run(["denoised"], feed)[0]
            with torch.no_grad():
                got = model(torch.from_numpy(x), torch.from_numpy(sig), torch.from_numpy(d),
                            None if k is None else torch.from_numpy(k)).numpy()
            worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def warm_start(model_dir: str | Path, run: str | Path, subjects: list[str] | None, data: dict) -> dict:
    """Write run/teacher.pt (resumable by `train`) and run/student_init.pt (for `distill --init`)."""
    import json

    model_dir, run = Path(model_dir), Path(run)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    net_cfg = UNetConfig.from_dict(manifest["training"]["teacher"]["network"])
    shipped = list(manifest.get("conditioning", {}).get("subject", {}).get("names", []))
    if net_cfg.subjects and list(subjects or []) != shipped:
        raise ValueError(f"{model_dir / 'manifest.json'}: the model grows the subjects {shipped}; the footage names "
                         f"{list(subjects or [])}, and a warm start keeps the model's subjects as they are")
    res = int(manifest["resolution"][0])
    run.mkdir(parents=True, exist_ok=True)
    report = {}
    # What each network had been through before it was read back: the export's training record
    # states it, so the manifest of a model tuned further does not read "0 steps".
    records = {"teacher": manifest.get("training", {}).get("teacher"),
               "student": manifest.get("training", {}).get("distill")}
    for which, out in (("teacher", run / "teacher.pt"), ("student", run / "student_init.pt")):
        path = model_dir / manifest["networks"][which]["file"]
        base = denoiser_from_onnx(path, net_cfg)
        err = round_trip_error(base, path, res)
        if err > ROUND_TRIP_ATOL:
            raise ValueError(f"{path}: weights read back differ from the ONNX output by {err:.3g}")
        cfg = UNetConfig.from_dict({**net_cfg.to_dict(), "subjects": len(subjects or [])})
        model = EDMDenoiser(UNet(cfg), sigma_data=SIGMA_DATA)
        missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
        assert not unexpected and set(missing) <= ({"net.emb_subject.weight"} if not net_cfg.subjects else set())
        opt = torch.optim.Adam(model.parameters())
        torch.save({"model": model.state_dict(), "ema": copy.deepcopy(model.state_dict()), "opt": opt.state_dict(),
                    "step": 0, "history": [], "elapsed": 0.0, "net": cfg.to_dict(), "subjects": subjects or None,
                    "data": data, "resolution": res, "consistency": False,
                    "warm_start": {"from": str(path), "round_trip_max_abs_diff": err,
                                   "training": records[which],
                                   "subject_embedding": None if not subjects else
                                   "as shipped" if net_cfg.subjects else "zero-initialised"}}, out)
        report[which] = {"checkpoint": str(out), "round_trip_max_abs_diff": err}
    return report
