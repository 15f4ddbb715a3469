"""The upsampler stage's detail gain, chosen by measurement (issue 20).

A stage trained with L1 (its discriminator at chance, README "A discriminator that learns") adds the
detail a 64-px image cannot carry too faintly: unsure where a speck or an edge falls, it hedges towards
the mean. Real 128-px crops carry 1.6x the Laplacian energy of the shipped stage's. Scaling that detail
(`upsampler.Upsampler.detail_gain`, the image minus the plain enlargement of its own 4x area-downsampled
copy) is one number, chosen here after training and exported inside the stage's graph.

It is chosen on what the wall shows: the model's own images at its default step count, made through the
firmware's runtime, each asked for the subject and decay of one photograph of the *validation* half,
enlarged by the stage's network at each candidate gain, and scored by Inception KID against that half.
The test half stays for the decision to ship (`evaluate`, `upsampler-judge`).
"""
from __future__ import annotations

from pathlib import Path


DEFAULT_GAINS = (1.0, 1.25, 1.5, 2.0, 2.5)


def parse_gains(text: str) -> tuple[float, ...]:
    """'1,1.5,2' -> (1.0, 1.5, 2.0); each gain in [0.5, 8]. Raises ValueError naming the bad item."""
    from .valset import parse_numbers

    return parse_numbers(text, "--gains", 0.5, 8.0)


def search(model_dir: str | Path, cache: str | Path, gains=DEFAULT_GAINS, steps: int | None = None,
           seed: int = 0, extractor=None, boots: int = 200, log=print) -> dict:
    """{"best": gain, "gains": {gain: {"kid", "ci90", "by_subject"}}, ...}: validation KID of the model's
    own images enlarged by its stage's network at each gain (export/valset.py). Raises ValueError naming
    the model or cache when the model has no such stage or the cache is at another side."""
    import torch

    from firmware.generate.manifest import load_model_dir

    from .inception import Inception
    from .train import to_uint8
    from .upsampler import stage_network
    from .valset import asked_as_validation, kid_table

    if load_model_dir(model_dir).upsampler is None:
        raise ValueError(f"{model_dir}: manifest.json has no stages.upsampler")
    gen, val, decay, asked = asked_as_validation(model_dir, cache)
    net = stage_network(model_dir)
    small = torch.from_numpy(gen.generate_many(len(val), steps, decay=decay, seed=seed, subject=asked, finish=False))
    log(f"{len(small)} images grown at {steps or 'the default'} steps, asked as the validation half")
    inc = extractor or Inception()
    feats = {}
    with torch.no_grad():
        for g in gains:
            net.detail_gain = float(g)
            big = torch.cat([net(small[i:i + 25]) for i in range(0, len(small), 25)])
            feats[str(g)] = inc.features(to_uint8(big))
    table = kid_table(inc.features(val.images), feats, val.source, boots, seed)
    for g, r in table.items():
        log(f"gain {g}: KID {r['kid']:.4f}  " + "  ".join(f"{s} {v:.4f}" for s, v in r["by_subject"].items()))
    best = min(gains, key=lambda g: table[str(g)]["kid"])
    return {"best": float(best), "gains": table, "images": int(len(val)), "steps": steps or gen.net.default_steps,
            "features": getattr(inc, "kind", type(inc).__name__),
            "against": "validation half of the held-out split (the test half decides shipping)"}


def write(model_dir: str | Path, gain: float, found: dict | None = None, threads: int = 1) -> dict:
    """Re-export the model's stage with ``gain`` in its graph (same network weights), its reference
    pair and manifest entry with it; ``found``: the `search` it came from, recorded beside it."""
    from .onnx import read_manifest
    from .upsampler import stage_network, write_stage

    stage = read_manifest(model_dir)["stages"]["upsampler"]
    net = stage_network(model_dir, detail_gain=gain)
    training = {k: v for k, v in (stage.get("training") or {}).items() if k != "parity_max_abs_diff"}
    return write_stage(net, model_dir, training, threads, extra={"detail_gain_search": found} if found else None)
