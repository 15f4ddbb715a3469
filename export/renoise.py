"""How the student re-noises between its consistency steps, and the middle noise level of its 2-step
sampler, chosen on the validation half (issue 20).

Song et al.'s multistep consistency sampling re-noises each clean estimate with fresh noise. Kim et al.
(2023, CTM) blend in the noise the step's input already held instead (gamma < 1): with none fresh the
second step continues the probability-flow path the first one jumped along. Which is better for a
given student is measured, not assumed: its finished images at the model's default step count
(through the firmware's runtime and the cascade's stage, as the wall shows them), each asked as one
validation photograph, KID against that half (export/valset.py). `--write` puts the winner into the
manifest (`networks.student.fresh_noise` and the 2-step levels), where the box and every studio tool
read it; the test half then decides whether the model ships (`evaluate`).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path


def search(model_dir: str | Path, cache: str | Path, fresh=(1.0, 0.0), mids=None, seed: int = 0,
           extractor=None, boots: int = 200, log=print) -> dict:
    """{"best": {"fresh", "mid"}, "candidates": {"fresh F mid M": {"kid", "ci90", "by_subject"}}, ...}
    over every (fresh share, 2-step middle level) pair; ``mids`` None = the manifest's own. Raises
    ValueError naming the model when its student is not a 2-step consistency network."""
    from .inception import Inception
    from .valset import asked_as_validation, kid_table

    gen, val, decay, asked = asked_as_validation(model_dir, cache, upsample=True)
    net0 = gen.net
    if net0.sampler != "consistency" or 2 not in net0.steps:
        raise ValueError(f"{model_dir}: networks.student is not a consistency network with a 2-step entry")
    top, mid0 = net0.steps[2]
    mids = tuple(mids) if mids else (mid0,)
    if any(not 0 < m < top for m in mids):
        raise ValueError(f"--mids: every middle level must lie between 0 and the first level {top:g}")
    inc = extractor or Inception()
    feats, pairs = {}, {}
    for f in fresh:
        for m in mids:
            name = f"fresh {f:g} mid {m:g}"
            gen.net = replace(net0, fresh=float(f), steps={**net0.steps, 2: (top, float(m))})
            feats[name] = inc.features(gen.generate_many(len(val), 2, decay=decay, seed=seed, subject=asked))
            pairs[name] = {"fresh": float(f), "mid": float(m)}
            log(f"{name}: grown")
    gen.net = net0
    table = kid_table(inc.features(val.images), feats, val.source, boots, seed)
    for k, r in table.items():
        log(f"{k}: KID {r['kid']:.4f}  " + "  ".join(f"{s} {v:.4f}" for s, v in r["by_subject"].items()))
    best = min(table, key=lambda k: table[k]["kid"])
    return {"best": pairs[best], "candidates": table, "images": int(len(val)), "seed": seed,
            "features": getattr(inc, "kind", type(inc).__name__),
            "against": "validation half of the held-out split (the test half decides shipping)"}


def write(model_dir: str | Path, fresh: float, mid: float, found: dict | None = None) -> dict:
    """Set the student's re-noising and 2-step middle level in the manifest (checked by the box's own
    schema before it replaces the old one); ``found``: the `search` it came from, kept under
    training.sampler_search. Returns the student's new entry."""
    from .onnx import read_manifest, write_manifest

    manifest = read_manifest(model_dir)
    net = manifest["networks"]["student"]
    net["fresh_noise"] = float(fresh)
    net["steps"]["2"] = [net["steps"]["2"][0], float(mid)]
    if found is not None:
        manifest["training"] = {**(manifest.get("training") or {}), "sampler_search": found}
    write_manifest(model_dir, manifest)
    return net
