"""Generate images from a shipped model directory through the firmware's own runtime.

No torch here: the manifest is parsed and its sha256 checked by
firmware.generate.manifest, the ONNX file runs in firmware.generate.engines (onnxruntime),
and the steps are taken by firmware.generate.sampler with the manifest's sigmas and sampler.
`evaluate` measures through this same path, so the figures describe what the box shows.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class Generator:
    """One network of a model directory, ready to sample.

    Args:
        model_dir: models/<name>/ (manifest.json + ONNX files).
        network: "student" or "teacher".
        threads: onnxruntime intra-op threads (0 = its default).
    """

    def __init__(self, model_dir: str | Path, network: str = "student", threads: int = 0,
                 upsample: bool = True):
        from firmware.generate.engines import open_engine
        from firmware.generate.manifest import ModelError, load_model_dir
        from firmware.generate.stages import Upsampler

        self.info = load_model_dir(model_dir)
        if self.info.stage_errors:  # the box would fall back; a studio tool must not measure that silently
            raise ModelError(self.info.stage_errors[0])
        self.net = self.info.network(network)
        self.engine = open_engine(self.info, network=network, kind="onnxruntime", threads=threads)
        self.resolution = tuple(self.info.resolution)  # where the noise lives (the generator's side)
        # The cascade's stage, as the box runs it: images come out at the model's output resolution.
        self.upsampler = Upsampler(self.info.upsampler, threads=max(1, threads)) \
            if upsample and self.info.upsampler is not None else None
        if self.upsampler is not None and self.upsampler.failed:
            raise ModelError(f"{self.info.upsampler.path}: upsampler {self.upsampler.failed}")
        self.output_resolution = self.info.output_resolution if self.upsampler is not None else self.resolution

    def subject_index(self, name: str) -> int:
        if name not in self.info.subjects:
            raise ValueError(f"{self.info.dir}: no subject {name!r} (has {list(self.info.subjects) or 'none'})")
        return self.info.subjects.index(name)

    def grow(self, eps: np.ndarray, steps: int | None, cond, rng: np.random.Generator | None = None
             ) -> np.ndarray:
        """The generator's own image (float [1, C, h, w] in its value range), before the cascade's stage."""
        from firmware.generate.sampler import sample

        x0, _ = sample(self.engine.denoise, self.net.sigmas(steps), eps.astype(np.float32),
                       self.net.sampler, cond, rng=rng, fresh=self.net.fresh)
        return x0

    def generate(self, eps: np.ndarray, steps: int | None, cond, rng: np.random.Generator | None = None
                 ) -> np.ndarray:
        """One image from a noise field eps [1, C, H, W] under `cond` (firmware.generate.conditions);
        returns uint8 [1, H, W, C]."""
        x0 = self.grow(eps, steps, cond, rng)
        if self.upsampler is not None:
            x0 = self.upsampler(x0)
            if self.upsampler.failed:
                raise RuntimeError(f"upsampler {self.upsampler.failed}")
        return to_uint8(x0, self.info.value_range)

    def generate_many(self, n: int, steps: int | None, decay=None, seed: int = 0, subject=None,
                      finish: bool = True) -> np.ndarray:
        """n images (uint8 [n, H, W, C]); decay: scalar, per-image array, or None = manifest default;
        subject: index, per-image array of indices, or None (the model's first, if it has subjects).
        ``finish=False``: the generator's own images instead (float [n, C, h, w], `grow`), the same ones."""
        # Two streams: the starting noise is the same for every network and step count with one
        # seed (so `evaluate` compares models on the same noise), whatever re-noising consumes.
        from firmware.generate.conditions import Conditions

        g, renoise = np.random.default_rng(seed), np.random.default_rng([seed, 1])
        if decay is None:
            decay = self.info.decay_default
        dec = np.broadcast_to(np.asarray(decay, np.float32), (n,))
        subj = None if subject is None else np.broadcast_to(np.asarray(subject, np.int64), (n,))
        out = []
        for i in range(n):
            eps = g.standard_normal((1, self.info.channels, *self.resolution)).astype(np.float32)
            cond = Conditions(float(dec[i]), None if subj is None else int(subj[i]))
            out.append(self.generate(eps, steps, cond, rng=renoise) if finish else
                       self.grow(eps, steps, cond, rng=renoise))
        return np.concatenate(out)


def to_uint8(x: np.ndarray, value_range=(-1.0, 1.0)) -> np.ndarray:
    lo, hi = value_range
    y = (np.clip(x, lo, hi) - lo) / (hi - lo)
    return np.round(y * 255).astype(np.uint8).transpose(0, 2, 3, 1)


def sample_to_folder(model_dir, steps: int | None, n: int, out: str | Path, network: str = "student",
                     decay: float | None = None, seed: int = 0, subject: str | None = None) -> list[Path]:
    """Write n PNGs to ``out`` and ``samples.json`` (each file's decay and the source it was drawn
    for); returns the PNG paths. Without ``decay`` each image's decay value is drawn from the
    manifest's per-source training decay distribution (export/decaydist.py). ``subject`` names the
    footage source to grow (and to draw decay from); without it subjects are drawn in equal
    proportion. A model with subjects is conditioned on each image's subject."""
    import json

    from PIL import Image

    from .decaydist import KEY, draw

    out = Path(out)
    gen = Generator(model_dir, network)
    mf_path = Path(model_dir) / "manifest.json"
    block = json.loads(mf_path.read_text()).get(KEY) or {}
    known = sorted(set(gen.info.subjects) | set(block.get("by_source") or {}))
    if subject is not None and subject not in known:
        raise ValueError(f"{mf_path}: no subject {subject!r} (has {known or 'none'})")
    if subject is not None and block.get("by_source"):
        block = {**block, "by_source": {k: v for k, v in block["by_source"].items() if k == subject}}
    rng = np.random.default_rng([seed, 2])
    if decay is None:
        dec, src = draw(block, n, rng, where=str(mf_path))
    else:
        names = [subject] if subject is not None else list(gen.info.subjects)
        src = [names[i] for i in rng.integers(len(names), size=n)] if names else [None] * n
        dec = np.full(n, decay, np.float32)
    subj = [gen.subject_index(s) for s in src] if gen.info.subjects else None
    out.mkdir(parents=True, exist_ok=True)
    imgs = gen.generate_many(n, steps, decay=dec, seed=seed, subject=subj)
    paths, record = [], []
    for i, im in enumerate(imgs):
        p = out / f"{network}_{steps or 'default'}_{i:04d}.png"
        Image.fromarray(im).save(p)
        paths.append(p)
        record.append({"file": p.name, "decay": round(float(dec[i]), 6), "drawn_for": src[i]})
    (out / "samples.json").write_text(json.dumps(record, indent=1))
    return paths
