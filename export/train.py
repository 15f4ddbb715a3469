"""Teacher training: the EDM denoising loss as an objective of the one training loop (loop.py), and the
data helpers the student and the evaluation share.

The pieces stay separate: network.py (F), precond.py (D from F), schedule.py (noise levels, samplers),
loop.py (device, autocast, EMA, checkpoints, resume, DDP); this file only owns the teacher's loss.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .footage import Dataset, load_cache
from .loop import Objective, RunBudget, dist_setup, run
from .network import PRESETS, UNet, UNetConfig
from .precond import EDMDenoiser
from .schedule import SIGMA_DATA, heun, karras_sigmas, train_sigmas


@dataclass(kw_only=True)
class TrainConfig(RunBudget):
    """Optimisation settings (and RunBudget's).

    Args:
        preset: network preset name in network.PRESETS ("cpu64", "cpu", "gpu", "tiny").
        batch: images per step per process.
        lr: Adam learning rate (after a linear warm-up of ``warmup`` steps).
        p_mean, p_std: log-normal training noise distribution (EDM defaults).
        decay_cond: condition on the decay value (frames with unknown decay get 0.5).
        subjects: condition on the subject (footage source), drawn balanced across subjects.
        dropout: dropout in the residual blocks (EDM's small-data setting: 0.1 and more).
        decay_jitter: draw each image's decay within its label's cell (`decay_cells`) instead of the
            label itself, so that decay is continuous for every subject: graded footage (tomatoes k/9,
            bananas k/3) otherwise leaves the values between grades to whichever subject has them.
        net: overrides of the preset's UNetConfig fields.
    """

    preset: str = "cpu64"
    batch: int = 32
    lr: float = 4e-4
    warmup: int = 200
    p_mean: float = -1.2
    p_std: float = 1.2
    decay_cond: bool = True
    subjects: bool = True
    dropout: float = -1.0
    decay_jitter: bool = False
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


def decay_cells(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Each image's decay cell (lo, hi): its label widened halfway to the next lower and next higher label
    its subject (footage source) has, so a subject's cells tile the range of its labels. Graded footage
    (tomatoes k/9) gets cells 1/9 wide; a time-lapse, whose labels are dense, barely moves; an image of
    unknown decay keeps 0.5, what training feeds it (`decay_values`)."""
    d = decay_values(ds)
    lo, hi = d.copy(), d.copy()
    known = np.isfinite(ds.decay)
    for source in np.unique(ds.source):
        mine = (ds.source == source) & known
        labels = np.unique(d[mine])
        if len(labels) < 2:
            continue
        mids = (labels[1:] + labels[:-1]) / 2
        at = np.searchsorted(labels, d[mine])
        lo[mine] = np.concatenate([[labels[0]], mids])[at]
        hi[mine] = np.concatenate([mids, [labels[-1]]])[at]
    return lo, hi


class DecayDraw:
    """What the training loop feeds as each drawn image's decay: its label, or with ``jitter`` a value
    drawn uniformly within its `decay_cells` cell."""

    def __init__(self, ds: Dataset, device, jitter: bool = False):
        lo, hi = decay_cells(ds) if jitter else (decay_values(ds),) * 2
        self.lo = torch.from_numpy(lo).to(device)
        self.width = torch.from_numpy(hi - lo).to(device) if jitter else None

    def __call__(self, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.width is None:
            return self.lo[idx]
        return self.lo[idx] + self.width[idx] * torch.rand(len(idx), generator=gen, device=self.lo.device)


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


def draw_batch(images: torch.Tensor, decay: DecayDraw, batch: int, gen: torch.Generator,
               subjects: SubjectTable | None = None):
    """A random batch of training images, half of them mirrored, their decay values (drawn by ``decay``) and their subjects (None for a network without subjects; with subjects the
    draw is balanced).
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
    return torch.where(flip[:, None, None, None], x0.flip(3), x0), decay(idx, gen), subj


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


class TeacherObjective(Objective):
    """EDM's denoising loss: D(x0 + sigma n; sigma) against x0, weighted by lambda(sigma), sigma
    log-normal; subjects drawn in equal proportion."""

    name = "teacher"

    def __init__(self, ds: Dataset, cfg: TrainConfig, device, net_cfg: UNetConfig, names: list[str],
                 probe_args: tuple | None = None):
        self.cfg, self.net_cfg, self.names, self.ds = cfg, net_cfg, names, ds
        self.probe_args = probe_args    # (cache, run dir): the probe is built on first use
        self.batch = cfg.batch
        self.model = build_model(net_cfg)
        self.model.resolution = ds.images.shape[1]
        self.images = to_tensor(ds.images).to(device)
        self.decay = DecayDraw(ds, device, cfg.decay_jitter)
        self.table = SubjectTable(subject_ids(ds, names), device) if net_cfg.subjects else None

    def lr(self, step: int) -> float:
        return self.cfg.lr * min(1.0, (step + 1) / max(self.cfg.warmup, 1))

    def loss(self, net, step, gen):
        cfg = self.cfg
        x0, dec, subj = draw_batch(self.images, self.decay, cfg.batch, gen, self.table)
        sigma = train_sigmas(cfg.batch, cfg.p_mean, cfg.p_std, generator=gen, device=x0.device)
        noise = torch.randn(x0.shape, generator=gen, device=x0.device)
        w = (sigma**2 + SIGMA_DATA**2) / (sigma * SIGMA_DATA) ** 2
        d = net(x0 + sigma[:, None, None, None] * noise, sigma, dec, subj)
        return (w[:, None, None, None] * (d.float() - x0) ** 2).mean()

    def meta(self) -> dict:
        return {"net": self.net_cfg.to_dict(), "train": asdict(self.cfg), "data": self.ds.summary,
                "resolution": self.model.resolution, "subjects": self.names if self.net_cfg.subjects else None}

    def preview(self, ema, out: Path) -> None:
        preview(ema, out)


def train(cache: str | Path, out: str | Path, cfg: TrainConfig, resume: bool = True, progress: bool = True,
          state_dir: str | Path | None = None) -> Path:
    """Train a teacher; returns the checkpoint path (``out``/teacher.pt). ``state_dir``: see loop.run."""
    out = Path(out)
    if cfg.preset not in PRESETS:
        raise ValueError(f"unknown preset {cfg.preset!r}; choose from {sorted(PRESETS)}")
    ds = load_cache(cache).split(heldout=False)
    if len(ds) == 0:
        raise ValueError(f"{cache}: training split is empty")
    extra = {} if cfg.dropout < 0 else {"dropout": cfg.dropout}
    net_cfg = UNetConfig.from_dict({**PRESETS[cfg.preset].to_dict(), **cfg.net, **extra, "decay_cond": cfg.decay_cond,
                                    "subjects": len(subject_names(ds)) if cfg.subjects else 0})
    names = subject_names(ds)
    ckpt_path = out / "teacher.pt"
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        net_cfg = UNetConfig.from_dict(state["net"])
        names = state.get("subjects") or names
    _, _, device = dist_setup(cfg.device)
    torch.manual_seed(cfg.seed)     # the initial weights
    obj = TeacherObjective(ds, cfg, device, net_cfg, names, probe_args=(cache, out) if cfg.probe_every else None)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps({"train": asdict(cfg), "net": net_cfg.to_dict(),
                                                       "data": ds.summary}, indent=1))
    return run(obj, out, cfg, resume=resume, progress=progress, state_dir=state_dir)


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
