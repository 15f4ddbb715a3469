"""File digests: one streaming sha256 for the model manifest and the upsampler stage (a leaf module,
so manifest.py and stages.py need not import each other). firmware.appliance keeps its own: an
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
