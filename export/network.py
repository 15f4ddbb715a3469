"""The denoising network: a small UNet that sees the image at half resolution.

Why this shape: the box must run one evaluation in <= ~20 ms on a 2-core CPU (onnxruntime,
batch 1), and the teacher must train on that same CPU in about an hour. A plain 64x64 UNet
with 32+ channels costs ~1.5 GFLOP per call and misses both budgets. So the image is first
folded 2x2 into channels (pixel-unshuffle, 3 -> 12 channels at 32x32), the UNet runs at
32/16/8, and a pixel-shuffle unfolds the output - the "patchify" trick of simple diffusion
(Hoogeboom et al. 2023). A 3x3 conv at full resolution on each side restores fine detail
that the folding would otherwise leave blocky.

Conditioning (noise level, decay and subject) enters through one embedding vector that modulates
every residual block's GroupNorm (scale/shift), as in ADM/EDM. The subject (which footage source:
tomatoes, bananas, melon) is a class index; its embedding starts at zero, so a network trained
without subjects can be tuned into one that has them and starts out exactly as it was.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class UNetConfig:
    """Architecture.

    Args:
        channels: image channels (3 = RGB).
        base: channels at the top UNet level (after the 2x2 fold).
        mults: channel multiplier per level; len(mults) levels, each halving resolution.
        blocks: residual blocks per level on the way down (one more on the way up).
        attn_levels: level indices (0 = top) that get one self-attention block.
        emb: width of the noise/decay embedding.
        fold: pixel-unshuffle factor at the input (1 = none).
        dropout: dropout inside residual blocks (helps small data sets).
        decay_cond: whether the decay input is used (if False the input is accepted and ignored).
        subjects: number of subjects (footage sources) the network is conditioned on (0 = none).
    """

    channels: int = 3
    base: int = 64
    mults: tuple = (1, 2, 2)
    blocks: int = 1
    attn_levels: tuple = (2,)
    emb: int = 128
    fold: int = 2
    dropout: float = 0.0
    decay_cond: bool = True
    subjects: int = 0

    def to_dict(self):
        d = asdict(self)
        d["mults"], d["attn_levels"] = list(self.mults), list(self.attn_levels)
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        d["mults"], d["attn_levels"] = tuple(d["mults"]), tuple(d["attn_levels"])
        return cls(**d)


PRESETS = {
    # Measured on the 2-core studio CPU: ~10 ms/eval in onnxruntime (batch 1), 0.8 s per
    # training step at batch 32. base=64 cost 14 ms and 1.85 s/step: too slow to converge
    # in the one-hour CPU budget.
    "cpu": UNetConfig(base=48, mults=(1, 2, 2), blocks=1, attn_levels=(2,), emb=128),
    # The teacher of 2026-12: a teacher need not meet the box's speed (only the student does), so it is
    # wider, with EDM's small-data dropout. 4.5 M parameters; bf16 autocast on the 2-core CPU trains it at
    # 36.5 images/s (base 48: 50.6), fp32 on one thread at 13.0.
    "cpu64": UNetConfig(base=64, mults=(1, 2, 2), blocks=1, attn_levels=(2,), emb=128, dropout=0.1),
    # For a GPU workstation: wider, deeper, attention at 16 and 8. 37.4 M parameters, so its fp32
    # ONNX is ~143 MiB: fine for a studio's own box, too big to ship in git (models/default uses
    # "cpu", whose ONNX is 10 MiB).
    "gpu": UNetConfig(base=128, mults=(1, 2, 2, 2), blocks=2, attn_levels=(1, 2), emb=256, dropout=0.1),
    # Tests only: seconds per step.
    "tiny": UNetConfig(base=16, mults=(1, 2), blocks=1, attn_levels=(1,), emb=32),
}


def fourier(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of a scalar per batch item ([B] -> [B, dim])."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
    a = x.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=1)


def _gn(c):
    return nn.GroupNorm(math.gcd(c, 32) if c >= 8 else 1, c)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb, dropout):
        super().__init__()
        self.n1, self.c1 = _gn(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.e = nn.Linear(emb, 2 * cout)
        self.n2, self.c2 = _gn(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.c2.weight)  # start as identity: stable early training
        nn.init.zeros_(self.c2.bias)

    def forward(self, x, emb):
        h = self.c1(F.silu(self.n1(x)))
        scale, shift = self.e(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.n2(h) * (1 + scale) + shift)
        return self.skip(x) + self.c2(self.drop(h))


class Attention(nn.Module):
    def __init__(self, c, heads=4):
        super().__init__()
        self.n, self.qkv, self.o, self.heads = _gn(c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1), heads
        nn.init.zeros_(self.o.weight)
        nn.init.zeros_(self.o.bias)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.n(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        # Explicit softmax attention (not F.scaled_dot_product_attention) so the ONNX
        # export at opset 17 is plain MatMul/Softmax that every runtime supports.
        a = torch.softmax(torch.einsum("bhci,bhcj->bhij", q, k) / math.sqrt(c // self.heads), dim=-1)
        out = torch.einsum("bhij,bhcj->bhci", a, v).reshape(b, c, h, w)
        return x + self.o(out)


class UNet(nn.Module):
    """F_theta(c_in * x, c_noise, decay) -> raw output (preconditioning lives in precond.py)."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        e, f = cfg.emb, cfg.fold
        self.emb_noise = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.emb_decay = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e)) if cfg.decay_cond else None
        self.emb_subject = nn.Linear(cfg.subjects, e, bias=False) if cfg.subjects > 0 else None
        if self.emb_subject is not None:
            nn.init.zeros_(self.emb_subject.weight)
        self.emb_out = nn.Sequential(nn.SiLU(), nn.Linear(e, e))
        # Full-resolution stem before folding: sees real 3x3 pixel neighbourhoods.
        stem = max(8, cfg.base // (f * f))
        self.stem = nn.Conv2d(cfg.channels, stem, 3, padding=1)
        self.inp = nn.Conv2d(stem * f * f, cfg.base, 3, padding=1)
        chans = [cfg.base * m for m in cfg.mults]
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        skips, c = [cfg.base], cfg.base
        for lvl, ch in enumerate(chans):
            for _ in range(cfg.blocks):
                blk = nn.ModuleList([ResBlock(c, ch, e, cfg.dropout)])
                if lvl in cfg.attn_levels:
                    blk.append(Attention(ch))
                self.down.append(blk)
                c = ch
                skips.append(c)
            if lvl < len(chans) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1)]))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, e, cfg.dropout), Attention(c), ResBlock(c, c, e, cfg.dropout)])
        for lvl, ch in reversed(list(enumerate(chans))):
            for i in range(cfg.blocks + 1):
                blk = nn.ModuleList([ResBlock(c + skips.pop(), ch, e, cfg.dropout)])
                if lvl in cfg.attn_levels:
                    blk.append(Attention(ch))
                c = ch
                if lvl > 0 and i == cfg.blocks:
                    blk.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    blk.append(nn.Conv2d(c, c, 3, padding=1))
                self.up.append(blk)
        self.out_norm = _gn(c)
        self.out = nn.Conv2d(c, stem * f * f, 3, padding=1)
        self.head = nn.Conv2d(stem, cfg.channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def embed(self, c_noise, decay, subject=None):
        """The conditioning vector every block reads: noise level, decay and subject."""
        e = self.cfg.emb
        emb = self.emb_noise(fourier(c_noise * 250.0, e))  # c_noise ~ ln(sigma)/4 in [-2, 1]
        if self.emb_decay is not None:
            emb = emb + self.emb_decay(fourier(decay * 1000.0, e))
        if self.emb_subject is not None and subject is not None:
            # The subject arrives as a float index (one scalar per image, like decay, so the box
            # feeds it the same way); one-hot in the graph, a plain Equal in ONNX.
            classes = torch.arange(self.cfg.subjects, device=c_noise.device, dtype=c_noise.dtype)
            emb = emb + self.emb_subject((subject.reshape(-1, 1).to(c_noise.dtype) == classes).to(c_noise.dtype))
        return self.emb_out(emb)

    def encode(self, x, emb):
        """Stem, down path and middle: (the skip maps, the input's and each down block's, and the middle's
        output). The teacher-feature discriminator reads these too (export/feature_adversary.py)."""
        f = self.cfg.fold
        h = F.silu(self.stem(x))
        h = self.inp(F.pixel_unshuffle(h, f) if f > 1 else h)
        hs = [h]
        for blk in self.down:
            for m in blk:
                h = m(h, emb) if isinstance(m, ResBlock) else m(h)
            hs.append(h)
        return hs, self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)

    def forward(self, x, c_noise, decay, subject=None):
        emb = self.embed(c_noise, decay, subject)
        hs, h = self.encode(x, emb)
        for blk in self.up:
            h = torch.cat([h, hs.pop()], dim=1)
            for m in blk:
                h = m(h, emb) if isinstance(m, ResBlock) else m(h)
        h = self.out(F.silu(self.out_norm(h)))
        h = F.pixel_shuffle(h, self.cfg.fold) if self.cfg.fold > 1 else h
        return self.head(F.silu(h))
