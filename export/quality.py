"""The headline quality figures: Inception KID/FID of every model, per subject and overall, on the
test half of the held-out split, beside the real-vs-real floor of the same split.

Why this shape (issue 12): figures in features the pipeline trained itself (source and decay
labels) put the shipped model at the data floor while InceptionV3 put it a third of the way to a
16-pixel blur. So the headline is Inception (export/inception.py), and every figure stands next
to what real photographs score against the same reference:

* ``floor_train``: training images of the subject against its test half (what a model that
  reproduced its training data exactly would score; the generalisation floor);
* ``floor_validation``: the validation half against the test half (two samples of the same
  held-out photographs; the estimator's own floor), where the validation half holds the subject.

Subjects are the cache's footage source tags. A model is asked for a subject's images with decay
values drawn from that subject's training decay values (never one fixed value); a model without
subject conditioning gets the same decay mix and is judged against that subject's photographs.
The overall set mixes subjects in the test half's proportions, so it is compared like with like.
Every model starts from the same noise for a subject (paired comparison), and the paired
bootstrap of metrics.kid_panel gives every KID and the student/teacher ratios an interval.
"""
from __future__ import annotations

import numpy as np

from .footage import Dataset
from .metrics import fid, kid_panel

FID_MIN = 20  # below this many images on either side a 2048-d FID is only noise: reported as None


def subject_counts(total: int, shares: dict[str, int]) -> dict[str, int]:
    """Split ``total`` generated images over subjects in proportion to ``shares`` (largest remainder)."""
    n = sum(shares.values())
    raw = {s: total * c / n for s, c in shares.items()}
    out = {s: int(np.floor(v)) for s, v in raw.items()}
    for s in sorted(raw, key=lambda s: out[s] - raw[s])[:total - sum(out.values())]:
        out[s] += 1
    return out


def subject_decays(train: Dataset, subject: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n decay values drawn (with replacement) from the subject's training decay values; a subject
    without known decay gets 0.5, what training fed it (train.decay_values)."""
    d = train.decay[(train.source == subject) & np.isfinite(train.decay)]
    if not len(d):
        return np.full(n, 0.5, np.float32)
    return rng.choice(d, n).astype(np.float32)


def plan(full: Dataset, test: Dataset, generated: int, per_subject: int) -> dict:
    """How many images each subject gets: ``overall`` (its share of ``generated``, in the test
    half's proportions) and ``total`` (at least ``per_subject``, so a rare subject gets a set of
    its own). Subjects without test images get nothing: no reference, no figure."""
    shares = {s: int((test.source == s).sum()) for s in sorted(set(full.source.tolist()))}
    held = {s: c for s, c in shares.items() if c > 0}
    if not held:
        raise ValueError("the test half of the held-out split is empty; need at least 2 images for KID")
    overall = subject_counts(generated, held)
    return {s: {"reference": c, "overall": overall.get(s, 0),
                "total": max(overall.get(s, 0), per_subject) if c >= 2 else overall.get(s, 0)}
            for s, c in shares.items()}


def generate_sets(model_dir, full: Dataset, sched: dict, runs: list[tuple[str, int]], seed: int,
                  transform=None) -> dict:
    """{subject: {"decay": [...], "images": {f"{network}_{k}": uint8 N x H x W x 3}}}, through the
    firmware runtime (sample.Generator), so what is measured is what the box shows."""
    from .sample import Generator

    train = full.split(heldout=False)
    gens = {net: Generator(model_dir, net) for net in {n for n, _ in runs}}
    out = {}
    for i, (s, p) in enumerate(sched.items()):
        if not p["total"]:
            continue
        dec = subject_decays(train, s, p["total"], np.random.default_rng([seed, i]))
        out[s] = {"decay": dec, "images": {}}
        for net, k in runs:
            # One seed per subject for every model: the same starting noise, a paired comparison. A model
            # with subjects is asked for this one (left unasked, it would grow its first subject for all).
            gen = gens[net]
            asked = gen.subject_index(s) if s in gen.info.subjects else None
            imgs = gen.generate_many(p["total"], k, decay=dec, seed=seed + 1 + i, subject=asked)
            out[s]["images"][f"{net}_{k}"] = transform(imgs) if transform else imgs
    return out


def floor_sets(full: Dataset, part: Dataset | None, subject: str | None, n: int, rng) -> dict:
    """Real images against the same test reference: training images and the validation half."""
    def pick(ds):
        m = np.ones(len(ds), bool) if subject is None else ds.source == subject
        idx = np.flatnonzero(m)
        return ds.images[rng.permutation(idx)[:n]] if len(idx) >= 2 else None

    return {"floor_train": pick(full.split(heldout=False)),
            "floor_validation": pick(part) if part is not None else None}


def panel(f_ref: np.ndarray, feats: dict[str, np.ndarray], student_steps, teacher_steps: int, boots: int,
          seed: int, goal: float) -> dict:
    """KID (with paired-bootstrap se and 90% interval), FID and the student/teacher ratios."""
    ratios = {f"student_{k}/teacher_{teacher_steps}": (f"student_{k}", f"teacher_{teacher_steps}")
              for k in student_steps}
    p = kid_panel(f_ref, feats, boots=boots, seed=seed, ratios=ratios, goal=goal)
    return {"kid": p["kid"], "kid_se": p["se"], "kid_ci90": p["ci90"],
            "fid": {k: fid(f, f_ref) if min(len(f), len(f_ref)) > FID_MIN else None for k, f in feats.items()},
            "kid_ratios": p["ratio"],
            "samples": {"reference": int(len(f_ref)), **{k: int(len(f)) for k, f in feats.items()}}}


def novelty(full: Dataset, sets: dict, keys: list[str], inc, upscale: int | None, log=print,
            train_limit: int | None = None, known_features: dict | None = None) -> dict:
    """Per generated set: the near-copy share against every training image (export/memorisation.py) and
    subject fidelity (the share of a subject's images a linear classifier on real photographs' features
    puts in the subject asked for), with the classifier's accuracy on real validation photographs beside it.
    ``known_features``: {(set key, subject): features} already computed for KID (Inception is the cost)."""
    from . import memorisation
    from .inception import upscale as resize
    from .probe import fit_linear_classifier

    train = full.split(heldout=False)
    names = sorted(set(train.source.tolist()))
    if train_limit is not None and len(train) > train_limit:
        # A short evaluation (a studio's small budget) compares with an even share of every subject's
        # training images; the record says how many, and a near-copy of one left out is not seen.
        rng = np.random.default_rng(0)
        per = max(1, train_limit // len(names))
        keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(train.source == s))[:per] for s in names]))
        train = train._select(np.isin(np.arange(len(train)), keep))
    f_train = inc.features(train.images)
    groups = train.group if train.group is not None else np.array([f"{s}#{i}" for i, s in enumerate(train.source)])
    labels = np.array([names.index(s) for s in train.source])
    classify = fit_linear_classifier(f_train, labels, len(names))
    val = full.heldout_part("validation")
    known = np.isin(val.source, names)
    val_labels = np.array([names.index(s) for s in val.source[known]])
    real = float((classify(inc.features(val.images[known])) == val_labels).mean()) if known.any() else None
    out: dict = {"memorisation": {}, "subject_fidelity": {"real_validation_accuracy": real},
                 "novelty_training_images": int(len(train))}
    for k in keys:
        per, feats = {}, []
        for s, entry in sets.items():
            f = (known_features or {}).get((k, s))
            if f is None:
                imgs = entry["images"][k]
                f = inc.features(resize(imgs, upscale) if upscale else imgs)
            feats.append(f)
            if s in names:
                per[s] = float((classify(f) == names.index(s)).mean())
        out["subject_fidelity"][k] = {**per, "mean": float(np.mean(list(per.values()))) if per else None}
        out["memorisation"][k] = memorisation.report(np.concatenate(feats), f_train, groups)
        log(f"{k}: near-copies {out['memorisation'][k]['near_copy_share']:.1%}, "
            f"subject fidelity {out['subject_fidelity'][k]['mean']}")
    return out


def inception_metrics(model_dir, full: Dataset, runs: list[tuple[str, int]], generated: int, per_subject: int,
                      boots: int, seed: int = 0, goal: float = 1.25, upscale: int | None = None,
                      extractor=None, log=print, sets: dict | None = None,
                      train_limit: int | None = None) -> tuple[dict, dict, dict]:
    """The headline block (see the module docstring), the overall generated sets (uint8 per model,
    for grids and the secondary figures) and every generated set (``generate_sets``; pass them back
    as ``sets`` to measure the same images against another cache). ``upscale``: bicubic-resize the
    generated images to that side first (a model shown bigger than it is made); the cache must then
    hold references at that resolution."""
    from .inception import DIM, WEIGHTS_SHA1, Inception
    from .inception import upscale as resize

    inc = extractor or Inception()
    test, val = full.heldout_part("test"), full.heldout_part("validation")
    if val is test or len(val) == len(full.split(heldout=True)):
        val = None  # below 8 held-out images both "halves" are the whole split: no separate floor
    sched = plan(full, test, generated, per_subject)
    if sets is None:
        sets = generate_sets(model_dir, full, sched, runs, seed)
    keys = [f"{n}_{k}" for n, k in runs]
    student_steps = [k for n, k in runs if n == "student"]
    teacher_steps = next((k for n, k in runs if n == "teacher"), 35)
    rng = np.random.default_rng(seed + 7)
    by_subject, pooled, ref_all, gen_feats = {}, {k: [] for k in keys}, [], {}
    for s, p in sched.items():
        if s in sets:
            ref = inc.features(test.images[test.source == s])
            ref_all.append(ref)
            imgs = {k: resize(sets[s]["images"][k], upscale) if upscale else sets[s]["images"][k] for k in keys}
            feats = {k: inc.features(imgs[k]) for k in keys}
            gen_feats.update({(k, s): f for k, f in feats.items()})
            # Sets made for another cache's test half may hold fewer than this one's share.
            n_over = min(p["overall"], len(next(iter(imgs.values()))))
            for k in keys:
                pooled[k].append((feats[k][:n_over], imgs[k][:n_over]))
        if p["reference"] < 2 or s not in sets:
            by_subject[s] = {"samples": {"reference": p["reference"]},
                             "note": f"{p['reference']} images of {s!r} in the test half of the held-out split; "
                                     f"KID needs at least 2 (the split holds out whole groups)"
                             if p["reference"] < 2 else "no generated set for this subject"}
            continue
        for name, imgs in floor_sets(full, val, s, p["total"], rng).items():
            if imgs is not None:
                feats[name] = inc.features(imgs)
        by_subject[s] = panel(ref, feats, student_steps, teacher_steps, boots, seed, goal)
        by_subject[s]["decay_drawn"] = {"mean": float(sets[s]["decay"].mean()),
                                        "quantiles_10_50_90": [float(q) for q in np.quantile(sets[s]["decay"], [.1, .5, .9])]}
        log(f"{s}: " + "  ".join(f"{k} {v:.4f}" for k, v in by_subject[s]["kid"].items()))
    feats = {k: np.concatenate([f for f, _ in v]) for k, v in pooled.items()}
    overall_images = {k: np.concatenate([im for _, im in v]) for k, v in pooled.items()}
    for name, imgs in floor_sets(full, val, None, generated, rng).items():
        if imgs is not None:
            feats[name] = inc.features(imgs)
    overall = panel(np.concatenate(ref_all), feats, student_steps, teacher_steps, boots, seed, goal)
    log("overall: " + "  ".join(f"{k} {v:.4f}" for k, v in overall["kid"].items()))
    overall.update(novelty(full, sets, keys, inc, upscale, log, train_limit, gen_feats))
    res = next(iter(overall_images.values())).shape[1]
    block = {**overall, "by_subject": by_subject,
             "resolution": [res, res],
             "resized": "bicubic, from the model's own output" if upscale else None,
             "features": {"kind": inc.kind, "dim": DIM, "sha1": WEIGHTS_SHA1},
             "reference_set": f"test half of the held-out split ({len(test)} of {len(full.split(heldout=True))} "
                              f"held-out images; `tune` chooses on the validation half)",
             "generated": {"overall": generated, "per_subject_at_least": per_subject,
                           "decay": "drawn per subject from its training decay values",
                           "subject_mix": "overall: subjects in the test half's proportions"},
             "bootstrap": boots}
    return block, overall_images, sets
