"""Teacher training: EDM denoising loss, EMA, checkpoints with resume, torchrun/DDP.

The pieces stay separate: network.py (F), precond.py (D from F), schedule.py (noise
levels, samplers); this file only owns the loop. Under ``torchrun`` every rank draws its own
batches (seeded by rank) and DistributedDataParallel averages gradients; rank 0 alone
writes checkpoints, the grid and the loss curve.
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from .footage import Dataset, load_cache
from .network import PRESETS, UNet, UNetConfig
from .precond import EDMDenoiser
from .schedule import SIGMA_DATA, heun, karras_sigmas, train_sigmas


# kw_only, here and in the configs built on it: the base's fields come first in a subclass, so a
# positional call would silently fill the wrong ones.
@dataclass(kw_only=True)
class RunBudget:
    """What every training run (teacher, student, upsampler) is told about its run, as opposed to its
    method. A config may re-declare a field to give it another default.

    Args:
        steps: stop after this many optimiser steps ...
        minutes: ... or after this much wall time, whichever comes first (0 = no limit).
        ckpt_every: seconds between checkpoints (also writes the loss curve, and a grid where there is one).
        seed: base random seed (under torchrun the rank is added).
        threads: torch intra-op threads on CPU (0 = leave torch's default).
    """

    steps: int = 100_000
    minutes: float = 0.0
    ckpt_every: float = 180.0
    seed: int = 0
    threads: int = 0


@dataclass(kw_only=True)
class TrainConfig(RunBudget):
    """Optimisation settings (and RunBudget's).

    Args:
        preset: network preset name in network.PRESETS ("cpu", "gpu", "tiny").
        batch: images per step per process.
        lr: Adam learning rate (after a linear warm-up of ``warmup`` steps).
        ema: EMA decay of the weights used for sampling; warmed up as min(ema, (1+n)/(10+n)).
        p_mean, p_std: log-normal training noise distribution (EDM defaults).
        decay_cond: condition on the decay value (frames with unknown decay get 0.5).
        subjects: condition on the subject (footage source), drawn balanced across subjects.
        device: "cpu" or "cuda".
    """

    preset: str = "cpu"
    batch: int = 32
    lr: float = 4e-4
    warmup: int = 200
    ema: float = 0.999
    p_mean: float = -1.2
    p_std: float = 1.2
    decay_cond: bool = True
    subjects: bool = True
    device: str = "cpu"
    net: dict = field(default_factory=dict)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float N x 3 x H x W in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def decay_values(ds: Dataset) -> np.ndarray:
    d = ds.decay.astype(np.float32).copy()
    d[~np.isfinite(d)] = 0.5
    return d


def subject_names(ds: Dataset) -> list[str]:
    """The subjects of a data set: its footage sources (folder or clip names), sorted."""
    return sorted({str(v) for v in ds.source})


def subject_ids(ds: Dataset, names: list[str]) -> np.ndarray:
    lookup = {n: i for i, n in enumerate(names)}
    missing = sorted({str(v) for v in ds.source} - set(lookup))
    if missing:
        raise ValueError(f"the data has subjects {missing} the network was not built for (it knows {names})")
    return np.array([lookup[str(v)] for v in ds.source], np.int64)


class SubjectTable:
    """Balanced draws: each subject equally likely, then an image of it. 97% of the footage is
    tomatoes; drawn uniformly, bananas and the melon would barely be learnt."""

    def __init__(self, ids: np.ndarray, device):
        ids_t = torch.from_numpy(ids)
        self.order = torch.argsort(ids_t, stable=True).to(device)
        counts = torch.bincount(ids_t)
        self.present = torch.nonzero(counts).reshape(-1).to(device)   # subjects with images
        self.counts = counts.to(device)
        self.offsets = (torch.cumsum(counts, 0) - counts).to(device)
        self.ids = ids_t.to(device)

    def draw(self, batch: int, gen: torch.Generator) -> torch.Tensor:
        device = self.order.device
        k = self.present[torch.randint(len(self.present), (batch,), generator=gen, device=device)]
        within = (torch.rand(batch, generator=gen, device=device) * self.counts[k]).long()
        return self.order[self.offsets[k] + within.clamp(max=self.counts[k] - 1)]


def draw_batch(images: torch.Tensor, decay: torch.Tensor, batch: int, gen: torch.Generator,
               subjects: SubjectTable | None = None):
    """A random batch of training images, half of them mirrored, their decay values and their
    subjects (None for a network without subjects; with subjects the draw is balanced).
    The split lives on the training device and `gen` draws there: on a GPU a host-side draw and
    copy per step costs more than the step itself for a model this small."""
    device = images.device
    if subjects is None:
        idx = torch.randint(len(images), (batch,), generator=gen, device=device)
    else:
        idx = subjects.draw(batch, gen)
    x0 = images[idx]
    flip = torch.rand(batch, generator=gen, device=device) < 0.5
    subj = None if subjects is None else subjects.ids[idx].float()
    return torch.where(flip[:, None, None, None], x0.flip(3), x0), decay[idx], subj


def build_model(net_cfg: UNetConfig) -> EDMDenoiser:
    return EDMDenoiser(UNet(net_cfg), sigma_data=SIGMA_DATA)


def save_grid(images: np.ndarray, path: Path, cols: int = 8):
    from PIL import Image

    n, h, w, _ = images.shape
    rows = math.ceil(n / cols)
    grid = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, im in enumerate(images):
        grid[(i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w] = im
    Image.fromarray(grid).save(path)


def save_loss_curve(history: list, path: Path, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    steps, losses = zip(*history)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, losses, lw=0.5, alpha=0.4, label="loss")
    k = max(1, len(losses) // 50)
    if len(losses) > k:
        sm = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], sm, lw=1.5, label=f"mean of {k}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _eta(step, steps, run_s, run_steps, left_s) -> str:
    """Time to whichever limit (step count, time budget) comes first, as H:MM:SS."""
    rate = run_s / max(run_steps, 1)
    s = min(left_s, (steps - step) * rate)
    s = 0 if not math.isfinite(s) else int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def shared_elapsed(elapsed: float, world: int, device) -> float:
    """Rank 0's clock, on every rank: all ranks must stop together when the time budget runs out."""
    if world == 1:
        return elapsed
    t = torch.tensor([elapsed], device=device)
    dist.broadcast(t, 0)
    return float(t)


def show_progress(bar, step: int, history: list, steps: int, run_s: float, run_steps: int, left_s: float,
                  **extra):
    """One step on the bar; every 10 steps the mean loss of the last 100 and the ETA."""
    if bar is None:
        return
    bar.update(1)
    if step % 10 == 0:
        bar.set_postfix(loss=f"{np.mean([h[1] for h in history[-100:]]):.4f}",
                        eta=_eta(step, steps, run_s, run_steps, left_s), **extra, refresh=False)


def _dist_setup(device: str):
    """Initialise torch.distributed when launched by torchrun; returns (rank, world, device)."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) < 1:
        return 0, 1, torch.device(device)
    backend = "nccl" if device == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device(device)


def optimizer_step(opt, model: torch.nn.Module, loss: torch.Tensor) -> None:
    """One step on `loss`, gradients clipped to norm 1 (a rare huge batch must not throw the weights)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def finish_run(checkpoint, bar, world: int) -> None:
    """The last checkpoint, the bar closed, and every rank waits until rank 0 has written the file."""
    checkpoint()
    if bar is not None:
        bar.close()
    if world > 1:
        dist.barrier()


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float):
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1 - decay)


def preview(model, out: Path, decay_vals=(0.0, 0.33, 0.67, 1.0), n_per=6, steps=12, seed=0):
    """Heun samples in rows of increasing decay (same noise per column). Kept small (24 images,
    12 steps = 23 evaluations): on a shared 2-core CPU a bigger grid costs a minute per checkpoint."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(n_per, model.net.cfg.channels, out_res(model), out_res(model), generator=g)
    eps = eps.repeat(len(decay_vals), 1, 1, 1).to(device)
    dec = torch.tensor(decay_vals).repeat_interleave(n_per).float().to(device)
    was = model.training
    model.eval()
    x = heun(model, karras_sigmas(steps), eps, dec)
    model.train(was)
    save_grid(to_uint8(x), out, cols=n_per)


def out_res(model) -> int:
    return int(getattr(model, "resolution", 64))


def train(cache: str | Path, out: str | Path, cfg: TrainConfig, resume: bool = True, progress: bool = True) -> Path:
    """Train a teacher; returns the checkpoint path (``out``/teacher.pt)."""
    out = Path(out)
    rank, world, device = _dist_setup(cfg.device)
    if cfg.threads and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    if cfg.preset not in PRESETS:
        raise ValueError(f"unknown preset {cfg.preset!r}; choose from {sorted(PRESETS)}")
    ds = load_cache(cache).split(heldout=False)
    if len(ds) == 0:
        raise ValueError(f"{cache}: training split is empty")
    net_cfg = UNetConfig.from_dict({**PRESETS[cfg.preset].to_dict(), **cfg.net, "decay_cond": cfg.decay_cond,
                                    "subjects": len(subject_names(ds)) if cfg.subjects else 0})
    ckpt_path = out / "teacher.pt"
    state = None
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        net_cfg = UNetConfig.from_dict(state["net"])
    torch.manual_seed(cfg.seed + rank)
    model = build_model(net_cfg).to(device)
    model.resolution = ds.images.shape[1]
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), eps=1e-8)
    step, history, elapsed = 0, [], 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step, history, elapsed = state["step"], state["history"], state.get("elapsed", 0.0)
    ddp = DDP(model) if world > 1 else model

    images = to_tensor(ds.images).to(device)
    decay = torch.from_numpy(decay_values(ds)).to(device)
    names = (state or {}).get("subjects") or subject_names(ds)
    table = SubjectTable(subject_ids(ds, names), device) if net_cfg.subjects else None
    gen = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + rank + step)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps({"train": asdict(cfg), "net": net_cfg.to_dict(),
                                                           "data": ds.summary}, indent=1))
    budget = cfg.minutes * 60 if cfg.minutes > 0 else float("inf")
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        # With a time budget the step total is unknown: the bar counts steps and the postfix
        # carries the ETA of whichever limit comes first.
        bar = tqdm(total=cfg.steps if budget == float("inf") else None, initial=step, dynamic_ncols=True,
                   mininterval=5)
    t0, last_ckpt = time.time(), time.time()
    start_elapsed, start_step = elapsed, step

    def checkpoint():
        if rank != 0:
            return
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                    "step": step, "history": history, "elapsed": elapsed, "net": net_cfg.to_dict(),
                    "train": asdict(cfg), "data": ds.summary, "resolution": model.resolution,
                    "subjects": names if net_cfg.subjects else None}, tmp)
        os.replace(tmp, ckpt_path)  # atomic: a kill mid-save never corrupts the last checkpoint
        ema.resolution = model.resolution
        preview(ema, out / "teacher_grid.png")
        save_loss_curve(history, out / "teacher_loss.png", f"teacher ({net_cfg.base}ch, step {step})")

    model.train()
    while step < cfg.steps and elapsed < budget:
        x0, dec, subj = draw_batch(images, decay, cfg.batch, gen, table)
        sigma = train_sigmas(cfg.batch, cfg.p_mean, cfg.p_std, generator=gen, device=device)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        w = (sigma**2 + SIGMA_DATA**2) / (sigma * SIGMA_DATA) ** 2
        d = ddp(x0 + sigma[:, None, None, None] * noise, sigma, dec, subj)
        loss = (w[:, None, None, None] * (d - x0) ** 2).mean()
        for g in opt.param_groups:
            g["lr"] = cfg.lr * min(1.0, (step + 1) / max(cfg.warmup, 1))
        optimizer_step(opt, model, loss)
        ema_update(ema, model, min(cfg.ema, (1 + step) / (10 + step)))
        step += 1
        lv = float(loss.detach())
        if not math.isfinite(lv):
            raise FloatingPointError(f"loss became {lv} at step {step}; lower --lr")
        history.append((step, lv))
        elapsed = shared_elapsed(start_elapsed + time.time() - t0, world, device)
        show_progress(bar, step, history, cfg.steps, elapsed - start_elapsed, step - start_step, budget - elapsed)
        if time.time() - last_ckpt > cfg.ckpt_every:
            checkpoint()
            last_ckpt = time.time()
    finish_run(checkpoint, bar, world)
    return ckpt_path


def load_checkpoint(ckpt: str | Path) -> dict:
    ckpt = Path(ckpt)
    if not ckpt.exists():
        raise FileNotFoundError(f"{ckpt}: checkpoint not found")
    return torch.load(ckpt, map_location="cpu", weights_only=False)


def load_denoiser(ckpt: str | Path, which: str = "ema", consistency: bool = False) -> EDMDenoiser:
    """Rebuild a denoiser from a checkpoint (teacher.pt or student.pt)."""
    return denoiser_from_state(load_checkpoint(ckpt), which, consistency, where=str(ckpt))


def denoiser_from_state(state: dict, which: str = "ema", consistency: bool = False,
                        where: str = "checkpoint") -> EDMDenoiser:
    """`load_denoiser` for a checkpoint already in memory (one file read for several uses)."""
    for k in ("net", which):
        if k not in state:
            raise KeyError(f"{where}: checkpoint lacks key {k!r}")
    m = EDMDenoiser(UNet(UNetConfig.from_dict(state["net"])), sigma_data=SIGMA_DATA,
                    consistency=state.get("consistency", consistency))
    m.load_state_dict(state[which])
    m.resolution = state.get("resolution", 64)
    return m.eval().requires_grad_(False)
