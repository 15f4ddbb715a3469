"""A discriminator that sees with the teacher's eyes, for the student's finished few-step images.

Why not the patch discriminator (export/adversarial.py) here. Measured 2026-12-05 on the shipped student:
36 batches of 32 repeated for 300 discriminator updates, accuracy on 4 held-out batches (README, "The
student against a discriminator"):

* on the student's one-step images from sigma >= 1 (ECT's adversarial term), every patch or global
  discriminator stayed at chance (hinge 1.97-2.02, 49-51%), with or without spectral norm, R1 and
  DiffAugment; most of those images are reconstructions of the very photograph that was noised, so
  there is little to tell apart. The same discriminator tells real photographs from their 2x blur in
  under 100 updates, so it can learn;
* on the box's real product, 2-step samples grown from pure noise, a patch discriminator reached
  58% and a global one 55%: the student's faults at 64 px are in what it draws, not in its texture;
* a head on the frozen teacher's encoder features (LADD, Sauer et al. 2024), conditioned like the
  teacher on subject and decay, reached 57% within 200 updates and keeps learning.

So this module judges the student's few-step samples (what the visitor sees), through features a
network trained on this very footage has learnt, never Inception's (the judge). The teacher's
embedding of subject and decay makes the discriminator conditional: a banana asked for and a tomato
grown is a fault it can see.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .network import ResBlock
from .schedule import consistency_steps


class TeacherFeatureDiscriminator(nn.Module):
    """Frozen teacher encoder (stem, down path, middle) on the image re-noised to ``sigma``; one small
    trainable head per level scores its feature map; the logit is the heads' mean score."""

    def __init__(self, teacher: nn.Module, width: int = 64):
        super().__init__()
        self.teacher = teacher.requires_grad_(False).eval()
        res = int(getattr(teacher, "resolution", 64))
        with torch.no_grad():
            one = torch.zeros(1)
            chans = [f.shape[1] for f in self.features(torch.zeros(1, teacher.net.cfg.channels, res, res),
                                                       one + 1, one, one)]
        self.heads = nn.ModuleList(nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.LeakyReLU(0.2),
                                                 nn.Conv2d(width, 1, 1)) for c in chans)

    def train(self, mode: bool = True):     # the teacher stays in eval mode (no dropout)
        super().train(mode)
        self.teacher.eval()
        return self

    def features(self, x, sigma, decay, subject) -> list[torch.Tensor]:
        """The teacher UNet's encoder (network.UNet.embed and encode, its own forward's first half): each
        level's last map (after its residual blocks, before any downsampling) and the middle's."""
        net = self.teacher.net
        _, _, c_in, c_noise = self.teacher.coeffs(sigma.reshape(-1).to(x.dtype))
        emb = net.embed(c_noise, decay.reshape(-1).to(x.dtype), subject)
        hs, mid = net.encode(c_in[:, None, None, None] * x, emb)
        return [hs[i + 1] for i, blk in enumerate(net.down) if isinstance(blk[0], ResBlock)] + [mid]

    def forward(self, x, sigma, decay, subject) -> torch.Tensor:
        maps = self.features(x, sigma, decay, subject)
        return torch.stack([head(m).flatten(1).mean(1) for head, m in zip(self.heads, maps)], 1).mean(1)


class FeatureAdversary:
    """The discriminator and its optimiser, stepped inside the student's loss (hinge for D, then the
    non-saturating generator term returned). Real and made images are re-noised alike, to a level drawn
    log-normally (``sigma_mean``, ``sigma_std``) from the caller's generator, before the teacher sees
    them: the teacher's features are made for noisy inputs, and the noise keeps D from the pixel-exact
    tells a small data set lets it memorise."""

    def __init__(self, teacher: nn.Module, width: int = 64, lr: float = 2e-4, sigma_mean: float = -1.0,
                 sigma_std: float = 0.5, device="cpu"):
        self.d = TeacherFeatureDiscriminator(teacher, width).to(device)
        self.opt = torch.optim.Adam(self.d.heads.parameters(), lr=lr, betas=(0.0, 0.99))
        self.sigma_mean, self.sigma_std = sigma_mean, sigma_std
        self.last_d = 0.0

    def _score(self, x, decay, subject, gen):
        n = x.shape[0]
        s = (torch.randn(n, generator=gen, device=gen.device) * self.sigma_std + self.sigma_mean).exp().to(x.device)
        noise = torch.randn(x.shape, generator=gen, device=gen.device).to(x.device)
        return self.d(x + s[:, None, None, None] * noise, s, decay, subject)

    def step(self, real, fake, decay, subject, gen) -> torch.Tensor:
        """Update D on (real, fake.detach()) with the same conditions; return the generator's loss."""
        with torch.autocast(real.device.type, enabled=False):
            self.d.heads.requires_grad_(True)
            loss_d = (F.relu(1 - self._score(real.float(), decay, subject, gen)).mean()
                      + F.relu(1 + self._score(fake.detach().float(), decay, subject, gen)).mean())
            self.opt.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt.step()
            self.d.heads.requires_grad_(False)
            self.last_d = float(loss_d.detach())
            return F.softplus(-self._score(fake.float(), decay, subject, gen)).mean()

    def state_dict(self) -> dict:
        return {"heads": self.d.heads.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, st: dict) -> None:
        self.d.heads.load_state_dict(st["heads"])
        self.opt.load_state_dict(st["opt"])


def few_step_samples(net, x_shape, sigmas, decay, subject, gen, fresh: float = 0.0) -> torch.Tensor:
    """The box's multistep consistency sampling from pure noise drawn from ``gen``, differentiable
    through every step."""
    eps = torch.randn(x_shape, generator=gen, device=gen.device)
    return consistency_steps(net, [float(s) for s in sigmas], eps, decay, gen, subject, fresh).float()


def balanced_weight(loss_main: torch.Tensor, loss_adv: torch.Tensor, layer: torch.Tensor,
                    cap: float = 1e4) -> torch.Tensor:
    """VQGAN's adaptive weight (Esser et al. 2021, also CTM's): ||grad loss_main|| / ||grad loss_adv|| at
    the generator's last layer, so the adversarial term's pull is a fixed share of the main loss's
    whatever the two losses' scales (ECT's is ~20, the GAN's ~0.7, and D's strength drifts)."""
    g_main = torch.autograd.grad(loss_main, layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(loss_adv, layer, retain_graph=True)[0]
    return (g_main.norm() / (g_adv.norm() + 1e-8)).clamp(max=cap).detach()
