"""The recording side of the fsops seam: every file-system operation below a root, in order.

`Recorder` does each operation for real (the scenario runs on a real disk, as the box would) and
notes it as an `Op`. Paths are relative to the root; an operation outside it is done but not noted
(a bundle file in /tmp is not the box's disk). Each fsync notes its call site, the place in the
appliance code that asked for it, so the mutation test can pretend any one of them was never written.
"""
from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass

from firmware.appliance import fsops

FSYNCS = ("fsync", "fsync_dir")
_SEAM_FILES = (fsops.__file__, __file__)


@dataclass(frozen=True)
class Op:
    """One operation. `path`/`path2` are root-relative POSIX paths; `hid` names an open file."""
    kind: str                       # open write fchmod fsync fsync_dir rename unlink symlink link mkdir rmdir chmod
    path: str | None = None
    path2: str | None = None        # rename/link destination
    hid: int | None = None
    data: bytes | None = None       # write: the bytes; symlink: the target (as bytes)
    offset: int = 0
    mode: int | None = None         # the mode the kernel really gave (umask applied)
    created: bool = False           # open: the file did not exist before
    site: str | None = None         # fsync, fsync_dir: who asked for it

    def describe(self) -> str:
        where = f"{self.path} -> {self.path2}" if self.path2 else (self.path or f"#{self.hid}")
        extra = f" {len(self.data)} B @{self.offset}" if self.kind == "write" else ""
        return f"{self.kind} {where}{extra}" + (f" [{self.site}]" if self.site else "")


def call_site(kind: str) -> str:
    """'atomic.write_atomic (file) <- state._record': the appliance function that asked for an fsync;
    for the shared helpers in atomic.py, also the function that called them."""
    names: list[str] = []
    frame = sys._getframe(2)
    while frame is not None and len(names) < 2:
        code = frame.f_code
        module = frame.f_globals.get("__name__", "")
        if code.co_filename not in _SEAM_FILES and module.startswith("firmware."):
            short = f"{module.rsplit('.', 1)[-1]}.{code.co_name}"
            if not names:
                names.append(f"{short} ({kind})")
                if not module.endswith(".atomic"):
                    break
            elif not module.endswith(".atomic"):
                names.append(short)
        frame = frame.f_back
    return " <- ".join(names) or f"? ({kind})"


class Recorder(fsops.RealDisk):
    """Does every operation and keeps the ones below `root` in `ops`."""

    def __init__(self, root) -> None:
        self.root = os.path.abspath(root)
        self.ops: list[Op] = []
        self._next_hid = 0

    def rel(self, path) -> str | None:
        p = os.path.relpath(os.path.abspath(os.fspath(path)), self.root)
        if p == ".":
            return ""
        return None if p == ".." or p.startswith("../") else p

    def _note(self, op: Op) -> None:
        self.ops.append(op)

    # -- files ---------------------------------------------------------------------------------
    def open(self, path, *, create=False, exclusive=False, mode=0o600, write=True):
        existed = os.path.lexists(path)
        f = super().open(path, create=create, exclusive=exclusive, mode=mode, write=write)
        rel = self.rel(path)
        if rel is not None:
            f.hid = self._next_hid
            self._next_hid += 1
            real_mode = stat.S_IMODE(os.fstat(f.fd).st_mode)
            self._note(Op("open", rel, hid=f.hid, mode=real_mode, created=not existed))
        return f

    def write(self, f, data):
        super().write(f, data)
        if f.hid is not None:
            self._note(Op("write", hid=f.hid, data=bytes(data), offset=f.pos))

    def fchmod(self, f, mode):
        super().fchmod(f, mode)
        if f.hid is not None:
            self._note(Op("fchmod", hid=f.hid, mode=mode))

    def fsync(self, f):
        super().fsync(f)
        if f.hid is not None:
            self._note(Op("fsync", hid=f.hid, site=call_site("file")))

    # -- names ---------------------------------------------------------------------------------
    def fsync_dir(self, path):
        super().fsync_dir(path)
        rel = self.rel(path)
        if rel is not None:
            self._note(Op("fsync_dir", rel, site=call_site("dir")))

    def rename(self, src, dst):
        super().rename(src, dst)
        a, b = self.rel(src), self.rel(dst)
        if a is not None and b is not None:
            self._note(Op("rename", a, b))
        elif a is not None or b is not None:
            raise ValueError(f"rename across the recorded root: {src} -> {dst}")

    def link(self, src, dst):
        super().link(src, dst)
        a, b = self.rel(src), self.rel(dst)
        if b is not None:
            if a is None:
                raise ValueError(f"hard link into the recorded root from outside: {src} -> {dst}")
            self._note(Op("link", a, b))

    def symlink(self, target, path):
        super().symlink(target, path)
        rel = self.rel(path)
        if rel is not None:
            self._note(Op("symlink", rel, data=os.fsencode(target)))

    def unlink(self, path):
        super().unlink(path)
        self._path_op("unlink", path)

    def mkdir(self, path, mode=0o777):
        super().mkdir(path, mode)
        rel = self.rel(path)
        if rel is not None:
            self._note(Op("mkdir", rel, mode=stat.S_IMODE(os.lstat(path).st_mode)))

    def rmdir(self, path):
        super().rmdir(path)
        self._path_op("rmdir", path)

    def chmod(self, path, mode):
        super().chmod(path, mode)
        self._path_op("chmod", path, mode=mode)

    def _path_op(self, kind: str, path, **kw) -> None:
        rel = self.rel(path)
        if rel is not None:
            self._note(Op(kind, rel, **kw))
