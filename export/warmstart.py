"""Go on training a shipped model whose torch checkpoints are gone: read its weights back from
the ONNX files and write checkpoints that `train` (resume) and `distill --init` take.

The exporter (export/onnx.py) keeps parameter names as initializer names, except GroupNorm's
scale and shift, which constant folding turns into anonymous `onnx::Mul_N` / `onnx::Add_N`
tensors, numbered in the order the graph runs them. They are matched to the GroupNorm modules
in the order a forward pass calls them, and the result is checked against onnxruntime: the
round trip must reproduce the ONNX output (max difference < 1e-4) or nothing is written.

Optionally the network gains subject conditioning (network.py): its embedding starts at zero,
so the warm start is exactly the shipped network until training moves it.
"""
from __future__ import annotations

import copy
import re
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

    model = EDMDenoiser(UNet(UNetConfig.from_dict({**net_cfg.to_dict(), "subjects": 0})), sigma_data=SIGMA_DATA)
    sd = model.state_dict()
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: order.append(name))
             for name, m in model.named_modules() if isinstance(m, torch.nn.GroupNorm)]
    with torch.no_grad():
        model(torch.zeros(1, net_cfg.channels, 64, 64), torch.ones(1), torch.zeros(1))
    for h in hooks:
        h.remove()
    folded = sorted((k for k in inits if k not in sd), key=lambda k: int(re.search(r"_(\d+)$", k).group(1)))
    if len(folded) != 2 * len(order):
        raise ValueError(f"{path}: {len(folded)} unnamed tensors for {len(order)} GroupNorms; not this network")
    new = {k: torch.from_numpy(inits[k].copy()) for k in sd if k in inits}
    for j, name in enumerate(order):
        new[f"{name}.weight"] = torch.from_numpy(inits[folded[2 * j]].reshape(-1).copy())
        new[f"{name}.bias"] = torch.from_numpy(inits[folded[2 * j + 1]].reshape(-1).copy())
    model.load_state_dict(new)
    return model.eval()


def round_trip_error(model: EDMDenoiser, path: Path, resolution: int) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g, worst = np.random.default_rng(0), 0.0
    for s in (0.01, 0.3, 2.0, 20.0):
        x = (g.uniform(-1, 1, (1, 3, resolution, resolution)) + s * g.standard_normal((1, 3, resolution, resolution)))
        x, d, sig = x.astype(np.float32), np.array([0.3], np.float32), np.array([s], np.float32)
        ref = sess.run(["denoised"], {"x": x, "sigma": sig, "decay": d})[0]
        with torch.no_grad():
            got = model(torch.from_numpy(x), torch.from_numpy(sig), torch.from_numpy(d)).numpy()
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def warm_start(model_dir: str | Path, run: str | Path, subjects: list[str] | None, data: dict) -> dict:
    """Write run/teacher.pt (resumable by `train`) and run/student_init.pt (for `distill --init`)."""
    import json

    model_dir, run = Path(model_dir), Path(run)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    net_cfg = UNetConfig.from_dict(manifest["training"]["teacher"]["network"])
    res = int(manifest["resolution"][0])
    run.mkdir(parents=True, exist_ok=True)
    report = {}
    for which, out in (("teacher", run / "teacher.pt"), ("student", run / "student_init.pt")):
        path = model_dir / manifest["networks"][which]["file"]
        base = denoiser_from_onnx(path, net_cfg)
        err = round_trip_error(base, path, res)
        if err > ROUND_TRIP_ATOL:
            raise ValueError(f"{path}: weights read back differ from the ONNX output by {err:.3g}")
        cfg = UNetConfig.from_dict({**net_cfg.to_dict(), "subjects": len(subjects or [])})
        model = EDMDenoiser(UNet(cfg), sigma_data=SIGMA_DATA)
        missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
        assert not unexpected and set(missing) <= {"net.emb_subject.weight"}
        opt = torch.optim.Adam(model.parameters())
        torch.save({"model": model.state_dict(), "ema": copy.deepcopy(model.state_dict()), "opt": opt.state_dict(),
                    "step": 0, "history": [], "elapsed": 0.0, "net": cfg.to_dict(), "subjects": subjects or None,
                    "data": data, "resolution": res, "consistency": False,
                    "warm_start": {"from": str(path), "round_trip_max_abs_diff": err,
                                   "subject_embedding": "zero-initialised" if subjects else None}}, out)
        report[which] = {"checkpoint": str(out), "round_trip_max_abs_diff": err}
    return report
