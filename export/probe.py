"""A cheap look at quality during training, on the *validation* half (the test half only decides whether
a model ships): KID per subject in Inception features, subject fidelity, and the share of near-copies.

Subject fidelity: a linear classifier (multinomial logistic regression) fitted on Inception features of
real training photographs of each subject, applied to images the model grew when asked for that
subject; the figure is the share that land as asked. It is a judge like KID: nothing trains on it.

Costs on the 2-core CPU: the reference features once per run (cached in the run folder), then per probe
``n`` images a subject through the sampler and Inception (~0.2 s an image): about a minute.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from . import memorisation
from .footage import Dataset, load_cache
from .metrics import mmd2_unbiased


def fit_linear_classifier(f: np.ndarray, y: np.ndarray, classes: int, steps: int = 300, l2: float = 1e-3):
    """Softmax regression by gradient descent on standardised features; returns predict(features) -> labels."""
    mu, sd = f.mean(0), f.std(0) + 1e-6
    x = (f - mu) / sd
    w, b = np.zeros((x.shape[1], classes)), np.zeros(classes)
    onehot = np.eye(classes)[y]
    for _ in range(steps):
        z = x @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / len(x)
        w -= 0.5 * (x.T @ g + l2 * w)
        b -= 0.5 * g.sum(0)
    return lambda feats: ((feats - mu) / sd @ w + b).argmax(1)


class ValidationProbe:
    """Called with a denoiser (EMA weights) during training; returns figures for stats.jsonl."""

    def __init__(self, cache: str | Path, names: list[str], run_dir: Path, n: int = 48, per_subject_train: int = 150,
                 sampler: str = "heun", steps: int = 18, seed: int = 0, extractor=None):
        from .inception import Inception

        full = load_cache(cache)
        self.train, self.val = full.split(heldout=False), full.heldout_part("validation")
        self.names, self.n, self.sampler, self.steps, self.seed = names, n, sampler, steps, seed
        self.inc = extractor or Inception()
        rng = np.random.default_rng(seed)
        pick = np.concatenate([rng.permutation(np.flatnonzero(self.train.source == s))[:per_subject_train]
                               for s in names])
        self.train_idx = pick
        key = hashlib.sha1(Path(cache).read_bytes()[:1 << 20] + repr((names, per_subject_train, seed)).encode())
        path = Path(run_dir) / f"probe_features_{key.hexdigest()[:12]}.npz"
        if path.exists():
            z = np.load(path)
            f_train, f_val = z["train"], z["val"]
        else:
            f_train, f_val = self.inc.features(self.train.images[pick]), self.inc.features(self.val.images)
            np.savez(path, train=f_train, val=f_val)
        self.f_train, self.f_val = f_train, f_val
        labels = np.array([names.index(s) for s in self.train.source[pick]])
        self.classify = fit_linear_classifier(f_train, labels, len(names))
        self.groups = (self.train.group[pick] if self.train.group is not None
                       else np.array([f"{s}/{i}" for s, i in zip(self.train.source[pick], pick)]))

    def _decays(self, subject: str, rng) -> np.ndarray:
        d = self.train.decay[(self.train.source == subject) & np.isfinite(self.train.decay)]
        return rng.choice(d, self.n).astype(np.float32) if len(d) else np.full(self.n, 0.5, np.float32)

    @torch.no_grad()
    def grow(self, model, subject: int, decay: np.ndarray) -> np.ndarray:
        from .distill import DEFAULT_STEPS
        from .schedule import consistency, heun, karras_sigmas
        from .train import out_res, to_uint8

        g = torch.Generator().manual_seed(self.seed + subject)
        res = out_res(model)
        eps = torch.randn(len(decay), model.net.cfg.channels, res, res, generator=g)
        dec = torch.from_numpy(decay)
        subj = torch.full((len(decay),), float(subject)) if model.net.cfg.subjects else None
        if self.sampler == "heun":
            x = heun(model, karras_sigmas(self.steps), eps, dec, subj)
        else:
            x = consistency(model, DEFAULT_STEPS[self.steps], eps, dec, generator=g, subject=subj)
        return to_uint8(x)

    def _in_validation_proportions(self, feats: list[np.ndarray]) -> np.ndarray:
        counts = np.array([(self.val.source == s).sum() for s in self.names], dtype=float)
        if counts.max() == 0:
            return np.zeros((0, feats[0].shape[1]))
        take = [int(min(len(f), max(1, round(self.n * c / counts.max())))) if c else 0
                for f, c in zip(feats, counts)]
        return np.concatenate([f[:k] for f, k in zip(feats, take)])

    def __call__(self, model) -> dict:
        was = model.training
        model.eval()
        rng = np.random.default_rng(self.seed)
        out: dict = {"kid": {}, "fidelity": {}, "n": self.n, "sampler": f"{self.sampler} {self.steps}"}
        feats = []
        for i, s in enumerate(self.names):
            f = self.inc.features(self.grow(model, i, self._decays(s, rng)))
            feats.append(f)
            ref = self.f_val[self.val.source == s]
            out["kid"][s] = round(mmd2_unbiased(f, ref), 5) if len(ref) >= 2 else None
            out["fidelity"][s] = round(float((self.classify(f) == i).mean()), 3)
        model.train(was)
        allf = np.concatenate(feats)
        out["kid"]["overall"] = round(mmd2_unbiased(allf, self.f_val), 5)
        # "overall" pools the subjects equally against a validation half that is mostly tomatoes, so a
        # model that grows tomatoes when asked for bananas scores better there: this one draws the
        # generated images in the validation half's own subject proportions.
        mix = self._in_validation_proportions(feats)
        out["kid"]["validation_mix"] = round(mmd2_unbiased(mix, self.f_val), 5) if len(mix) >= 2 else None
        out["fidelity"]["overall"] = round(float(np.mean(list(out["fidelity"].values()))), 3)
        out["memorisation"] = memorisation.report(allf, self.f_train, self.groups)
        return out


def real_fidelity(ds_train: Dataset, ds_val: Dataset, names: list[str], extractor, per_subject: int = 150,
                  seed: int = 0) -> float:
    """The classifier's accuracy on real validation photographs: the ceiling the fidelity goal is read against."""
    rng = np.random.default_rng(seed)
    pick = np.concatenate([rng.permutation(np.flatnonzero(ds_train.source == s))[:per_subject] for s in names])
    clf = fit_linear_classifier(extractor.features(ds_train.images[pick]),
                                np.array([names.index(s) for s in ds_train.source[pick]]), len(names))
    keep = np.isin(ds_val.source, names)
    return float((clf(extractor.features(ds_val.images[keep])) ==
                  np.array([names.index(s) for s in ds_val.source[keep]])).mean())


class OnnxDenoiser:
    """A shipped model's network (ONNX, through the firmware's engine) where the probe expects a torch
    denoiser: the same question put to a model that has no training checkpoint."""

    training = False

    def __init__(self, model_dir, network: str = "teacher"):
        from types import SimpleNamespace

        from .sample import Generator

        self.gen = Generator(model_dir, network, upsample=False)
        self.resolution = self.gen.resolution[0]
        self.net = SimpleNamespace(cfg=SimpleNamespace(channels=3, subjects=len(self.gen.info.subjects)))

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def __call__(self, x, sigma, decay, subject=None):
        from firmware.generate.conditions import Conditions

        out = [self.gen.engine.denoise(x[i:i + 1].numpy(), np.float32(sigma[i]),
                                       Conditions(np.float32(decay[i]), None if subject is None else int(subject[i])))
               for i in range(x.shape[0])]
        return torch.from_numpy(np.concatenate(out))
