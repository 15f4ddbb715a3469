"""Samplers: pure loops over a callable denoiser D(x, sigma, cond) -> x0_hat and a list of noise levels.

One noise field `eps` per request: the generation starts from `sigmas[0] * eps` (or from a seed image
plus that noise), exactly the forward process the show used to dissolve the visitor. Every step's
prediction is returned, and reported as it lands through `callback(i, sigma, denoised)` (as in
k-diffusion), so the show can let the picture emerge step by step without counting denoiser calls
(Heun calls the denoiser twice per step; only the step's own prediction is news to the wall).
The conditions `cond` go to every denoiser call untouched (k-diffusion's `extra_args`): the sampler
never looks inside them.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

Denoise = Callable[[np.ndarray, float, Any], np.ndarray]
StepCallback = Callable[[int, float, np.ndarray], None]


def sample(denoise: Denoise, sigmas, eps: np.ndarray, sampler: str = "consistency", cond: Any = None,
           rng: np.random.Generator | None = None, x_start: np.ndarray | None = None,
           callback: StepCallback | None = None, fresh: float = 1.0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run a sampler. Returns (final x0, [prediction after each step]).

    sigmas: decreasing noise levels (sigma = 0 after the last is implied).
    eps: the noise field, shape of one batch of images; the start is x_start + sigmas[0] * eps
         (x_start = 0 for pure generation, the visitor's image for a seeded one).
    cond: the conditions (generate.conditions.Conditions), passed to every denoise call as they are.
    rng: fresh noise for consistency re-noising; None derives it from eps (deterministic per visitor).
    callback: called once per step with (step index, its noise level, its prediction of x0).
    fresh: for consistency sampling, the share of fresh noise in each re-noising (the manifest's
         `fresh_noise`): 1 = all fresh (Song et al. 2023), 0 = the noise the step's own input held,
         which keeps the image on its probability-flow path (CTM's gamma = 0).
    """
    sigmas = [float(s) for s in sigmas]
    if not sigmas:
        raise ValueError("need at least one noise level")
    base = np.zeros_like(eps) if x_start is None else x_start
    x = (base + sigmas[0] * eps).astype(np.float32)
    report = callback if callback is not None else (lambda i, s, d: None)
    if sampler == "consistency":
        return _consistency(denoise, cond, sigmas, x, eps, rng, report, fresh)
    if sampler in ("heun", "euler"):
        return _ode(denoise, cond, sigmas, x, sampler == "heun", report)
    raise ValueError(f"unknown sampler '{sampler}'")


def _consistency(denoise, cond, sigmas, x, eps, rng, report, fresh: float = 1.0):
    """Multistep consistency sampling (Song et al. 2023, Alg. 1), its re-noising blended with the
    noise the previous input held (Kim et al. 2023, CTM's gamma-sampling) when ``fresh`` < 1."""
    preds = []
    # 1. Jump from the first noise level straight to a clean estimate.
    x0 = denoise(x, sigmas[0], cond)
    preds.append(x0)
    report(0, sigmas[0], x0)
    prev_sigma = sigmas[0]
    for i, s in enumerate(sigmas[1:], start=1):
        # 2. Re-noise the estimate to the next (lower) level: fresh noise, the input's own, or a blend
        # that keeps unit variance...
        z = 0.0
        if fresh > 0:
            z = fresh * (rng.standard_normal(eps.shape).astype(np.float32) if rng is not None else
                         np.roll(eps, shift=7 * i, axis=-1) * (1 if i % 2 else -1))
        if fresh < 1:
            z = z + np.sqrt(1.0 - fresh * fresh) * (x - x0) / prev_sigma
        # 3. ...and jump to a clean estimate again.
        x = (x0 + s * z).astype(np.float32)
        x0 = denoise(x, s, cond)
        prev_sigma = s
        preds.append(x0)
        report(i, s, x0)
    return x0, preds


def _ode(denoise, cond, sigmas, x, heun: bool, report):
    """EDM deterministic sampler (Karras et al. 2022, Alg. 1) over sigmas followed by 0."""
    preds = []
    levels = list(sigmas) + [0.0]
    for i, (s, s_next) in enumerate(zip(levels[:-1], levels[1:])):
        # 1. Evaluate dx/dsigma at the current level.
        x0 = denoise(x, s, cond)
        d = (x - x0) / s
        # 2. Euler step to the next level.
        x_next = x + (s_next - s) * d
        # 3. Heun's correction, except on the final step to sigma = 0.
        if heun and s_next > 0:
            x0_next = denoise(x_next.astype(np.float32), s_next, cond)
            d_next = (x_next - x0_next) / s_next
            x_next = x + (s_next - s) * 0.5 * (d + d_next)
        x = x_next.astype(np.float32)
        # The step's picture: its x0 estimate, or on the last step (to sigma 0) the image itself.
        shown = x if s_next == 0 else x0
        preds.append(x0)
        report(i, s, shown)
    return x, preds
