"""`humus-export all FOOTAGE --out MODEL --budget 3h`: a studio's footage to the cascade the box plays, in
one command that can be stopped at any moment and run again.

Stages, in order: the footage caches (the model's resolution, and 4x for the upsampler and the judge),
teacher, student, upsampler, ONNX (with the upsampler stage), evaluation, grids, a preview of the box's
cycle, the report, and with ``--bundle`` a signed update bundle. ``RUN/pipeline.json`` records each
finished stage; a re-run skips those and resumes the unfinished one (training stages resume through the
loop's checkpoints). The budget is split across the stages by ``SHARES``; what footage, export, grids and
preview cost comes out of ``RESERVE``. Each stage gets its share of what is *left* when it starts, so a
stage that ran over (a training stage's start-up and final checkpoint, a slow footage scan) is paid
for by the later ones instead of by the deadline. The evaluation's size follows its share: InceptionV3
features cost about 0.5 s an image on 2 CPU cores, and every held-out test image, every generated set,
both floors and the memorisation check's training images go through it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

SHARES = {"teacher": 0.40, "student": 0.22, "upsampler": 0.10, "evaluate": 0.18}
RESERVE = 0.10   # footage, ONNX, grids, preview, report, bundle
STAGES = ("footage", "footage_hr", "teacher", "student", "upsampler", "onnx", "evaluate", "grids", "preview",
          "report", "bundle")
INCEPTION_IMAGES_PER_CORE_S = 1.0   # measured here: ~2 images/s on 2 cores, ~1 with --threads 1


def parse_budget(text: str) -> float:
    """'3h', '30m', '90s', '1h30m' or a plain number of minutes -> minutes (ValueError names the text)."""
    t = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        minutes = float(t)
    else:
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", t)
        if not t or not parts or not any(parts.groups()):
            raise ValueError(f"--budget {text!r}: write it as 3h, 30m, 90s, 1h30m or minutes")
        h, m, s = (float(g) if g else 0.0 for g in parts.groups())
        minutes = h * 60 + m + s / 60
    if not 0 < minutes <= 60 * 24 * 60:
        raise ValueError(f"--budget {text!r}: must be more than 0 and at most 60 days")
    return minutes


@dataclass(kw_only=True)
class AllConfig:
    """What `all` is told. ``preset``: the teacher's network; the tests use "tiny"."""

    inputs: list
    out: str
    run: str
    budget_minutes: float
    name: str = "studio"
    preset: str = "cpu64"
    resolution: int = 64
    device: str = "auto"
    threads: int = 0
    bundle_key: str | None = None
    version: str | None = None
    preview_seconds: float = 40.0
    batch: int = 32
    upsampler: dict = field(default_factory=dict)     # UpsamplerConfig overrides (tests: a tiny network)


class Record:
    """RUN/pipeline.json: which stages are finished, how long each took, what each left behind."""

    def __init__(self, path: Path, cfg: AllConfig):
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else {"stages": {}}
        self.data["config"] = asdict(cfg)

    def done(self, stage: str) -> bool:
        return bool(self.data["stages"].get(stage, {}).get("done"))

    def finish(self, stage: str, seconds: float, **result) -> None:
        prev = self.data["stages"].get(stage, {}).get("seconds", 0.0)
        self.data["stages"][stage] = {"done": True, "seconds": round(prev + seconds, 1), **result}
        from firmware.appliance.atomic import write_atomic

        write_atomic(self.path, json.dumps(self.data, indent=1, default=str))


def notice_for(inputs: list, summary: dict) -> str:
    """The model's NOTICE: the footage's own credits (a NOTICE, CREDITS or README beside the footage) and
    what was used, per subject. The shipped decay data set carries its credits in its README."""
    lines = ["Training footage of this model:", ""]
    for src in map(Path, inputs):
        folder = src if src.is_dir() else src.parent
        lines.append(f"- {src.name}: {', '.join(f'{s} ({n} images)' for s, n in summary['sources'].items())}")
        for name in ("NOTICE", "CREDITS", "CREDITS.txt", "README.md"):
            if (folder / name).is_file():
                text = (folder / name).read_text(errors="replace")
                lines += ["", f"  Credits from {name}:", *("  " + line for line in text.strip().splitlines()[:60])]
                break
        else:
            lines.append("  (the studio's own footage: no NOTICE, CREDITS or README beside it)")
    lines += ["", "The model weights in this folder were trained on these images; their credits travel with it."]
    return "\n".join(lines) + "\n"


def run_all(cfg: AllConfig, log=print) -> Path:
    """Every stage not yet finished, in order; returns the model folder."""
    from .footage import FootageConfig, build_cache

    if cfg.bundle_key and not cfg.version:
        raise ValueError("--bundle needs --version (the release version the box will show, e.g. 1.4.0)")
    run, out = Path(cfg.run), Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    rec = Record(run / "pipeline.json", cfg)
    budget = cfg.budget_minutes
    cache, cache_hr = run / f"footage{cfg.resolution}.npz", run / f"footage{cfg.resolution * 4}.npz"

    def minutes_for(name: str) -> float:
        return stage_minutes(budget, rec.data["stages"], name)

    def stage(name: str, fn):
        if rec.done(name):
            log(f"== {name}: finished earlier, skipped")
            return rec.data["stages"][name]
        log(f"== {name}")
        t = time.time()
        result = fn() or {}
        rec.finish(name, time.time() - t, **result)
        return rec.data["stages"][name]

    def footage(path, res):
        s = build_cache(cfg.inputs, path, FootageConfig(resolution=res))
        return {"summary": {k: v for k, v in s.items() if k != "decay_distribution"}}

    stage("footage", lambda: footage(cache, cfg.resolution))
    stage("footage_hr", lambda: footage(cache_hr, cfg.resolution * 4))
    stage("teacher", lambda: _teacher(cfg, cache, run, minutes_for("teacher")))
    stage("student", lambda: _student(cfg, cache, run, minutes_for("student")))
    stage("upsampler", lambda: _upsampler(cfg, cache_hr, run / "upsampler", minutes_for("upsampler")))
    stage("onnx", lambda: _export(cfg, cache, run, out, rec.data["stages"]["footage"]["summary"]))
    test_images = sum(rec.data["stages"]["footage_hr"]["summary"]["test_sources"].values())
    cores = cfg.threads or os.cpu_count() or 1      # Inception runs on the threads training had
    stage("evaluate", lambda: _evaluate(out, cache_hr, minutes_for("evaluate"), test_images, cores))
    stage("grids", lambda: _grids(out))
    stage("preview", lambda: _preview(cfg, out))
    stage("report", lambda: {"report": str(write_report(out, run, rec.data))})
    if cfg.bundle_key:
        stage("bundle", lambda: _bundle(cfg, out, run))
    log(f"model: {out}  report: {out / 'eval' / 'report.md'}")
    return out


def stage_minutes(budget: float, stages: dict, name: str) -> float:
    """Stage `name`'s share of the budget still left, given the stages recorded so far ({name: {done,
    seconds}}, finished in this run or an earlier one): overruns are paid by the stages after."""
    spent = sum(st.get("seconds", 0.0) for st in stages.values()) / 60
    ahead = [k for k in SHARES if not stages.get(k, {}).get("done")]
    left = max(0.0, budget - spent)
    return max(0.25, left * SHARES[name] / (sum(SHARES[k] for k in ahead) + RESERVE))


def _teacher(cfg, cache, run, minutes):
    from .train import TrainConfig, train

    ckpt = train(cache, run, TrainConfig(preset=cfg.preset, batch=cfg.batch, minutes=minutes, device=cfg.device,
                                         threads=cfg.threads, ckpt_every=300), state_dir=None)
    return {"checkpoint": str(ckpt), "minutes": minutes}


def _student(cfg, cache, run, minutes):
    from .distill import DistillConfig, distill

    ckpt = distill(cache, run / "teacher.pt", run, DistillConfig(batch=cfg.batch, minutes=minutes, device=cfg.device,
                                                                  threads=cfg.threads, ckpt_every=300))
    return {"checkpoint": str(ckpt), "minutes": minutes}


def _upsampler(cfg, cache_hr, run, minutes):
    from .upsampler import UpsamplerConfig, train_upsampler

    up = UpsamplerConfig(**{"minutes": minutes, "device": cfg.device, "threads": cfg.threads, **cfg.upsampler})
    return {"checkpoint": str(train_upsampler(cache_hr, run, up)), "minutes": minutes}


def _export(cfg, cache, run, out, summary):
    from .onnx import build_model_dir
    from .upsampler import add_stage

    if out.exists():
        shutil.rmtree(out)      # a half-written export from an interrupted run: made again whole
    build_model_dir(cfg.name, run / "teacher.pt", run / "student.pt", out, cache=cache,
                    notice=notice_for(cfg.inputs, summary))
    add_stage(run / "upsampler" / "upsampler.pt", out)
    return {"model": str(out)}


def evaluation_size(minutes: float, test_images: int = 0, models: int = 4, cores: int = 2) -> int:
    """Generated images a model that the evaluation's share affords. Through Inception go the test
    half once, then per generated image: one from each model, one from each of the two floors, four
    training images for the memorisation check, and about one more for the per-subject minimums."""
    images = minutes * 60 * INCEPTION_IMAGES_PER_CORE_S * cores - test_images
    return int(max(8, min(1000, images / (models + 2 + 4 + 1))))


def _evaluate(out, cache_hr, minutes, test_images, cores):
    from .evaluate import evaluate

    n = evaluation_size(minutes, test_images, cores=cores)
    # Every training image through Inception costs ~40 minutes on 2 cores for the shipped data: the
    # memorisation check compares with what the evaluation's share affords.
    m = evaluate(out, cache_hr, generated=n, per_subject=max(4, n // 4), walks=0, secondary=False, boots=200,
                 novelty_train_limit=max(60, 4 * n))
    return {"generated": n, "kid": m.get("kid"), "memorisation": m.get("memorisation"),
            "subject_fidelity": m.get("subject_fidelity")}


def _grids(out):
    from .cli_cascade import subject_grids
    from .sample import Generator

    eval_dir = out / "eval"
    eval_dir.mkdir(exist_ok=True)
    return {"grids": [str(p) for p in subject_grids(Generator(out), eval_dir, 3, 6, None)]}


def _preview(cfg, out):
    video = out / "eval" / "preview.mp4"
    cmd = [sys.executable, "-m", "firmware.cli", "run", "--sim", "--headless", "--model", str(out),
           "--record", str(video), "--duration", str(cfg.preview_seconds), "--width", "640", "--height", "360"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0 or not video.exists():
        raise ValueError(f"the preview (`{' '.join(cmd)}`) failed with exit {p.returncode}: {p.stderr[-800:]}")
    return {"preview": str(video), "log_tail": p.stdout[-400:]}


def _bundle(cfg, out, run):
    from firmware.appliance.bundle import build_bundle

    staging = run / "bundle_src"
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(out, staging / "models" / "default")
    path = run / f"{cfg.name}-{cfg.version}.bundle"
    build_bundle(staging, cfg.bundle_key, cfg.version, path, kind="model")
    shutil.rmtree(staging)
    return {"bundle": str(path), "version": cfg.version}


def write_report(out: Path, run: Path, record: dict) -> Path:
    """eval/report.md: what a studio reads after a run, with the pictures beside it."""
    manifest = json.loads((out / "manifest.json").read_text())
    m = manifest.get("metrics") or {}
    eval_dir = out / "eval"
    eval_dir.mkdir(exist_ok=True)
    for png in ("teacher_loss.png", "student_loss.png", "teacher_grid.png", "student_grid.png"):
        if (run / png).exists():
            shutil.copy(run / png, eval_dir / png)
    st = record["stages"]
    summary = st["footage"]["summary"]
    lines = [f"# {manifest.get('name', out.name)}: training report", "",
             f"Budget {record['config']['budget_minutes']:.0f} min; stages took "
             + ", ".join(f"{k} {v.get('seconds', 0) / 60:.1f} min" for k, v in st.items()) + ".", "",
             "## Footage", "", "| subject | images | held out |", "|---|---|---|"]
    for s, n in summary["sources"].items():
        lines.append(f"| {s} | {n} | {summary['heldout_sources'].get(s, 0)} |")
    lines += ["", "## Quality (Inception KID against held-out photographs; lower is better)", "",
              "| set | KID | 90% interval | near-copies | subject fidelity |", "|---|---|---|---|---|"]
    for k, v in (m.get("kid") or {}).items():
        ci = (m.get("kid_ci90") or {}).get(k) or [None, None]
        mem = (m.get("memorisation") or {}).get(k, {}).get("near_copy_share")
        fid_ = (m.get("subject_fidelity") or {}).get(k, {})
        lines.append(f"| {k} | {v:.4f} | {_fmt(ci[0])} - {_fmt(ci[1])} | "
                     f"{'' if mem is None else f'{mem:.1%}'} | {_fmt(fid_.get('mean'))} |")
    real = (m.get("subject_fidelity") or {}).get("real_validation_accuracy")
    lines += ["", f"Real photographs: the floor rows (`floor_*`). The subject classifier puts {_fmt(real)} of real "
              "validation photographs in their subject; generated images are read against that.", "",
              "## Pictures", ""]
    for p in sorted(eval_dir.glob("*")):
        if p.suffix in (".png", ".jpg"):
            lines.append(f"![{p.stem}]({p.name})")
    if (eval_dir / "preview.mp4").exists():
        lines += ["", "The box's cycle with this model: [preview.mp4](preview.mp4)"]
    path = eval_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"
