"""EDM preconditioning (Karras et al. 2022, table 1): D(x, sigma) = c_skip x + c_out F(c_in x, c_noise).

Kept separate from the network so the same UNet can be trained, distilled and exported, and
so that the ONNX graph contains exactly this wrapper: the box never re-implements it.
"""
from __future__ import annotations

import torch.nn as nn


class EDMDenoiser(nn.Module):
    """Preconditioned denoiser D(x, sigma, decay) -> estimate of x0.

    Args:
        net: raw network F(x_in, c_noise, decay).
        sigma_data: std of the data (0.5 for images in [-1, 1]).
        sigma_min: smallest sigma the consistency boundary condition refers to. When
            ``consistency`` is True, c_skip/c_out are shifted so that D(x, sigma_min) = x
            exactly (Song et al. 2023), which a consistency student needs.
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5, sigma_min: float = 0.002,
                 consistency: bool = False):
        super().__init__()
        self.net, self.sigma_data, self.sigma_min, self.consistency = net, sigma_data, sigma_min, consistency

    def coeffs(self, sigma):
        sd = self.sigma_data
        if self.consistency:
            s = (sigma - self.sigma_min).clamp(min=0)
            c_skip = sd**2 / (s**2 + sd**2)
            c_out = s * sd / (sigma**2 + sd**2).sqrt()
        else:
            c_skip = sd**2 / (sigma**2 + sd**2)
            c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
        c_in = 1 / (sigma**2 + sd**2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def forward(self, x, sigma, decay, subject=None):
        sigma = sigma.reshape(-1).to(x.dtype)
        decay = decay.reshape(-1).to(x.dtype)
        c_skip, c_out, c_in, c_noise = self.coeffs(sigma)
        b = lambda t: t[:, None, None, None]  # noqa: E731
        return b(c_skip) * x + b(c_out) * self.net(b(c_in) * x, c_noise, decay, subject)
