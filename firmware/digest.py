"""Model files: one streaming sha256 and one containment rule for the files a manifest names, shared
by the model manifest and the upsampler stage (a leaf module, so manifest.py and stages.py need not
import each other). firmware.appliance keeps its own: an
installed release must run its updater from the appliance package alone."""
from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20  # 1 MiB reads: a multi-GB model file never sits in memory whole


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def resolve_inside(model_dir: Path, name: str) -> Path | None:
    """`name` resolved (symlinks followed) if it stays inside `model_dir`, else None: a manifest must
    not make the box load `../other/student.onnx` or `/etc/...`."""
    base = model_dir.resolve()
    path = (model_dir / name).resolve()
    if Path(name).is_absolute() or (path != base and base not in path.parents):
        return None
    return path
