"""ONNX export and the model directory (models/<name>/, contract in models/MANIFEST.md).

Each network is exported as the *preconditioned* denoiser D(x, sigma, decay) -> denoised,
static batch 1, opset 17, fp32, then checked against PyTorch in onnxruntime over the whole
sigma range (max abs difference recorded in the manifest). The manifest carries every number
the box would otherwise have to guess: resolution, value range, exact sigmas per step count,
sampler, conditioning, sha256 of each file, reference pair for engine checks.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import platform
import shutil
from pathlib import Path

import numpy as np
import torch

from firmware.digest import sha256_file
from firmware.generate.manifest_schema import FORMAT, parse_manifest

from .decaydist import KEY as DIST_KEY
from .decaydist import describe as describe_decay
from .schedule import SIGMA_DATA, SIGMA_MAX, SIGMA_MIN, f32, karras_sigmas

OPSET = 17
REFERENCE_ATOL = 2e-2  # what an fp16 engine may differ from the fp32 reference (x0 in [-1, 1])
TEACHER_STEPS = (35, 18)

CREDITS = """\
Training data credits (see ../shared/data/decay/README.md of the humus project):

- bananas/: 9 bananas photographed over 21 days. MIT License, (c) 2022 Peter Solymos
  (repository psolymos/bananas).
- tomatoes/: tomatoes graded 0 (fresh) to 9 (rotten). MIT License, (c) 2021 Sk. Arif Ahmed
  (repository skarifahmed/FGrade; Das et al., CVIP 2020).
- melon/decaying_melon.webp: time-lapse of a decaying melon rind, Oct 7 - Nov 13 2023.
  CC-BY-4.0, Chen Liu and Tobias Ritschel, "Neural Differential Appearance Equations"
  (SIGGRAPH Asia 2024), repository ryushinn/ode-appearance.

The model weights in this folder were trained on these images; their credits travel with it.
"""




def has_subjects(model: torch.nn.Module) -> bool:
    return int(getattr(model.net.cfg, "subjects", 0)) > 0


def _feed(x, sigma, decay, subject: float | None = None) -> dict:
    """onnxruntime inputs for one call; `subject` (a float class index) only for a graph that takes one."""
    feed = {"x": x, "sigma": np.asarray(sigma, np.float32).reshape(1), "decay": np.asarray(decay, np.float32).reshape(1)}
    if subject is not None:
        feed["subject"] = np.array([subject], np.float32)
    return feed


def _takes_subject(sess) -> bool:
    return any(i.name == "subject" for i in sess.get_inputs())


def median_run_ms(sess, feed: dict, runs: int = 50, warmup: int = 5) -> float:
    """Median wall time of one `sess.run` on `feed`, after `warmup` untimed runs."""
    import time

    for _ in range(warmup):
        sess.run(None, feed)
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feed)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1000)


def export_denoiser(model: torch.nn.Module, path: str | Path, resolution: int, channels: int = 3) -> Path:
    """Write D(x, sigma, decay[, subject]) to ``path`` (static batch 1, opset 17, fp32)."""
    import warnings

    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().float()
    x = torch.zeros(1, channels, resolution, resolution)
    s, d = torch.ones(1), torch.full((1,), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript exporter (dynamo=False): deterministic, dependency-free graphs of
        # plain ops at opset 17, which TensorRT 8.6+ on the Jetson parses.
        args, names = ((x, s, d, torch.zeros(1)), ["x", "sigma", "decay", "subject"]) if has_subjects(model) \
            else ((x, s, d), ["x", "sigma", "decay"])
        torch.onnx.export(model, args, str(path), input_names=names,
                          output_names=["denoised"], opset_version=OPSET, dynamo=False,
                          do_constant_folding=True)
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    if m.opset_import[0].version != OPSET:
        raise RuntimeError(f"{path}: exported at opset {m.opset_import[0].version}, expected {OPSET}")
    return path


def ort_session(path: str | Path, threads: int = 0):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def parity(model: torch.nn.Module, path: str | Path, resolution: int, n: int = 8, seed: int = 0) -> float:
    """Max abs difference torch vs onnxruntime over sigmas spanning [sigma_min, sigma_max]."""
    sess = ort_session(path)
    g = np.random.default_rng(seed)
    worst = 0.0
    sigmas = np.geomspace(SIGMA_MIN, SIGMA_MAX, n).astype(np.float32)
    for s in sigmas:
        x0 = g.uniform(-1, 1, (1, 3, resolution, resolution)).astype(np.float32)
        x = (x0 + s * g.standard_normal(x0.shape)).astype(np.float32)
        d = np.array([g.uniform()], np.float32)
        k = float(g.integers(max(1, int(getattr(model.net.cfg, "subjects", 0)))))
        feed = _feed(x, s, d, k if has_subjects(model) else None)
        with torch.no_grad():
            ref = model(*[torch.from_numpy(v) for v in feed.values()]).numpy()
        got = sess.run(["denoised"], feed)[0]
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def latency_ms(path: str | Path, resolution: int, threads: int = 2, runs: int = 50) -> float:
    """Median wall time of one batch-1 evaluation in onnxruntime CPU."""
    sess = ort_session(path, threads)
    feed = _feed(np.zeros((1, 3, resolution, resolution), np.float32), 1.0, 0.5,
                 0.0 if _takes_subject(sess) else None)
    return median_run_ms(sess, feed, runs)


def write_reference(path_onnx: Path, out: Path, resolution: int, seed: int = 0, sigma: float = 2.5,
                    decay: float = 0.5) -> dict:
    """Reference pair computed in fp32 by onnxruntime CPU: what any engine must reproduce."""
    g = np.random.default_rng(seed)
    x0 = np.clip(g.standard_normal((1, 3, resolution, resolution)) * 0.5, -1, 1)
    x = (x0 + sigma * g.standard_normal(x0.shape)).astype(np.float32)
    sess = ort_session(path_onnx)
    feed = _feed(x, sigma, decay, 0.0 if _takes_subject(sess) else None)
    den = sess.run(["denoised"], feed)[0]
    np.savez(out, **feed, denoised=den)
    return {"seed": seed, "sigma": sigma, "decay": decay, "input_sha256": hashlib.sha256(x.tobytes()).hexdigest(),
            "output": out.name, "atol": REFERENCE_ATOL}


def tool_versions() -> dict:
    import onnx
    import onnxruntime

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def _network_entry(file: str, sha: str, res: int, sampler: str, steps: dict, default: int, ref: dict,
                   parity_err: float, latency: float | None, subjects: bool = False) -> dict:
    inputs = {"x": [1, 3, res, res], "sigma": [1], "decay": [1]}
    if subjects:
        inputs["subject"] = [1]
    e = {"file": file, "sha256": sha, "batch": 1,
         "inputs": inputs,
         "outputs": {"denoised": [1, 3, res, res]},
         "sampler": sampler, "steps": {str(k): [float(s) for s in v] for k, v in sorted(steps.items())},
         "default_steps": default, "reference": ref, "parity_max_abs_diff": parity_err}
    if latency is not None:
        e["latency_ms_ort_cpu"] = round(latency, 2)
    return e


def build_model_dir(name: str, teacher_ckpt: str | Path, student_ckpt: str | Path | None, out_dir: str | Path,
                    student_steps: dict | None = None, measure_latency: bool = True,
                    extra_training: dict | None = None, student_weights: str = "ema",
                    cache: str | Path | None = None, notice: str = CREDITS) -> dict:
    """Export teacher (+ student) into ``out_dir`` with manifest.json, references and NOTICE (``notice``:
    the credits of the footage it was trained on; by default the shipped data set's)."""
    from .distill import DEFAULT_STEPS
    from .train import load_denoiser

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tstate = torch.load(teacher_ckpt, map_location="cpu", weights_only=False)
    res = int(tstate.get("resolution", 64))
    tail = [v for _, v in tstate["history"][-200:]]
    nets, training = {}, {"data": tstate.get("data"), "teacher": {
        "method": "EDM (Karras et al. 2022) denoising score matching, pixel space",
        "steps": tstate["step"], "wall_seconds": round(tstate.get("elapsed", 0.0)),
        "final_loss": float(np.mean(tail)) if tail else None,
        "network": tstate["net"], "config": tstate.get("train"),
        "params": None, **before_warm_start(tstate)}}
    order = [("teacher", teacher_ckpt)] + ([("student", student_ckpt)] if student_ckpt else [])
    for which, ckpt in order:
        model = load_denoiser(ckpt, "ema" if which == "teacher" else student_weights)
        if which == "teacher":
            training["teacher"]["params"] = sum(p.numel() for p in model.parameters())
        f = out / f"{which}.onnx"
        export_denoiser(model, f, res)
        err = parity(model, f, res)
        if err > 1e-3:
            raise RuntimeError(f"{f}: onnxruntime differs from torch by {err:.3g} (> 1e-3)")
        ref = write_reference(f, out / ("reference.npz" if which == "student" else f"reference_{which}.npz"), res)
        lat = latency_ms(f, res) if measure_latency else None
        if which == "teacher":
            steps = {k: karras_sigmas(k) for k in TEACHER_STEPS}
            nets[which] = _network_entry(f.name, sha256_file(f), res, "heun", steps, TEACHER_STEPS[0], ref, err, lat,
                                         has_subjects(model))
        else:
            steps = {int(k): [f32(s) for s in v] for k, v in (student_steps or DEFAULT_STEPS).items()}
            nets[which] = _network_entry(f.name, sha256_file(f), res, "consistency", steps, 2, ref, err, lat,
                                         has_subjects(model))
    if student_ckpt:
        from .distill import notes

        training["distill"] = {**notes(student_ckpt), "exported_weights": student_weights}
    training.update(extra_training or {})
    data = dict(tstate.get("data") or {})
    # The decay distributions `sample` draws from: from the training data summary, or from the
    # cache for checkpoints trained on a cache that predates them.
    dist = data.pop(DIST_KEY, None)
    if cache is not None:
        dist = _distribution_from_cache(cache)
    if training.get("data"):
        training["data"] = data
    manifest = {
        "format": FORMAT,
        "name": name,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resolution": [res, res],
        "channels": 3,
        "value_range": [-1.0, 1.0],
        "color": "RGB",
        "layout": "NCHW",
        "precond": {"kind": "edm", "sigma_data": SIGMA_DATA, "sigma_min": SIGMA_MIN, "sigma_max": SIGMA_MAX,
                    "in_graph": True},
        "conditioning": {"decay": {"range": [0.0, 1.0], "default": 0.5,
                                   "used": bool(tstate["net"].get("decay_cond", True)),
                                   "meaning": "0 fresh, 1 fully decayed (tomato grade/9, banana stage U/R/V/O, "
                                              "time position in a time-lapse)"},
                         **subject_conditioning(tstate)},
        "networks": nets,
        "training": training,
        "metrics": {},
        "tools": tool_versions(),
        "credits": "see NOTICE",
        "data_summary": {"images": data.get("images"), "sources": data.get("sources"),
                         "train": data.get("train"), "heldout": data.get("heldout")},
    }
    if dist:
        manifest[DIST_KEY] = dist
    else:
        print(f"warning: {teacher_ckpt}: no per-source decay distribution in its data summary; `sample` needs "
              f"--decay until `onnx --cache` or `decay-dist` records one", flush=True)
    (out / "NOTICE").write_text(notice)
    write_manifest(out, manifest)
    return manifest


def before_warm_start(state: dict) -> dict:
    """For a checkpoint read back from a shipped model (`warm-start`): the shipped model's own training
    record, under ``before``, and where it was read from. Empty for a checkpoint trained from scratch."""
    ws = state.get("warm_start")
    if not ws:
        return {}
    return {"warm_started_from": ws.get("from"), "before": ws.get("training")}


def subject_conditioning(tstate: dict) -> dict:
    """`conditioning.subject` of the manifest: the subjects' names in class-index order, with the
    image count of each (the training data's own record)."""
    names = tstate.get("subjects")
    if not names:
        return {}
    counts = (tstate.get("data") or {}).get("sources", {})
    return {"subject": {"names": list(names), "images": {n: counts.get(n) for n in names},
                        "meaning": "footage source the image is grown from (the footage folder name); "
                                   "input 'subject' carries its index as a float"}}


def finite_or_null(obj):
    """``obj`` with every NaN or infinite float replaced by None, through dicts and lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def write_manifest(out_dir: str | Path, manifest: dict):
    """Write manifest.json after checking it with the box's own schema: one schema, writer and reader."""
    p = Path(out_dir) / "manifest.json"
    # Strict JSON: a NaN (a loss with no history, a KID of an empty set) is written as null, never as
    # the bare NaN token other JSON readers refuse.
    text = json.dumps(finite_or_null(manifest), indent=2, allow_nan=False) + "\n"
    parse_manifest(text, p, ValueError)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(text)
    shutil.move(tmp, p)


def read_manifest(out_dir: str | Path) -> dict:
    p = Path(out_dir) / "manifest.json"
    if not p.exists():
        raise FileNotFoundError(f"{p}: no manifest")
    return json.loads(p.read_text())


def _distribution_from_cache(cache: str | Path) -> dict:
    from .footage import load_cache

    ds = load_cache(cache)
    return describe_decay(ds.decay, ds.heldout, ds.source)


def record_decay_distribution(model_dir: str | Path, cache: str | Path) -> dict:
    """Write the cache's per-source training decay distribution into a model's manifest."""
    from .footage import load_cache

    mf = read_manifest(model_dir)
    ds = load_cache(cache)
    want = mf.get("data_summary") or {}
    got = {"train": int((~ds.heldout).sum()), "heldout": int(ds.heldout.sum())}
    for k, v in got.items():
        # Another cache's split would describe data the model never trained on.
        if want.get(k) is not None and want[k] != v:
            raise ValueError(f"{cache}: {v} {k} images, but {model_dir}/manifest.json data_summary.{k} says "
                             f"{want[k]}: not the cache this model was trained on")
    block = describe_decay(ds.decay, ds.heldout, ds.source)
    mf[DIST_KEY] = block
    write_manifest(model_dir, mf)
    return block
