"""Power-function EMA and its post-hoc reconstruction (Karras et al. 2024, "Analyzing and Improving the
Training Dynamics of Diffusion Models", EDM2, section 3 and appendix C).

Why: a fixed EMA decay (0.999) is a guess whose best value depends on the run's length and the data.
EDM2's answer: keep two power-function EMAs, whose averaging profile grows with training, save them at
intervals, and afterwards solve for the combination of snapshots whose profile is closest to any wanted
one. The EMA length is then measured (validation KID per length), not guessed.

A power-function EMA with exponent g averages the weights seen up to time t with density ~ tau^g; its
width relative to t is ``sigma_rel = sqrt((g+1) / ((g+2)^2 (g+3)))``. Times here are images seen.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch


def std_to_exp(std: float) -> float:
    """The exponent g whose profile has relative width ``std``: the real root of
    g^3 + 7 g^2 + (16 - std^-2) g + (12 - std^-2) = 0."""
    t = float(std) ** -2
    roots = np.roots([1.0, 7.0, 16.0 - t, 12.0 - t])
    return float(max(r.real for r in roots if abs(r.imag) < 1e-9))


def exp_to_std(g: float) -> float:
    return float(np.sqrt((g + 1) / ((g + 2) ** 2 * (g + 3))))


def beta(std: float, t_next: float, t_delta: float) -> float:
    """Fraction of the old average kept when going from t_next - t_delta to t_next images."""
    return (1.0 - t_delta / t_next) ** (std_to_exp(std) + 1.0)


class PowerEMA:
    """One EMA copy of a model's parameters and buffers per relative width in ``stds``."""

    def __init__(self, model: torch.nn.Module, stds):
        self.stds = tuple(float(s) for s in stds)
        if not self.stds:
            raise ValueError("at least one EMA width is needed")
        self._template = copy.deepcopy(model).eval().requires_grad_(False)
        # A checkpoint is read onto the CPU; its averages must live where the model trains (cuda on resume).
        self._device = next(iter(model.state_dict().values())).device
        self.avgs = [{k: v.detach().clone().float() for k, v in model.state_dict().items()} for _ in self.stds]

    @torch.no_grad()
    def update(self, model: torch.nn.Module, nimg: int, batch: int) -> None:
        cur = model.state_dict()
        for std, avg in zip(self.stds, self.avgs):
            b = beta(std, nimg, batch)
            for k, v in avg.items():
                src = cur[k].detach()
                if v.is_floating_point():
                    v.lerp_(src.float(), 1.0 - b)
                else:
                    v.copy_(src)

    def state_of(self, i: int) -> dict:
        t = self._template.state_dict()
        return {k: v.to(t[k].dtype).clone() for k, v in self.avgs[i].items()}

    def model_of(self, i: int) -> torch.nn.Module:
        m = copy.deepcopy(self._template)
        m.load_state_dict(self.state_of(i))
        for a in ("resolution",):
            if hasattr(self._template, a):
                setattr(m, a, getattr(self._template, a))
        return m.eval()

    def state_dict(self) -> dict:
        return {"stds": list(self.stds), "avgs": [{k: v.clone() for k, v in a.items()} for a in self.avgs]}

    def load_state_dict(self, st: dict) -> None:
        if tuple(float(s) for s in st["stds"]) != self.stds:
            raise ValueError(f"checkpoint has EMA widths {st['stds']}, the run asks for {list(self.stds)}")
        self.avgs = [{k: v.float().to(self._device, copy=True) for k, v in a.items()} for a in st["avgs"]]

    def reset_to(self, weights: dict) -> None:
        """Start every EMA from one set of weights (a checkpoint made before power EMAs)."""
        self.avgs = [{k: v.detach().float().to(self._device, copy=True) for k, v in weights.items()} for _ in self.stds]

    def save_snapshot(self, path: Path, nimg: int) -> None:
        """The EMAs at ``nimg`` images, fp16 (what post-hoc reconstruction combines)."""
        from safetensors.torch import save

        from firmware.appliance.atomic import write_atomic

        tensors = {f"{i}/{k}": v.half().contiguous() if v.is_floating_point() else v.contiguous()
                   for i, a in enumerate(self.avgs) for k, v in a.items()}
        write_atomic(path, save(tensors, metadata={"nimg": str(nimg), "stds": json.dumps(self.stds)}))


def correlation(t_a, g_a, t_b, g_b):
    """Inner product of two normalised power-function profiles ending at t_a and t_b (appendix C)."""
    t_ratio = t_a / t_b
    t_exp = np.where(t_a < t_b, g_b, -g_a)
    t_max = np.maximum(t_a, t_b)
    return (g_a + 1) * (g_b + 1) * t_ratio ** t_exp / ((g_a + g_b + 1) * t_max)


def coefficients(in_t, in_std, out_t: float, out_std: float) -> np.ndarray:
    """Least-squares weights of the snapshot profiles (ending at in_t, widths in_std) that best match
    the profile of width out_std ending at out_t."""
    in_t, in_std = np.asarray(in_t, np.float64), np.asarray(in_std, np.float64)
    g_in = np.array([std_to_exp(s) for s in in_std])
    g_out = std_to_exp(out_std)
    a = correlation(in_t[:, None], g_in[:, None], in_t[None, :], g_in[None, :])
    b = correlation(in_t, g_in, np.float64(out_t), np.float64(g_out))
    return np.linalg.lstsq(a, b, rcond=None)[0]


def list_snapshots(folder: Path, name: str) -> list[Path]:
    return sorted(Path(folder).glob(f"{name}-*.safetensors"))


def reconstruct(snapshots: list[Path], out_std: float, out_nimg: int | None = None) -> tuple[dict, dict]:
    """EMA weights of width ``out_std`` at ``out_nimg`` (default: the last snapshot), combined from the
    snapshots. Returns (state_dict in fp32, info with the weights used)."""
    from safetensors import safe_open

    if not snapshots:
        raise FileNotFoundError("no EMA snapshots to reconstruct from")
    entries = []       # (t, std, file, index)
    for p in snapshots:
        with safe_open(str(p), "pt") as f:
            meta = f.metadata()
            for i, s in enumerate(json.loads(meta["stds"])):
                entries.append((float(meta["nimg"]), float(s), p, i))
    t_out = float(out_nimg) if out_nimg is not None else max(e[0] for e in entries)
    usable = [e for e in entries if e[0] <= t_out]
    w = coefficients([e[0] for e in usable], [e[1] for e in usable], t_out, out_std)
    acc: dict[str, torch.Tensor] = {}
    for (t, s, p, i), wi in zip(usable, w):
        with safe_open(str(p), "pt") as f:
            for key in f.keys():
                idx, name = key.split("/", 1)
                if int(idx) != i:
                    continue
                v = f.get_tensor(key)
                if not v.is_floating_point():
                    acc[name] = v
                    continue
                acc[name] = acc.get(name, torch.zeros(v.shape)) + float(wi) * v.float()
    return acc, {"std": out_std, "nimg": t_out, "snapshots": len(usable) // max(1, len({e[1] for e in usable})),
                 "weights_sum": float(np.sum(w))}


def choose(ckpt_path: Path, stds, score, log=print) -> dict:
    """Reconstruct the EMA at each width in ``stds`` from the run's snapshots, score each with
    ``score(model) -> float`` (lower is better; a validation figure, never the test half), and write the
    best into the checkpoint's "ema" (what `onnx` exports). Returns {"scores": {std: score}, "best": std}."""
    from .loop import save_atomic
    from .train import denoiser_from_state

    ckpt_path = Path(ckpt_path)
    st = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    snaps = list_snapshots(ckpt_path.parent / "snapshots", ckpt_path.stem)
    scores, states = {}, {}
    for std in stds:
        weights, info = reconstruct(snaps, float(std))
        trial = dict(st, ema={k: v.to(st["model"][k].dtype) for k, v in weights.items()})
        scores[float(std)] = float(score(denoiser_from_state(trial, "ema", where=str(ckpt_path))))
        states[float(std)] = trial["ema"]
        log(f"EMA width {std}: {scores[float(std)]:.5f} ({info['snapshots']} snapshots)")
    best = min(scores, key=scores.get)
    st["ema"] = states[best]
    st["posthoc_ema"] = {"std": best, "scores": scores, "judged_on": "validation half"}
    save_atomic(st, ckpt_path)
    return {"scores": scores, "best": best}
