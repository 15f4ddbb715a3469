"""The footage table `humus-export footage` prints: per subject, the images, the split, where the decay
came from and how it is spread, so a studio sees at once when "decay" means nothing (all mtime, all
one value, all unknown)."""
from __future__ import annotations

import numpy as np

BARS = "·▁▂▃▄▅▆▇█"   # · an empty bin
VALIDATION, TEST = 1, 2   # as in footage.py (bits of the part array)


def subjects(decay: np.ndarray, how: list[str], source: np.ndarray, parts: np.ndarray) -> dict:
    """The summary block: per subject, counts by split part and by decay origin, and a 10-bin histogram."""
    how = np.asarray(how)
    out = {}
    for s in sorted(set(source.tolist())):
        m = source == s
        d = decay[m][np.isfinite(decay[m])]
        origins, counts = np.unique(how[m], return_counts=True)
        out[s] = {"images": int(m.sum()), "train": int((m & (parts == 0)).sum()),
                  "validation": int((m & (parts & VALIDATION > 0)).sum()),
                  "test": int((m & (parts & TEST > 0)).sum()),
                  "decay_from": {str(o): int(c) for o, c in zip(origins, counts)},
                  "decay_unknown": int(m.sum() - len(d)),
                  "histogram": [int(c) for c in np.histogram(d, bins=10, range=(0.0, 1.0))[0]]}
    return out


def bar(counts: list[int]) -> str:
    """Ten counts as ten characters, each as tall as its share of the largest (any count > 0 shows)."""
    top = max(counts, default=0)
    if top == 0:
        return "·" * len(counts)
    return "".join(BARS[0 if c == 0 else max(1, round(8 * c / top))] for c in counts)


def table(summary: dict) -> str:
    rows = [("subject", "images", "train", "valid", "test", "decay 0..1", "unknown", "decay from")]
    for s, e in summary.get("subjects", {}).items():
        origin = ", ".join(f"{k} {v}" for k, v in sorted(e["decay_from"].items(), key=lambda kv: -kv[1]))
        rows.append((s, str(e["images"]), str(e["train"]), str(e["validation"]), str(e["test"]),
                     bar(e["histogram"]), str(e["decay_unknown"]), origin))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {1, 2, 3, 4, 6}
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    lines.append(f"{summary['images']} images, {summary['heldout']} held out (valid + test; under 8 serve as both); "
                 f"decay: ten bins over 0..1, scaled to each subject's fullest")
    lines += summary.get("decay_notes", [])
    return "\n".join(lines)
