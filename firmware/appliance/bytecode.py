"""Byte-compile a release's app while it is unpacked, writing through the fsops seam.

What compileall does, minus its own file writes (importlib writes .pyc files with bare os calls the
power-cut harness could not see): for each module, `__pycache__/<name>.<tag>.pyc` with the standard
timestamp header (PEP 552: magic, flags 0, source mtime, source size), compiled by the interpreter
that will run it. The files are not synced here; the release's tree is, before it gets its name.
"""
from __future__ import annotations

import importlib.util
import marshal
import os
import stat
import struct
from pathlib import Path

from . import fsops as fs


def pyc_bytes(source: Path, display_name: str) -> bytes | None:
    """The .pyc for `source` (None if it does not compile: the import will say why, as compileall
    with quiet=2 leaves it)."""
    raw = source.read_bytes()
    st = source.stat()
    try:
        code = compile(raw, display_name, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    header = struct.pack("<4sIII", importlib.util.MAGIC_NUMBER, 0,
                         int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF)
    return header + marshal.dumps(code)


def compile_tree(tree: Path, final: Path) -> int:
    """Compile every .py under `tree`; tracebacks name the file where it will live (`final`).
    Returns how many modules were compiled."""
    done = 0
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            source = Path(dirpath, name)
            data = pyc_bytes(source, str(final / source.relative_to(tree)))
            if data is None:
                continue
            cache = Path(importlib.util.cache_from_source(str(source)))
            fs.makedirs(cache.parent)
            mode = (stat.S_IMODE(source.stat().st_mode) | 0o200) & 0o666   # as importlib sets it
            fs.write_new(cache, data, mode)
            done += 1
    return done
