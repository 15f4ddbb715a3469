"""`humus-export upsampler`, `detail-gain`, `renoise`, `warm-start` and `demo-clip`: the cascade's second stage, going on
from a shipped model, and the demo footage the box ships with (registered by export/cli.py)."""
from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path


def _upsampler(a):
    from .upsampler import UpsamplerConfig, add_stage, train_upsampler

    ckpt = f"{a.run}/upsampler.pt"
    if a.minutes > 0 or a.steps_only:
        cfg = UpsamplerConfig(**{f.name: getattr(a, f.name) for f in fields(UpsamplerConfig)
                                 if f.name != "extra" and hasattr(a, f.name)})
        ckpt = str(train_upsampler(a.cache, a.run, cfg, resume=not a.no_resume))
    if a.model:
        print(json.dumps(add_stage(ckpt, a.model, threads=a.threads or 1), indent=1))


def _upsampler_judge(a):
    from .upsampler_judge import judge_upsamplers, table

    import torch

    torch.set_num_threads(a.threads) if a.threads else None
    models = a.model or ["models/default"]
    result = judge_upsamplers(models, a.cache, per_subject=a.per_subject, boots=a.boots, threads=max(1, a.threads),
                              half=a.half)
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1))
    print(table(result, [str(m) for m in models]))


def _detail_gain(a):
    from . import detail_gain

    import torch

    torch.set_num_threads(max(1, a.threads))
    found = detail_gain.search(a.model, a.cache, gains=detail_gain.parse_gains(a.gains), steps=a.steps,
                               seed=a.seed, boots=a.boots)
    if a.out:
        Path(a.out).write_text(json.dumps(found, indent=1))
    print(json.dumps({"best": found["best"], "kid": {g: r["kid"] for g, r in found["gains"].items()}}))
    if a.write:
        stage = detail_gain.write(a.model, found["best"], found, threads=a.threads)
        print(f"{a.model}: stage re-exported with detail x{stage['detail_gain']:g} ({stage['sha256'][:12]})")


def _renoise(a):
    from . import renoise
    from .valset import parse_numbers

    import torch

    torch.set_num_threads(max(1, a.threads))
    fresh = parse_numbers(a.fresh, "--fresh", 0.0, 1.0)
    mids = parse_numbers(a.mids, "--mids", 1e-3, 1e4) if a.mids else None
    found = renoise.search(a.model, a.cache, fresh=fresh, mids=mids, seed=a.seed, boots=a.boots)
    if a.out:
        Path(a.out).write_text(json.dumps(found, indent=1))
    print(json.dumps({"best": found["best"], "kid": {k: r["kid"] for k, r in found["candidates"].items()}}))
    if a.write:
        net = renoise.write(a.model, found["best"]["fresh"], found["best"]["mid"], found)
        print(f"{a.model}: student re-noises with {net['fresh_noise']:g} fresh noise, 2 steps at {net['steps']['2']}")


def _demo_clip(a):
    from .democlip import build_demo_clip

    print(json.dumps(build_demo_clip(a.decay_root, a.out, bananas=tuple(a.bananas), side=a.side, fps=a.fps)))


def _warm_start(a):
    from .footage import load_cache
    from .train import subject_names
    from .warmstart import warm_start

    ds = load_cache(a.cache)
    names = None if a.no_subjects else subject_names(ds.split(heldout=False))
    print(json.dumps(warm_start(a.model, a.run, names, ds.summary), indent=1))


def _chosen_on_validation(p: argparse.ArgumentParser, write_help: str) -> None:
    """The options every choice made on the validation half (export/valset.py) shares."""
    p.add_argument("--model", default="models/default")
    p.add_argument("--cache", default="cache/footage256.npz", help="footage cache at the model's finished side")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--boots", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="also write the search as JSON")
    p.add_argument("--write", action="store_true", help=write_help)


def register(sub: argparse._SubParsersAction) -> None:
    from .upsampler import DISCRIMINATORS, UpsamplerConfig

    d = UpsamplerConfig()
    u = sub.add_parser("upsampler", help="train the 4x upsampler stage on a high-resolution cache "
                                         "and/or add it to a model directory (--model)")
    u.add_argument("--cache", default="cache/footage256.npz", help="cache made with footage --resolution 256")
    u.add_argument("--workdir", "--run", dest="run", default="runs/default")
    u.add_argument("--minutes", type=float, default=40.0, help="training time budget (0 = do not train)")
    u.add_argument("--steps", type=int, default=d.steps)
    u.add_argument("--steps-only", action="store_true", help="train to --steps with no time budget")
    u.add_argument("--batch", type=int, default=d.batch)
    u.add_argument("--crop", type=int, default=d.crop)
    u.add_argument("--width", type=int, default=d.width)
    u.add_argument("--blocks", type=int, default=d.blocks)
    u.add_argument("--lr", type=float, default=d.lr)
    u.add_argument("--threads", type=int, default=d.threads)
    u.add_argument("--device", choices=("auto", "cuda", "mps", "cpu"), default=d.device)
    u.add_argument("--seed", type=int, default=d.seed)
    u.add_argument("--ckpt-every", dest="ckpt_every", type=float, default=d.ckpt_every)
    u.add_argument("--amp", choices=("auto", "bf16", "fp32"), default=d.amp)
    u.add_argument("--blur", type=float, default=d.blur, help="conditioning augmentation: input blur, at most (px)")
    u.add_argument("--student-share", dest="student_share", type=float, default=d.student_share,
                   help="share of inputs that are the shipped student's version of the photograph")
    u.add_argument("--student-model", dest="student_model", default=d.student_model)
    u.add_argument("--perceptual", type=float, default=d.perceptual, help="weight of the random-feature L1")
    u.add_argument("--adversarial", type=float, default=d.adversarial, help="weight of the patch GAN term")
    u.add_argument("--adversarial-after", dest="adversarial_after", type=int, default=d.adversarial_after)
    u.add_argument("--discriminator", choices=sorted(DISCRIMINATORS), default=d.discriminator,
                   help="what the patch discriminator judges: the detail the stage adds, or the whole crop "
                        "(DiffAugment, spectral norm, R1)")
    u.add_argument("--init-onnx", dest="init_onnx", default=d.init_onnx,
                   help="a model folder (or its upsampler .onnx file) whose stage a fresh run starts from")
    u.add_argument("--no-resume", action="store_true")
    u.add_argument("--model", help="model directory to add the stage to (ONNX + manifest stages.upsampler)")
    u.set_defaults(fn=_upsampler)

    j = sub.add_parser("upsampler-judge", help="the upsampler stage alone: real training photographs shrunk to the "
                                               "generator's side and enlarged by each model's stage, KID against the "
                                               "test half beside bicubic and the photographs themselves")
    j.add_argument("--model", action="append", help="a model folder with an upsampler stage (default "
                                                    "models/default); repeat it to judge stages side by side")
    j.add_argument("--cache", default="cache/footage256.npz", help="footage cache at the stage's output side")
    j.add_argument("--per-subject", type=int, default=300, help="training photographs per subject")
    j.add_argument("--half", choices=("validation", "test"), default="test",
                   help="held-out half to judge against: validation to choose between stages, test to ship one")
    j.add_argument("--boots", type=int, default=200)
    j.add_argument("--threads", type=int, default=0, help="torch threads for Inception, and the stage's threads")
    j.add_argument("--out", help="also write the figures here as JSON")
    j.set_defaults(fn=_upsampler_judge)

    from .detail_gain import DEFAULT_GAINS

    dg = sub.add_parser("detail-gain", help="choose the upsampler stage's detail gain by KID of the model's own "
                                            "images against the validation half; --write puts it into the stage")
    dg.add_argument("--gains", default=",".join(f"{g:g}" for g in DEFAULT_GAINS), help="candidates, comma-separated")
    dg.add_argument("--steps", type=int, default=None, help="the generator's steps (default: the manifest's)")
    _chosen_on_validation(dg, "re-export the stage with the best gain (same weights)")
    dg.set_defaults(fn=_detail_gain)

    r = sub.add_parser("renoise", help="choose how the student re-noises between consistency steps (fresh noise "
                                       "or the input's own) and its 2-step middle level, by KID of the finished "
                                       "images against the validation half; --write puts them into the manifest")
    r.add_argument("--fresh", default="0,1", help="shares of fresh noise to try (0-1), comma-separated")
    r.add_argument("--mids", default="", help="2-step middle levels to try (default: the manifest's)")
    _chosen_on_validation(r, "set the best pair in the manifest")
    r.set_defaults(fn=_renoise)

    w = sub.add_parser("warm-start", help="checkpoints read back from a model directory's ONNX files, to go on "
                                          "training it (train resumes RUN/teacher.pt; distill --init RUN/student_init.pt)")
    w.add_argument("--model", default="models/default")
    w.add_argument("--cache", default="cache/footage64.npz", help="the data the training will use (for subjects)")
    w.add_argument("--workdir", "--run", dest="run", required=True)
    w.add_argument("--no-subjects", action="store_true", help="keep the network without subject conditioning")
    w.set_defaults(fn=_warm_start)

    g = sub.add_parser("grids", help="a sample grid per subject at the model's output resolution "
                                     "(rows: seeds; columns: decay 0 -> 1)")
    g.add_argument("--model", default="models/default")
    g.add_argument("--out", help="folder (default MODEL/eval)")
    g.add_argument("--rows", type=int, default=3)
    g.add_argument("--cols", type=int, default=6)
    g.add_argument("--steps", type=int, default=None)
    g.add_argument("--threads", type=int, default=1)
    g.set_defaults(fn=_grids)

    c = sub.add_parser("demo-clip", help="cut the shipped demo clip (real decay footage) from the credited data")
    c.add_argument("decay_root", help="../shared/data/decay")
    c.add_argument("--out", default="firmware/data/footage/demo_decay.mp4")
    c.add_argument("--bananas", nargs="+", default=["11", "21", "25"])
    c.add_argument("--side", type=int, default=384)
    c.add_argument("--fps", type=int, default=8)
    c.set_defaults(fn=_demo_clip)


def _grids(a):
    from .sample import Generator

    gen = Generator(a.model, threads=a.threads)
    out = Path(a.out or Path(a.model) / "eval")
    out.mkdir(parents=True, exist_ok=True)
    written = [str(p) for p in subject_grids(gen, out, a.rows, a.cols, a.steps)]
    print(json.dumps(written, indent=1))


def subject_grids(gen, out: Path, rows: int, cols: int, steps: int | None) -> list[Path]:
    """One grid per subject at the model's output resolution: rows are seeds, columns run from fresh
    (decay 0) to fully decayed (1), so a viewer sees what each subject grows and how it rots. Each
    column's decay is snapped to the subject's training values, as the box does (conditions.snap_decay)."""
    import numpy as np
    from PIL import Image

    from firmware.generate.conditions import Conditions, snap_decay

    paths = []
    for k, name in enumerate(gen.info.subjects or ("all",)):
        asked = k if gen.info.subjects else None
        cols_decay = [snap_decay(Conditions(float(d), asked), gen.info.decay_support).decay
                      for d in np.linspace(0.0, 1.0, cols)]
        decay = np.tile(np.asarray(cols_decay, np.float32), rows)
        imgs = gen.generate_many(rows * cols, steps, decay=decay, seed=1000 + k, subject=asked)
        h, w = imgs.shape[1:3]
        grid = imgs.reshape(rows, cols, h, w, 3).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, 3)
        p = out / f"grid_{name}.jpg"
        Image.fromarray(grid).save(p, quality=88)
        paths.append(p)
    return paths
