"""`humus-export`: footage -> train -> distill -> onnx -> evaluate -> sample (and `all`)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

# The default of an option that sets a FootageConfig/TrainConfig/DistillConfig field: none here. An option
# not given is absent from the namespace, and the dataclass's own default (the one place it is written) holds.
FROM_CONFIG = argparse.SUPPRESS


def _config_from(cls, a, **fixed):
    """`cls` from the options given on the command line (and `fixed`); every other field keeps its default."""
    given = {f.name: getattr(a, f.name) for f in dataclasses.fields(cls) if hasattr(a, f.name)}
    return cls(**given, **fixed)


def _footage(a):
    from .footage import FootageConfig, build_cache

    from .footagereport import table

    s = build_cache(a.inputs, a.cache, _config_from(FootageConfig, a))
    print(json.dumps({k: v for k, v in s.items() if k != "decay_distribution"}, indent=1) if a.json else table(s))


def _train(a):

    from .train import TrainConfig, train

    cfg = _config_from(TrainConfig, a, decay_cond=not a.no_decay, subjects=not a.no_subjects)
    print(train(a.cache, a.run, cfg, resume=not a.no_resume, state_dir=a.state or None))


def _sigma_list(text: str) -> tuple:
    """'80,1.6' -> (80.0, 1.6): decreasing noise levels in (0, 1000], each item checked by
    valset.parse_numbers (which sorts, so the order is checked on the text as given)."""
    from .valset import parse_numbers

    try:
        parse_numbers(text, "--adversarial-sigmas", math.ulp(0.0), 1000.0)   # ulp(0): the least float > 0
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: decreasing noise levels in (0, 1000] ({e})") from None
    sigmas = tuple(float(v) for v in text.split(","))
    if list(sigmas) != sorted(sigmas, reverse=True):
        raise argparse.ArgumentTypeError(f"{text!r}: decreasing noise levels in (0, 1000]")
    return sigmas


def _distill(a):
    from .distill import DistillConfig, distill

    cfg = _config_from(DistillConfig, a)
    print(distill(a.cache, a.teacher or Path(a.run) / "teacher.pt", a.run, cfg, resume=not a.no_resume,
                  init=a.init, state_dir=a.state or None))


def _onnx(a):
    from .onnx import build_model_dir

    student = None if a.no_student else (a.student or Path(a.run) / "student.pt")
    steps, weights, extra = None, "ema", {}
    if a.student_steps:
        try:
            tuned = json.loads(Path(a.student_steps).read_text())
            steps = {int(k): v for k, v in tuned["steps"].items()}
            weights = tuned.get("weights", "ema")
            extra = {"student_sampler_search": tuned.get("search")}
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"{a.student_steps}: expected JSON with key 'steps' {{\"2\": [80.0, 0.8], ...}} ({e})")
    out = a.out or f"models/{a.name}"
    stage = None
    if a.upsampler_from:   # checked before anything is written
        from .upsampler import copy_stage, stage_to_copy

        if Path(out).resolve() == Path(a.upsampler_from).resolve():
            raise ValueError(f"--upsampler-from {a.upsampler_from}: the model folder being written; copy from another")
        stage = stage_to_copy(a.upsampler_from)
    m = build_model_dir(a.name, a.teacher or Path(a.run) / "teacher.pt", student, out,
                        student_steps=steps, measure_latency=not a.no_latency, student_weights=weights,
                        extra_training=extra, cache=a.cache)
    if stage is not None:
        copy_stage(stage, out)
    print(json.dumps({k: {kk: m["networks"][k][kk] for kk in ("parity_max_abs_diff", "latency_ms_ort_cpu")
                          if kk in m["networks"][k]} for k in m["networks"]}, indent=1))


def _step_list(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of step counts") from None
    if not steps or min(steps) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: step counts are at least 1")
    return steps


def _evaluate(a):
    from .evaluate import evaluate
    from .inception import Inception, RememberedFeatures

    import torch

    torch.set_num_threads(a.threads) if a.threads else None
    models = a.model or ["models/default"]
    extractor = RememberedFeatures(Inception())
    results = {}
    for i, model in enumerate(models):
        # A comparison must not overwrite a shipped model's tracked eval/metrics.json, nor leave the
        # raw test photographs' grid in a folder that is committed.
        figures = Path(a.figures) / f"{i}-{Path(model).resolve().name}" if a.no_manifest else None
        m = evaluate(model, a.cache, featnet=a.featnet, generated=a.generated, per_subject=a.per_subject,
                     teacher_steps=a.teacher_steps, student_steps=a.student_steps, walks=a.walks,
                     featnet_steps=a.featnet_steps, boots=a.boots, upscaled_caches=a.upscaled_cache,
                     secondary=not a.no_secondary, update_manifest=not a.no_manifest,
                     novelty_train_limit=a.novelty_limit or None, extractor=extractor, eval_dir=figures)
        results[model] = m
        print(json.dumps({k: m.get(k) for k in ("kid", "kid_ci90", "kid_ratios", "fid", "walk_mean_frame_distance")},
                         indent=1))
    if len(models) > 1:
        print(side_by_side(results))
    print(f"Inception passes: {extractor.computed} computed, {extractor.reused} shared between the models")


def side_by_side(results: dict) -> str:
    """KID per subject and overall of every model's networks, one row each (the same test half, the
    same generated counts and seeds), with near-copies and subject fidelity."""
    subjects = sorted({s for m in results.values() for s, b in m["by_subject"].items() if "kid" in b})
    head = ["model", "network", "overall", *subjects, "near-copies", "fidelity"]
    rows = [head, ["---"] * len(head)]
    for model, m in results.items():
        for key in (k for k in m["kid"] if not k.startswith("floor_")):
            lo, hi = m["kid_ci90"][key]
            cells = [f"{m['kid'][key]:.4f} ({lo:.4f}-{hi:.4f})"]
            cells += [f"{m['by_subject'][s]['kid'][key]:.4f}" if key in m["by_subject"][s].get("kid", {}) else "-"
                      for s in subjects]
            mem = m.get("memorisation", {}).get(key, {})
            fid = m.get("subject_fidelity", {}).get(key, {})
            cells += [f"{mem['near_copy_share']:.3f}" if mem else "-",
                      f"{fid['mean']:.3f}" if fid.get("mean") is not None else "-"]
            rows.append([model, key, *cells])
    floor = next(iter(results.values()))["kid"]
    rows.append(["real vs real", "floors", " / ".join(f"{floor[k]:.4f}" for k in floor if k.startswith("floor_")),
                 *["" for _ in subjects], "", ""])
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def _tune(a):
    from .evaluate import FeatNetFeatures, train_featnet, tune_student_sigmas

    if a.features == "featnet":
        fn = Path(a.featnet)
        if not fn.exists():
            train_featnet(a.cache, fn)
        ext = FeatNetFeatures(fn)
    else:
        from .inception import Inception

        ext = Inception(device=a.device)
    r = tune_student_sigmas(a.student or Path(a.run) / "student.pt", a.cache, ext, n=a.n, device=a.device, seeds=a.seeds)
    Path(a.out).write_text(json.dumps(r, indent=1))
    print(json.dumps(r, indent=1))


def _decay_dist(a):
    from .onnx import record_decay_distribution

    block = record_decay_distribution(a.model, a.cache)
    print(json.dumps({s: {k: e[k] for k in ("images", "decay_known") if k in e} | {"mean": e.get("decay_mean")}
                      for s, e in block["by_source"].items()}, indent=1))


def _state(a):
    from . import state

    ckpt = Path(a.run) / f"{a.name}.pt"
    if a.action == "save":
        meta = state.save(ckpt, a.dir)
        size = (Path(a.dir) / f"{a.name}.safetensors").stat().st_size
        print(f"{a.dir}/{a.name}: step {meta['run']['step']}, {meta['run']['nimg']:,} images, "
              f"{size / 2**20:.1f} MiB")
    else:
        meta = state.restore(a.dir, a.name, ckpt)
        print(f"{ckpt}: step {meta['run']['step']} restored from {a.dir}")


def _probe(a):
    from .probe import ValidationProbe
    from .train import load_checkpoint, denoiser_from_state

    if Path(a.checkpoint).is_dir():        # a shipped model folder: its ONNX network
        from .probe import OnnxDenoiser

        model = OnnxDenoiser(a.checkpoint, "student" if a.sampler == "consistency" else "teacher")
        names, where = list(model.gen.info.subjects), Path(a.features_dir or a.checkpoint)
    else:
        st = load_checkpoint(a.checkpoint)
        model = denoiser_from_state(st, "ema", where=a.checkpoint)
        names, where = st.get("subjects") or [], Path(a.features_dir or Path(a.checkpoint).parent)
    consistency = a.sampler == "consistency"
    probe = ValidationProbe(a.cache, names, where, n=a.n,
                            sampler=a.sampler, steps=a.steps or (2 if consistency else 18))
    print(json.dumps(probe(model), indent=1))


def _posthoc(a):
    from .phema import choose
    from .probe import ValidationProbe

    ckpt = Path(a.run) / f"{a.name}.pt"
    import torch

    names = torch.load(ckpt, map_location="cpu", weights_only=False).get("subjects") or []
    probe = ValidationProbe(a.cache, names, Path(a.run), n=a.n,
                            sampler="heun" if a.name == "teacher" else "consistency",
                            steps=18 if a.name == "teacher" else 2)
    r = choose(ckpt, [float(s) for s in a.stds.split(",")], lambda m: probe(m)["kid"]["overall"])
    print(json.dumps(r, indent=1))


def _sample(a):
    from .sample import sample_to_folder

    paths = sample_to_folder(a.model, a.steps, a.n, a.out, network=a.network, decay=a.decay, seed=a.seed,
                             subject=a.subject)
    print(f"wrote {len(paths)} images to {a.out}")


def _all(a):
    from .pipeline import AllConfig, parse_budget, run_all

    run_all(AllConfig(inputs=a.inputs, out=a.out, run=a.run, budget_minutes=parse_budget(a.budget), name=a.name,
                      preset=a.preset, device=a.device, threads=a.threads, bundle_key=a.key if a.bundle else None,
                      version=a.version))


def _training_run_options(p: argparse.ArgumentParser, minutes: float) -> None:
    """What `train` and `distill` share: data, run folder, budget, checkpoints, device, resume."""
    p.add_argument("--cache", default="cache/footage64.npz")
    p.add_argument("--workdir", "--run", dest="run", default="runs/default",
                   help="output folder (checkpoints, grids, curves)")
    p.add_argument("--batch", type=int, default=FROM_CONFIG)
    p.add_argument("--steps", type=int, default=FROM_CONFIG)
    # A budget the laptop can afford, where the dataclass has none (0): the command line's own default.
    p.add_argument("--minutes", type=float, default=minutes,
                   help="the run's wall-time budget, counted across resumes: a resumed run stops once its "
                        "total training time (elapsed in stats.jsonl) reaches it (0 = none)")
    p.add_argument("--stop-at", type=int, default=FROM_CONFIG,
                   help="stop at this step, leaving the plan (--steps) as it is: go on later with the same command")
    p.add_argument("--ckpt-every", type=float, default=FROM_CONFIG, help="seconds")
    p.add_argument("--seed", type=int, default=FROM_CONFIG)
    p.add_argument("--device", default=FROM_CONFIG, help="auto (cuda, mps, cpu), cuda, mps or cpu")
    p.add_argument("--threads", type=int, default=FROM_CONFIG, help="CPU threads (0 = every core)")
    p.add_argument("--amp", choices=("auto", "bf16", "fp32"), default=FROM_CONFIG,
                   help="autocast: auto measures fp32 against bf16 at the start of a fresh run")
    p.add_argument("--channels-last", action="store_true", default=FROM_CONFIG)
    p.add_argument("--compile", action="store_true", default=FROM_CONFIG, help="torch.compile the model")
    p.add_argument("--snapshot-every", type=int, default=FROM_CONFIG, help="images between EMA snapshots")
    p.add_argument("--probe-every", type=float, default=FROM_CONFIG, help="seconds between validation KID probes")
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--state", default="models/default/train",
                   help="a run folder without a checkpoint continues the stage's state stored here when it is the "
                        "same network on the same footage ('' = never)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="humus-export", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("footage", help="ingest videos/image folders into a compact cache")
    f.add_argument("inputs", nargs="+", help="video files and/or folders")
    f.add_argument("--cache", default="cache/footage64.npz")
    f.add_argument("--resolution", type=int, default=FROM_CONFIG)
    f.add_argument("--fps", dest="video_fps", type=float, default=FROM_CONFIG,
                   help="frames sampled per second of video")
    f.add_argument("--dedup", dest="dedup_threshold", type=float, default=FROM_CONFIG,
                   help="near-duplicate threshold (0..255 MAE of 16x16 thumbs)")
    f.add_argument("--holdout", type=float, default=FROM_CONFIG)
    f.add_argument("--seed", type=int, default=FROM_CONFIG)
    f.add_argument("--json", action="store_true", help="print the cache summary as JSON instead of the table")
    f.set_defaults(fn=_footage)

    t = sub.add_parser("train", help="train the EDM teacher (torchrun-ready)")
    _training_run_options(t, minutes=60.0)
    t.add_argument("--preset", default=FROM_CONFIG)
    t.add_argument("--lr", type=float, default=FROM_CONFIG)
    t.add_argument("--dropout", type=float, default=FROM_CONFIG, help="residual-block dropout (-1 = the preset's)")
    t.add_argument("--no-decay", action="store_true", help="unconditional model")
    t.add_argument("--decay-jitter", action="store_true", default=FROM_CONFIG,
                   help="draw each image's decay within its grade's cell, not the grade itself")
    t.add_argument("--no-subjects", action="store_true",
                   help="one model for all footage, drawn as it comes (default: conditioned on subjects, balanced)")
    t.set_defaults(fn=_train)

    d = sub.add_parser("distill", help="ECT few-step student from the teacher (torchrun-ready)")
    _training_run_options(d, minutes=40.0)
    d.add_argument("--teacher", help="teacher checkpoint (default RUN/teacher.pt)")
    d.add_argument("--lr", type=float, default=FROM_CONFIG)
    d.add_argument("--adversarial", type=float, default=FROM_CONFIG,
                   help="weight of a patch discriminator on the student's one-step images (0 = plain ECT)")
    d.add_argument("--adversarial-sigma", type=float, default=FROM_CONFIG)
    d.add_argument("--adversary", choices=("patch", "teacher"), default=FROM_CONFIG,
                   help="patch: a patch discriminator on one-step images; teacher: heads on the frozen "
                        "teacher's features judge the box's few-step samples (LADD)")
    d.add_argument("--adversarial-batch", type=int, default=FROM_CONFIG, help="few-step samples a step (teacher)")
    d.add_argument("--adversarial-sigmas", type=_sigma_list, default=FROM_CONFIG,
                   help="the samples' noise levels, e.g. 80,1.6 (teacher)")
    d.add_argument("--adversarial-fresh", type=float, default=FROM_CONFIG,
                   help="the samples' re-noise share of fresh noise, 0-1 (teacher)")
    d.add_argument("--guidance", type=float, default=FROM_CONFIG,
                   help="autoguidance weight baked into the targets (0 = plain ECT); needs --guide")
    d.add_argument("--guide", default=FROM_CONFIG, help="checkpoint of a weaker version of the teacher")
    d.add_argument("--stages", type=int, default=FROM_CONFIG)
    d.add_argument("--first-stage", type=int, default=FROM_CONFIG, help="gap stage to start in (1: gap t/2)")
    d.add_argument("--init", help="start from this student checkpoint's EMA weights, not the teacher's")
    d.add_argument("--dropout", type=float, default=FROM_CONFIG)
    d.add_argument("--decay-jitter", action="store_true", default=FROM_CONFIG,
                   help="draw each image's decay within its grade's cell, not the grade itself")
    d.set_defaults(fn=_distill)

    u = sub.add_parser("tune", help="choose the student's weights and 2/4-step sigmas on the validation half of the held-out split")
    u.add_argument("--cache", default="cache/footage64.npz")
    u.add_argument("--workdir", "--run", dest="run", default="runs/default")
    u.add_argument("--student")
    u.add_argument("--features", choices=("inception", "featnet"), default="inception",
                   help="what KID is measured in: InceptionV3 (the headline metric) or the self-trained FeatureNet")
    u.add_argument("--featnet", default="runs/default/kid_features.pt", help="with --features featnet")
    u.add_argument("--n", type=int, default=256)
    u.add_argument("--out", default="runs/default/student_sigmas.json")
    u.add_argument("--device", default="cpu", help="where the student samples (cpu, cuda)")
    u.add_argument("--seeds", type=int, default=4, help="generated sets per score, pooled (less noise)")
    u.set_defaults(fn=_tune)

    o = sub.add_parser("onnx", help="export ONNX + manifest + reference + NOTICE to models/NAME")
    o.add_argument("--workdir", "--run", dest="run", default="runs/default")
    o.add_argument("--name", default="default")
    o.add_argument("--out", help="model folder (default models/NAME)")
    o.add_argument("--teacher")
    o.add_argument("--student")
    o.add_argument("--no-student", action="store_true", help="export the teacher only")
    o.add_argument("--student-steps", help="JSON from `tune` with the student's sigmas per step count")
    o.add_argument("--no-latency", action="store_true")
    o.add_argument("--cache", help="footage cache the teacher was trained on: records its per-source decay "
                                   "distribution when the checkpoint's data summary predates them")
    o.add_argument("--upsampler-from", dest="upsampler_from", metavar="MODEL",
                   help="give the new model this model folder's upsampler stage, as it is")
    o.set_defaults(fn=_onnx)

    e = sub.add_parser("evaluate", help="Inception KID/FID per subject with the real-vs-real floor, grids and walk "
                                        "smoothness; writes manifest metrics")
    e.add_argument("--model", action="append", help="a model folder (default models/default); repeat it to "
                   "measure models side by side in one run, on the same images, sharing the real photographs' features")
    e.add_argument("--cache", default="cache/footage64.npz")
    e.add_argument("--featnet", help="secondary figures: feature network weights (trained on the cache if missing)")
    e.add_argument("--featnet-steps", type=int, default=800)
    e.add_argument("--no-secondary", action="store_true", help="skip the self-trained FeatureNet figures")
    e.add_argument("--generated", type=int, default=1000,
                   help="generated images per model overall (0 = as many as test images); the held-out set is "
                        "small, so many generated images leave only its own noise in the KID")
    e.add_argument("--per-subject", type=int, default=0,
                   help="at least this many generated images per subject (0 = generated / 4)")
    e.add_argument("--upscaled-cache", action="append", default=[],
                   help="a cache at a larger side (e.g. cache/footage256.npz): also measure the same generated "
                        "images bicubic-upscaled to that side against it (metrics.upscaled.SIDE); repeatable")
    e.add_argument("--threads", type=int, default=0, help="torch threads for the Inception features (0 = default)")
    e.add_argument("--boots", type=int, default=400, help="bootstrap replicates for intervals and ratios")
    e.add_argument("--teacher-steps", type=int, default=35, help="Heun steps of the teacher (0 = the student alone)")
    e.add_argument("--student-steps", type=_step_list, default=(1, 2, 4), help="the student's step counts, e.g. 2 or 1,2,4")
    e.add_argument("--novelty-limit", type=int, default=0,
                   help="training images the memorisation check compares with, an even share of each subject "
                        "(0 = all of them: ~40 minutes of Inception on 2 cores for the shipped data)")
    e.add_argument("--no-manifest", action="store_true",
                   help="leave each model folder untouched (a comparison): the figures and grids go to --figures")
    e.add_argument("--figures", default="runs/compare",
                   help="with --no-manifest: metrics.json and grids of the i-th model in FIGURES/i-NAME/")
    e.add_argument("--walks", type=int, default=4)
    e.set_defaults(fn=_evaluate)

    dd = sub.add_parser("decay-dist", help="record a cache's per-source training decay distribution in a model's "
                                           "manifest (models exported before `onnx` recorded it)")
    dd.add_argument("--model", default="models/default")
    dd.add_argument("--cache", default="cache/footage64.npz")
    dd.set_defaults(fn=_decay_dist)

    s = sub.add_parser("sample", help="write N PNGs from a model directory via the firmware runtime")
    s.add_argument("--model", default="models/default")
    s.add_argument("--steps", type=int, default=None, help="step count listed in the manifest (default: its default)")
    s.add_argument("--n", type=int, default=16)
    s.add_argument("--out", required=True)
    s.add_argument("--network", default="student")
    s.add_argument("--subject", default=None, help="footage source to grow (default: drawn in equal proportion)")
    s.add_argument("--decay", type=float, default=None,
                   help="one decay value for every image (default: drawn per image from the manifest's per-source "
                        "training decay distributions, sources in equal proportion)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=_sample)

    pr = sub.add_parser("probe", help="the training loop's validation probe on one checkpoint's EMA (KID per "
                        "subject against the validation half, subject fidelity, near-copies)")
    pr.add_argument("checkpoint", help="a training checkpoint (RUN/teacher.pt) or a model folder")
    pr.add_argument("--features-dir", help="where the reference features are cached (default: beside it)")
    pr.add_argument("--cache", default="cache/footage64.npz")
    pr.add_argument("--sampler", choices=("heun", "consistency"), default="heun")
    pr.add_argument("--steps", type=int, default=0, help="0: 18 Heun steps, 2 consistency steps")
    pr.add_argument("--n", type=int, default=48, help="images a subject")
    pr.set_defaults(fn=_probe)

    ph = sub.add_parser("posthoc", help="choose the EMA length after training: reconstruct each width from the "
                        "run's snapshots, keep the one with the lowest validation KID")
    ph.add_argument("--run", required=True)
    ph.add_argument("--name", default="teacher", choices=("teacher", "student"))
    ph.add_argument("--cache", default="cache/footage64.npz")
    ph.add_argument("--stds", default="0.03,0.05,0.075,0.1,0.15", help="relative EMA widths to try")
    ph.add_argument("--n", type=int, default=64, help="images a subject per width")
    ph.set_defaults(fn=_posthoc)

    st = sub.add_parser("state", help="keep a run's state in the repository (save) or bring it back (restore)")
    st.add_argument("action", choices=("save", "restore"))
    st.add_argument("--run", required=True, help="the run folder (its NAME.pt)")
    st.add_argument("--name", default="teacher", choices=("teacher", "student", "upsampler"))
    st.add_argument("--dir", default="models/default/train", help="where the repository keeps states")
    st.set_defaults(fn=_state)

    al = sub.add_parser("all", help="footage -> caches -> teacher -> student -> upsampler -> ONNX -> evaluation -> "
                                     "grids -> preview -> report (-> signed bundle); a re-run skips finished stages")
    al.add_argument("inputs", nargs="+", help="footage folders and/or videos")
    al.add_argument("--out", default="models/studio", help="the model folder `humus run --model` plays")
    al.add_argument("--workdir", "--run", dest="run", default="runs/studio")
    al.add_argument("--budget", default="3h", help="the whole run's time: 3h, 30m, 1h30m (split across stages)")
    al.add_argument("--name", default="studio")
    al.add_argument("--preset", default="cpu64", help="the teacher's network (export/network.py PRESETS)")
    al.add_argument("--device", default="auto")
    al.add_argument("--threads", type=int, default=0)
    al.add_argument("--bundle", action="store_true", help="end in a signed update bundle of the model")
    al.add_argument("--key", help="signing key (humus-release keygen) for --bundle")
    al.add_argument("--version", help="the bundle's release version, e.g. 1.4.0")
    al.set_defaults(fn=_all)

    from .cli_cascade import register as register_cascade
    from .engine import register as register_engine
    register_engine(sub)
    register_cascade(sub)
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        a.fn(a)
    except Exception as e:  # noqa: BLE001 - every known failure becomes one clear line
        from firmware.generate.manifest import ModelError

        from .footage import FootageError

        if not isinstance(e, (ValueError, FileNotFoundError, KeyError, FootageError, ModelError)):
            raise
        print(f"humus-export {a.cmd}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
