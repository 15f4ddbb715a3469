"""Few-step student: Easy Consistency Tuning (ECT, Geng et al. 2024) from the teacher.

Method. The student starts as an exact copy of the teacher (same UNet, same EDM
preconditioning, whose c_skip(sigma_min) ~ 1 and c_out(sigma_min) ~ 0.002 already give the
consistency boundary condition f(x, sigma_min) ~ x). It is then trained so that two points on
the same noising path agree:

    x_t = x0 + t n,   x_r = x0 + r n,   r = t - t / q**stage * (1 + k sigmoid(-t))  (clamped >= 0)
    loss = w(t, r) * pseudo_huber(f(x_t, t) - stopgrad f(x_r, r)),  w = 1 / (t - r)

with the gap t - r halving at every stage (q = 2), t log-normal (P_mean -1.1, P_std 2.0).
Stage 0 (r = 0) would be the teacher's own denoising loss, so tuning starts at stage 1.

Why ECT rather than the alternatives, on a 2-core CPU studio budget:

* Consistency *distillation* (CD) needs a teacher Heun step per sample: three network
  evaluations per sample instead of ECT's two, i.e. ~1.5x fewer updates in the same wall time,
  and it inherits the teacher's ODE discretisation error. ECT needs no ODE solve at all.
* Progressive distillation needs log2(35/2) ~ 5 sequential rounds, each a full training run
  with 2-step teacher targets (3 evaluations per sample): several times our budget.
* ECT gives 1-, 2- and 4-step sampling from one network (multistep consistency sampling),
  which the box needs (1, 2 and 4 must all work).

What each run measured (steps, wall time, device, KID against the teacher) is recorded where it
belongs: in the model's manifest ("training", "metrics") and in README.md's account of the shipped
model, not here.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .footage import load_cache
from .loop import Objective, RunBudget, dist_setup, run
from .train import DecayDraw, SubjectTable, denoiser_from_state, draw_batch, load_checkpoint, subject_ids, to_tensor


@dataclass(kw_only=True)
class DistillConfig(RunBudget):
    """ECT settings (and RunBudget's).

    Args:
        batch: images per step per process.
        lr: Adam learning rate (constant; the teacher is already a good initialisation).
        stages: number of times the gap t - r halves over the run (q = 2).
        first_stage: stage the run starts in (1 = gap t/2 * n(t)).
        p_mean, p_std: log-normal distribution of t (ECT values).
        k: strength of the n(t) = 1 + k * sigmoid(-t) gap enlargement at small t.
        huber_c: pseudo-Huber constant per image, in units of sqrt(pixels) (iCT: 0.00054).
        dropout: dropout in the residual blocks during tuning (0 = off).
        decay_jitter: each image's decay drawn within its label's cell (train.decay_cells), as the
            teacher's TrainConfig.decay_jitter.
        adversarial: weight of a patch discriminator's term on the student's one-step images from the
            upper half of the noise levels (sigma >= adversarial_sigma), against real photographs
            (export/adversarial.py: DiffAugment, lazy R1); 0 = plain ECT. Adversarial terms close most of
            the gap between a few-step student and its teacher (sCM+adv, DMD2, ADD).
        adversarial_sigma: the noise level above which the student's output is judged (patch adversary).
        adversary: what the adversarial term judges, and with what. "patch": the student's one-step
            images from sigma >= adversarial_sigma, a patch discriminator (export/adversarial.py).
            "teacher": ``adversarial_batch`` of the box's few-step samples from pure noise
            (``adversarial_sigmas``, re-noise share ``adversarial_fresh``), differentiable through
            every step, judged by heads on the frozen teacher's encoder features, conditioned on subject
            and decay (export/feature_adversary.py, LADD); the term's weight is then ``adversarial``
            times the ratio of the two terms' gradient norms at the student's last layer (VQGAN).
        guidance: autoguidance baked into the targets (Karras 2024, "Guiding a diffusion model with a bad
            version of itself"): 0 = plain ECT (x_r on the data's own path); w > 0 = the nearer point x_r
            is one Euler step of the guided teacher D_guide + (1 + w) (D_teacher - D_guide) from x_t,
            so the student learns the guided ODE (consistency distillation with a guided teacher: two
            teacher evaluations more per sample).
        guide: checkpoint of the guide, a weaker version of the teacher (an early snapshot or a smaller
            network trained on the same data and conditions); its EMA weights are used.

    The stage schedule is laid over ``steps`` and, with a time budget, over ``minutes`` too (whichever is
    further along): only a steps-only schedule repeats exactly when a run is resumed.
    """

    batch: int = 32
    lr: float = 1e-4
    stages: int = 4
    first_stage: int = 1
    p_mean: float = -1.1
    p_std: float = 2.0
    k: float = 8.0
    huber_c: float = 0.00054
    dropout: float = 0.0
    decay_jitter: bool = False
    adversarial: float = 0.0
    adversarial_sigma: float = 1.0
    adversary: str = "patch"
    adversarial_batch: int = 16
    adversarial_sigmas: tuple = (80.0, 1.6)
    adversarial_fresh: float = 0.0
    guidance: float = 0.0
    guide: str = ""

    def __post_init__(self):
        if self.adversary not in ("patch", "teacher"):
            raise ValueError(f"adversary={self.adversary!r}: 'patch' or 'teacher'")
        if not 0 <= self.adversarial_fresh <= 1:
            raise ValueError(f"adversarial_fresh={self.adversarial_fresh}: a share, 0-1")


def r_of_t(t: torch.Tensor, stage: int, k: float, q: float = 2.0) -> torch.Tensor:
    """ECT mapping from t to the nearer point r on the same path (>= 0)."""
    gap = t / q**stage * (1 + k * torch.sigmoid(-t))
    return (t - gap).clamp(min=0.0)


def pseudo_huber(diff: torch.Tensor, c: float) -> torch.Tensor:
    """sqrt(||d||^2 + c^2) - c per batch item (Song & Dhariwal 2023)."""
    return (diff.flatten(1).pow(2).sum(1) + c * c).sqrt() - c


class StudentObjective(Objective):
    """ECT: f(x_t, t) against the stopped-gradient f(x_r, r) on the same noising path."""

    name = "student"
    probe_sampler = ("consistency", 2)     # the teacher's probe, sampled as the box samples

    def __init__(self, ds, cfg: DistillConfig, device, model, teacher_state: dict, names: list[str],
                 lineage: dict, teacher=None, guide=None, probe_args: tuple | None = None):
        self.probe_args = probe_args    # (cache, run dir): the probe is built on first use
        self.cfg, self.ds, self.model, self.teacher_state, self.names, self.lineage = (
            cfg, ds, model, teacher_state, names, lineage)
        self.batch = cfg.batch
        self.images = to_tensor(ds.images).to(device)  # on the device, noise drawn there: see draw_batch
        self.decay = DecayDraw(ds, device, cfg.decay_jitter)
        self.table = SubjectTable(subject_ids(ds, names), device) if names else None
        self.c = cfg.huber_c * math.sqrt(self.images[0].numel())
        self.budget = cfg.minutes * 60 if cfg.minutes > 0 else float("inf")
        self.state = None      # the loop's RunState, set by the loop: the stage follows it
        self.teacher, self.guide = teacher, guide     # frozen; both set when cfg.guidance > 0
        # The discriminator of cfg.adversary ("patch": adversarial.Adversary; "teacher": FeatureAdversary).
        self.adversary = self.adv_weight = None
        if cfg.adversarial > 0 and cfg.adversary == "patch":
            from .adversarial import Adversary

            self.adversary = Adversary(device=device)
        elif cfg.adversarial > 0:
            from .feature_adversary import FeatureAdversary

            self.adversary = FeatureAdversary(denoiser_from_state(teacher_state, "ema", where="teacher"),
                                              device=device)
        self.last, self._sums, self._counts = {}, {}, {}

    def lr(self, step: int) -> float:
        return self.cfg.lr

    def stage(self, step: int) -> int:
        f_time = self.state.elapsed / self.budget if self.state is not None and self.budget != float("inf") else 0.0
        frac = min(1.0, max(step / self.cfg.steps, f_time))
        return self.cfg.first_stage + min(self.cfg.stages - 1, int(frac * self.cfg.stages))

    def loss(self, net, step, gen):
        cfg, device = self.cfg, self.images.device
        x0, dec, subj = draw_batch(self.images, self.decay, cfg.batch, gen, self.table)
        t = (torch.randn(cfg.batch, generator=gen, device=device) * cfg.p_std + cfg.p_mean).exp().clamp(0.002, 80.0)
        r = r_of_t(t, self.stage(step), cfg.k)
        n = torch.randn(x0.shape, generator=gen, device=device)
        b = lambda v: v[:, None, None, None]  # noqa: E731
        x_t = x0 + b(t) * n
        with torch.no_grad():
            if self.guide is None:
                x_r = x0 + b(r) * n
            else:   # one Euler step of the guided teacher's ODE from x_t to r
                d_t = self.teacher(x_t, t, dec, subj).float()
                d_g = self.guide(x_t, t, dec, subj).float()
                denoised = d_g + (1.0 + cfg.guidance) * (d_t - d_g)
                x_r = x_t + b(r - t) * (x_t - denoised) / b(t)
            # r == 0 means the target is the clean image itself (the boundary condition).
            target = torch.where(b(r) > 0, self.model(x_r, r.clamp(min=0.002), dec, subj).float(), x0)
        pred = net(x_t, t, dec, subj).float()
        loss = (pseudo_huber(pred - target, self.c) / (t - r)).mean()
        self.last = {}
        self._keep(ect=float(loss.detach()))
        judged = t >= cfg.adversarial_sigma
        if self.adversary is not None and cfg.adversary == "patch" and bool(judged.any()):
            g = self.adversary.step(x0[judged], pred[judged], step, gen)
            self._keep(gan=float(g.detach()), d=self.adversary.last_d)
            loss = loss + cfg.adversarial * g
        if self.adversary is not None and cfg.adversary == "teacher":
            loss = loss + self._sample_adversarial(net, loss, step, gen)
        return loss

    def _sample_adversarial(self, net, ect, step, gen):
        """The teacher-feature discriminator's term on the box's few-step samples (cfg.adversary)."""
        from .feature_adversary import balanced_weight, few_step_samples

        cfg, n = self.cfg, self.cfg.adversarial_batch
        real, dec, subj = draw_batch(self.images, self.decay, n, gen, self.table)
        fake = few_step_samples(net, real.shape, cfg.adversarial_sigmas, dec, subj, gen, cfg.adversarial_fresh)
        g = self.adversary.step(real, fake, dec, subj, gen)
        if self.adv_weight is None or step % 8 == 0:
            # Two more backward passes through both networks: measured every 8 steps, not each one.
            self.adv_weight = float(balanced_weight(ect, g, self.model.net.head.weight))
        self._keep(gan=float(g.detach()), d=self.adversary.last_d, w=self.adv_weight)
        return cfg.adversarial * self.adv_weight * g

    def extra_state(self) -> dict:
        if self.adversary is None:
            return {}
        return {"adversary": self.adversary.state_dict(), "adversary_weight": self.adv_weight}

    def load_extra_state(self, st: dict) -> None:
        if self.adversary is not None and "adversary" in st:
            self.adversary.load_state_dict(st["adversary"])
            self.adv_weight = st.get("adversary_weight")

    def postfix(self, step: int) -> dict:
        return {"stage": self.stage(step), **{k: f"{v:.3f}" for k, v in self.last.items()}}

    def _keep(self, **parts) -> None:
        """The step's named loss parts: shown on the progress bar, averaged into stats.jsonl."""
        self.last.update(parts)
        for k, v in parts.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
            self._counts[k] = self._counts.get(k, 0) + 1

    def terms(self) -> dict:
        out = {k: round(self._sums[k] / self._counts[k], 5) for k in self._sums}
        self._sums, self._counts = {}, {}
        return out

    def meta(self) -> dict:
        ts = self.teacher_state
        return {"net": ts["net"], **self.lineage, "distill": asdict(self.cfg), "method": "ECT",
                "teacher_step": ts["step"], "data": ts.get("data"), "train": ts.get("train"),
                "resolution": ts.get("resolution", 64), "consistency": False, "subjects": self.names or None}

    def preview(self, ema, out: Path) -> None:
        ema.resolution = self.teacher_state.get("resolution", 64)
        _student_grid(ema, out)


def distill(cache: str | Path, teacher_ckpt: str | Path, out: str | Path, cfg: DistillConfig,
            resume: bool = True, progress: bool = True, init: str | Path | None = None,
            state_dir: str | Path | None = None) -> Path:
    """Tune a consistency student from ``teacher_ckpt``; returns ``out``/student.pt.

    ``init``: start from this student checkpoint's EMA weights instead of the teacher's (to go on
    tuning a shipped student with a new stage schedule, e.g. on a GPU); its step count is kept
    in the checkpoint as ``init_steps``."""
    ds = load_cache(cache).split(heldout=False)
    teacher_state = load_checkpoint(teacher_ckpt)
    init_state = teacher_state if init is None else load_checkpoint(init)
    model = denoiser_from_state(init_state, "ema", where=str(init or teacher_ckpt)).requires_grad_(True).train()
    init_steps = 0 if init is None else int(init_state.get("step", 0)) + int(init_state.get("init_steps", 0))
    # A student read back from a shipped model (`warm-start`) starts at step 0 of its checkpoint; the
    # steps it had been through are in the shipped model's training record.
    before = (init_state.get("warm_start") or {}).get("training") if init is not None else None
    if before:
        init_steps += int(before.get("steps") or 0) + int(before.get("init_steps") or 0)
    elif init is not None and "distill" in init_state:
        # A student checkpoint (another run, another machine): its own record, chain and all, so the
        # manifest still says what the weights had been through (its steps are already in init_steps).
        before = record_of(init_state)
    del init_state
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = cfg.dropout
    _, world, device = dist_setup(cfg.device)
    if world > 1 and cfg.adversarial > 0 and cfg.adversary == "teacher":
        # Two forwards of the wrapped network before one backward: DDP's reducer expects one.
        raise ValueError("--adversary teacher runs in one process (not under torchrun)")
    names = teacher_state.get("subjects") or []
    lineage = {"init": None if init is None else str(init), "init_steps": init_steps, "teacher": str(teacher_ckpt)}
    if before:
        lineage["before"] = before
    teacher = guide = None
    if cfg.guidance > 0:
        if not cfg.guide:
            raise ValueError("--guidance needs --guide, a checkpoint of a weaker version of the teacher")
        teacher = denoiser_from_state(teacher_state, "ema", where=str(teacher_ckpt)).to(device)
        guide = denoiser_from_state(load_checkpoint(cfg.guide), "ema", where=cfg.guide).to(device)
        lineage["guide"] = cfg.guide
    torch.manual_seed(cfg.seed)     # whatever the objective draws when built (a discriminator's first weights)
    obj = StudentObjective(ds, cfg, device, model, teacher_state, names, lineage, teacher, guide,
                           probe_args=(cache, Path(out)) if cfg.probe_every else None)
    return run(obj, out, cfg, resume=resume, progress=progress, state_dir=state_dir)


def _student_grid(model, path: Path):
    """Rows: 1, 2 and 4 consistency steps from the same noise (decay 0 .. 1 across columns)."""
    from .schedule import consistency
    from .train import save_grid, to_uint8

    res = int(getattr(model, "resolution", 64))
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(8, model.net.cfg.channels, res, res, generator=g).to(device)
    dec = torch.linspace(0, 1, 8, device=device)
    rows = [consistency(model, s, eps, dec, generator=torch.Generator(device=device).manual_seed(1))
            for s in (DEFAULT_STEPS[1], DEFAULT_STEPS[2], DEFAULT_STEPS[4])]
    save_grid(to_uint8(torch.cat(rows)), path, cols=8)


# Default student noise levels per step count; `onnx` may replace the intermediate ones with
# values chosen on the training data (see choose_sigmas), and the manifest holds the truth.
DEFAULT_STEPS = {1: [80.0], 2: [80.0, 0.821], 4: [80.0, 1.526, 0.5, 0.2]}


def notes(student_ckpt: str | Path) -> dict:
    """Summary of the tuning run for the manifest."""
    return record_of(torch.load(student_ckpt, map_location="cpu", weights_only=False))


def record_of(st: dict) -> dict:
    """`notes` of a student checkpoint already in memory."""
    h = st.get("history") or []
    tail = [v for _, v in h[-200:]]
    return {"method": "ECT (easy consistency tuning from the teacher)", "steps": st["step"],
            "wall_seconds": round(st.get("elapsed", 0.0)), "final_loss": float(np.mean(tail)) if tail else None,
            "config": st["distill"], "teacher_step": st.get("teacher_step"),
            "init_steps": st.get("init_steps", 0), "device": st["distill"].get("device", "cpu"),
            "amp": st.get("run", {}).get("amp", "fp32"),
            "lineage": {k: st[k] for k in ("init", "teacher", "guide", "before") if st.get(k) is not None} or None}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(notes(os.sys.argv[1]), indent=1))
