"""The upsampler alone, judged the way the cascade is (issue 20): real photographs of the training
split, shrunk to the generator's side as the 64-px footage is made, enlarged again by each model's
upsampler stage (through the firmware's runtime, as the box runs it), and measured by Inception KID
against the test half at the wall's side.

Beside it, per subject and on the same photographs: bicubic enlargement of the same small images
(what the wall shows without the stage) and the photographs themselves at full size (the floor).
So the stage is judged on what only it adds: a perfect 64-px generator followed by this stage
could score no better than its figure here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .footage import load_cache
from .metrics import kid_panel


def shrink(images: np.ndarray, factor: int, value_range=(-1.0, 1.0)) -> np.ndarray:
    """uint8 N x H x W x 3 -> float32 N x 3 x H/f x W/f in the model's value range, made small exactly
    as the upsampler's training pairs are (export.upsampler.area_down)."""
    import torch

    from .upsampler import area_down

    n, h, w, c = images.shape
    if h % factor or w % factor:
        raise ValueError(f"{h}x{w} images do not shrink by {factor}")
    lo, hi = value_range
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 * (hi - lo) + lo
    return area_down(x, factor).numpy()


def open_stage(info, threads: int = 1):
    """A model's upsampler stage as the box opens it (sha256 and reference pair checked), once per model."""
    from firmware.generate.manifest import ModelError
    from firmware.generate.stages import Upsampler

    up = Upsampler(info.upsampler, threads=threads)
    if up.failed:
        raise ModelError(f"{info.upsampler.path}: upsampler {up.failed}")
    return up


def enlarge_with_stage(up, small: np.ndarray, value_range=(-1.0, 1.0)) -> np.ndarray:
    """An opened stage (`open_stage`) on each small image (float N x 3 x h x w) -> uint8 N x H x W x 3."""
    from .sample import to_uint8

    out = []
    for x in small:
        y = up(x[None].astype(np.float32))
        if up.failed:
            raise RuntimeError(f"{up.info.path}: upsampler {up.failed}")
        out.append(to_uint8(y, value_range))
    return np.concatenate(out)


def judge_upsamplers(model_dirs: list[str | Path], cache: str | Path, per_subject: int = 300, seed: int = 0,
                     boots: int = 200, extractor=None, threads: int = 1, log=print, half: str = "test") -> dict:
    """{subject: {"kid": {model dir | "bicubic" | "photographs": KID}, "kid_ci90": ..., "samples": ...}} for
    every subject with at least 2 reference photographs; ``per_subject`` training photographs each.
    ``half``: the held-out half judged against: "validation" to choose between stages (an ablation's
    winner), "test" to decide whether one ships."""
    from firmware.generate.manifest import load_model_dir

    from .inception import Inception, RememberedFeatures, upscale
    from .sample import to_uint8

    full = load_cache(cache)
    side = int(full.images.shape[1])
    infos = {str(m): load_model_dir(m) for m in model_dirs}
    for m, info in infos.items():
        if info.upsampler is None:
            raise ValueError(f"{m}: manifest.json has no stages.upsampler to judge")
        if tuple(info.output_resolution) != (side, side):
            raise ValueError(f"{cache}: holds {side}x{side} photographs but {m} makes "
                             f"{info.output_resolution[0]}x{info.output_resolution[1]} images")
    stages = {m: open_stage(info, threads) for m, info in infos.items()}
    first = next(iter(infos.values()))
    factor, value_range = first.upsampler.scale, tuple(first.value_range)
    inc = RememberedFeatures(extractor or Inception())
    train, test = full.split(heldout=False), full.heldout_part(half)
    out = {}
    for i, s in enumerate(sorted(set(test.source.tolist()))):
        ref, pool = test.images[test.source == s], np.flatnonzero(train.source == s)
        if len(ref) < 2 or len(pool) < 2:
            continue
        photos = train.images[np.random.default_rng([seed, i]).permutation(pool)[:per_subject]]
        small = shrink(photos, factor, value_range)
        sets = {"photographs": photos, "bicubic": upscale(to_uint8(small, value_range), side)}
        for m, up in stages.items():
            sets[m] = enlarge_with_stage(up, small, value_range)
        p = kid_panel(inc.features(ref), {k: inc.features(v) for k, v in sets.items()}, boots=boots, seed=seed)
        out[s] = {"kid": p["kid"], "kid_ci90": p["ci90"],
                  "samples": {"reference": int(len(ref)), "photographs": int(len(photos)), "half": half}}
        log(f"{s}: " + "  ".join(f"{k} {v:.4f}" for k, v in p["kid"].items()))
    if not out:
        raise ValueError(f"{cache}: no subject has 2 {half} and 2 training photographs to judge the upsampler on")
    return out


def table(result: dict, models: list[str]) -> str:
    """Markdown: a row per subject; columns photographs (floor), bicubic, then each model's stage."""
    cols = ["photographs", "bicubic", *models]
    lines = ["| subject | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for s, r in result.items():
        cells = [f"{r['kid'][c]:.4f} ({r['kid_ci90'][c][0]:.4f}-{r['kid_ci90'][c][1]:.4f})" for c in cols]
        n = r["samples"]
        lines.append(f"| {s} ({n['reference']} {n['half']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)
