"""Atomic file writes: the box may lose power at any instant.

A reader (or the next boot) sees either the old file or the new one, never a
mix: the data goes to a temp file in the same directory, the temp file is
fsynced, renamed over the target (rename is atomic within a filesystem), and
the directory is fsynced so the rename itself survives the power cut.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def fsync_dir(path: str | os.PathLike) -> None:
    """Persist a directory entry change (create/rename/unlink) in `path`."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _removed_on_failure(tmp: str | os.PathLike):
    """The temp file goes if anything fails before its rename (even Ctrl-C), so no debris is left."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
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
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    with _removed_on_failure(tmp):
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    fsync_dir(directory)
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
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    with _removed_on_failure(tmp):
        os.replace(tmp, link)
    fsync_dir(link.parent)
