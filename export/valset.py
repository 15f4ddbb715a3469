"""The validation half as a yardstick for choices made after training (the upsampler's detail gain,
the sampler's re-noising): the model's own images, each asked for the subject and decay of one
validation photograph and made through the firmware's runtime, scored by Inception KID against that
half, overall and per subject. The test half stays for the decision to ship (`evaluate`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def parse_numbers(text: str, flag: str, lo: float, hi: float) -> tuple[float, ...]:
    """'1,1.5,2' -> (1.0, 1.5, 2.0), each in [lo, hi], sorted, repeats dropped. Raises ValueError naming
    ``flag`` and the bad item."""
    out = []
    for item in text.split(","):
        try:
            v = float(item)
        except ValueError:
            raise ValueError(f"{flag}: {item!r} is not a number") from None
        if not lo <= v <= hi:
            raise ValueError(f"{flag}: {item!r} is outside {lo:g}-{hi:g}")
        out.append(v)
    return tuple(sorted(set(out)))


def asked_as_validation(model_dir: str | Path, cache: str | Path, upsample: bool = False):
    """(Generator, with the model's stage or without, the validation half, decay per image, subject
    index per image or None). The cache must be at the model's finished side (raises ValueError naming
    the cache otherwise)."""
    from firmware.generate.manifest import load_model_dir

    from .footage import load_cache
    from .sample import Generator
    from .train import decay_values

    info = load_model_dir(model_dir)
    val = load_cache(cache).heldout_part("validation")
    px = int(val.images.shape[1])
    if tuple(info.output_resolution) != (px, px):
        raise ValueError(f"{cache}: holds {px}x{px} photographs but {model_dir} makes "
                         f"{info.output_resolution[0]}x{info.output_resolution[1]} images")
    if len(val) < 2:
        raise ValueError(f"{cache}: the validation half has {len(val)} photographs; KID needs 2")
    gen = Generator(model_dir, "student", threads=1, upsample=upsample)
    asked = (np.array([gen.subject_index(s) for s in val.source]) if set(val.source) <= set(gen.info.subjects)
             else None)
    return gen, val, decay_values(val), asked


def kid_table(ref: np.ndarray, feats: dict, sources: np.ndarray, boots: int, seed: int) -> dict:
    """{name: {"kid", "ci90", "by_subject"}} for generated feature sets made one per reference image."""
    from .metrics import kid_panel

    overall = kid_panel(ref, feats, boots=boots, seed=seed)
    table = {k: {"kid": overall["kid"][k], "ci90": overall["ci90"][k], "by_subject": {}} for k in feats}
    for s in sorted(set(sources.tolist())):
        on = sources == s
        if on.sum() < 2:
            continue
        p = kid_panel(ref[on], {k: f[on] for k, f in feats.items()}, boots=boots, seed=seed)
        for k in feats:
            table[k]["by_subject"][s] = p["kid"][k]
    return table
