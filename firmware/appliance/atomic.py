"""Atomic file writes: the box may lose power at any instant.

A reader (or the next boot) sees either the old file or the new one, never a
mix: the data goes to a temp file in the same directory, the temp file is
fsynced, renamed over the target (rename is atomic within a filesystem), and
the directory is fsynced so the rename itself survives the power cut.
Every step goes through `fsops`, the seam the power-cut harness records.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from . import fsops as fs


@contextlib.contextmanager
def _removed_on_failure(tmp: str | os.PathLike):
    """The temp file goes if anything fails before its rename (even Ctrl-C), so no debris is left."""
    try:
        yield
    except BaseException:
        fs.unlink(tmp, missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: bytes | str, mode: int = 0o644) -> Path:
    """Replace `path` with `data` atomically and durably; returns the path.

    The temp file is removed if anything fails before the rename, so a failed
    write (full disk, say) leaves no debris and the old file intact.
    """
    target = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = target.parent if str(target.parent) else Path(".")
    f = fs.create_temp(directory, prefix=f".{target.name}.", suffix=".tmp")
    with _removed_on_failure(f.path):
        with f:
            f.write(data)
            f.fchmod(mode)
            f.fsync()
        fs.replace(f.path, target)
    fs.fsync_dir(directory)
    return target


def write_json_atomic(path: str | os.PathLike, obj: Any, mode: int = 0o644) -> Path:
    """`write_atomic` of `obj` as pretty, key-sorted JSON with a trailing newline."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return write_atomic(path, text, mode=mode)


def symlink_atomic(target: str, link: str | os.PathLike) -> None:
    """Point `link` at `target` atomically: make a temp symlink, rename it over `link`.

    `os.symlink` onto an existing name fails and unlink-then-symlink has a window
    with no link at all; rename(2) of a symlink replaces the old one in one step.
    """
    link = Path(link)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    fs.unlink(tmp, missing_ok=True)
    fs.symlink(target, tmp)
    with _removed_on_failure(tmp):
        fs.replace(tmp, link)
    fs.fsync_dir(link.parent)
