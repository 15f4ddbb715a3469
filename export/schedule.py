"""Noise levels and samplers (torch side). The firmware reimplements only the samplers, over
the sigma lists written into the manifest, so these two must agree exactly: tests check it.

* Training noise: log-normal sigma, ln(sigma) ~ N(P_mean, P_std^2) (EDM).
* Sampling noise: Karras et al. rho-schedule between sigma_max and sigma_min, then 0.
* Samplers: EDM deterministic Heun (teacher) and multistep consistency (student), written
  exactly as models/MANIFEST.md states them.
"""
from __future__ import annotations

import numpy as np
import torch

SIGMA_MIN, SIGMA_MAX, SIGMA_DATA, RHO = 0.002, 80.0, 0.5, 7.0


def karras_sigmas(n: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO) -> list[float]:
    """n decreasing noise levels (sigma = 0 is implied after the last), each the shortest
    decimal that round-trips through float32, so the manifest, torch and onnxruntime all see
    the very same float32 numbers."""
    if n < 1:
        raise ValueError(f"steps must be >= 1, got {n}")
    if n == 1:
        return [f32(sigma_max)]
    i = np.arange(n, dtype=np.float64)
    s = (sigma_max ** (1 / rho) + i / (n - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return [f32(v) for v in s]


def f32(v: float) -> float:
    """The float32 nearest to v, written as the shortest decimal that maps back to it."""
    return float(str(np.float32(v)))


def train_sigmas(b: int, p_mean: float = -1.2, p_std: float = 1.2, generator=None, device="cpu") -> torch.Tensor:
    return (torch.randn(b, generator=generator, device=device) * p_std + p_mean).exp()


@torch.no_grad()
def heun(denoise, sigmas, eps: torch.Tensor, decay: torch.Tensor, subject: torch.Tensor | None = None
         ) -> torch.Tensor:
    """EDM Heun sampler: x = sigmas[0] * eps, then ODE steps to sigmas[i+1] (0 after the last),
    with the 2nd-order correction on every step except the one that lands on sigma = 0."""
    s = list(sigmas) + [0.0]
    x = eps * s[0]
    b = x.shape[0]
    for i in range(len(s) - 1):
        si, sn = s[i], s[i + 1]
        d = (x - denoise(x, torch.full((b,), si, device=x.device), decay, subject)) / si
        xn = x + (sn - si) * d
        if sn > 0:
            d2 = (xn - denoise(xn, torch.full((b,), sn, device=x.device), decay, subject)) / sn
            xn = x + (sn - si) * 0.5 * (d + d2)
        x = xn
    return x


def consistency_steps(denoise, sigmas, eps: torch.Tensor, decay: torch.Tensor, generator=None,
                      subject: torch.Tensor | None = None, fresh: float = 1.0) -> torch.Tensor:
    """Multistep consistency sampling: x0 = D(s0 * eps, s0); then x = x0 + s_i * z, x0 = D(x, s_i),
    where z blends fresh noise (share ``fresh``; 1 = Song et al.'s sampler) with the noise the step's
    input held, (x - x0) / s_(i-1) (CTM's gamma; the box's sampler.sample, manifest fresh_noise)."""
    b = eps.shape[0]
    x = eps * sigmas[0]
    x0 = denoise(x, torch.full((b,), sigmas[0], device=eps.device), decay, subject)
    prev = sigmas[0]
    for s in sigmas[1:]:
        held = (x - x0) / prev
        z = held if fresh == 0 else (
            fresh * torch.randn(eps.shape, generator=generator, device=eps.device) + (1 - fresh * fresh) ** 0.5 * held)
        x = x0 + s * z
        x0 = denoise(x, torch.full((b,), s, device=eps.device), decay, subject)
        prev = s
    return x0


# Sampling for pictures and figures; `consistency_steps` itself keeps the graph (a loss on few-step samples).
consistency = torch.no_grad()(consistency_steps)
