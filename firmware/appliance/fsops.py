"""The one door every write the box makes to its disk goes through.

Releases, state.json, the status file, the engine cache: each create, write, fsync, rename, link,
unlink, mkdir and rmdir the appliance does is a call here, never a bare `os`/`shutil`/`tarfile`
write. In production `RealDisk` does the plain system call. The power-cut harness
(`firmware.crash`) swaps in a recorder with `use(...)`: because nothing bypasses this module, the
record is the complete history of the disk, from which it rebuilds what a power cut at any moment
would leave (`tests/test_crash_seam.py` checks that nothing bypasses it).

Reads need no door: they change nothing a power cut could lose.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

class File:
    """A file open for writing through the seam; a context manager (close() twice is fine).
    `tell()` lets tarfile write into it."""

    def __init__(self, ops: "RealDisk", fd: int, path: str) -> None:
        self.ops, self.fd, self.path = ops, fd, path
        self.pos = 0
        self.closed = False
        self.hid: int | None = None          # the recorder's handle number

    def write(self, data) -> int:
        data = bytes(data)
        self.ops.write(self, data)
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    @property
    def name(self) -> str:          # as a file object names its file (error messages use it)
        return self.path

    def fileno(self) -> int:
        return self.fd

    def fchmod(self, mode: int) -> None:
        self.ops.fchmod(self, mode)

    def fsync(self) -> None:
        self.ops.fsync(self)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.ops.close(self)

    def __enter__(self) -> "File":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RealDisk:
    """The primitives, done by the kernel. A recorder subclasses this and notes each call."""

    def open(self, path, *, create: bool = False, exclusive: bool = False, mode: int = 0o600,
             write: bool = True) -> File:
        flags = (os.O_WRONLY if write else os.O_RDONLY) | os.O_CLOEXEC
        if create:
            flags |= os.O_CREAT | (os.O_EXCL | os.O_NOFOLLOW if exclusive else 0)
        return File(self, os.open(path, flags, mode), os.fspath(path))

    def write(self, f: File, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(f.fd, view):]

    def fchmod(self, f: File, mode: int) -> None:
        os.fchmod(f.fd, mode)

    def fsync(self, f: File) -> None:
        os.fsync(f.fd)

    def close(self, f: File) -> None:
        os.close(f.fd)

    def fsync_dir(self, path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rename(self, src, dst) -> None:
        os.rename(src, dst)          # os.replace is the same call on POSIX

    def unlink(self, path) -> None:
        os.unlink(path)

    def symlink(self, target: str, path) -> None:
        os.symlink(target, path)

    def link(self, src, dst) -> None:
        os.link(src, dst, follow_symlinks=False)

    def mkdir(self, path, mode: int = 0o777) -> None:
        os.mkdir(path, mode)

    def rmdir(self, path) -> None:
        os.rmdir(path)

    def chmod(self, path, mode: int) -> None:
        os.chmod(path, mode)


_disk: RealDisk = RealDisk()


def disk() -> RealDisk:
    return _disk


@contextlib.contextmanager
def use(ops: RealDisk) -> Iterator[RealDisk]:
    """Send every write through `ops` for the duration (the power-cut harness's recorder)."""
    global _disk
    old, _disk = _disk, ops
    try:
        yield ops
    finally:
        _disk = old


# --- what the appliance calls ---------------------------------------------------------------------

def create(path, mode: int = 0o600, *, exclusive: bool = True) -> File:
    """A new file for writing (exclusive: never through an existing name or a planted symlink)."""
    return _disk.open(path, create=True, exclusive=exclusive, mode=mode)


def create_temp(directory, prefix: str, suffix: str = ".tmp", mode: int = 0o600) -> File:
    """A new file with an unused random name in `directory` (what tempfile.mkstemp does)."""
    for _ in range(100):
        path = os.path.join(directory, f"{prefix}{secrets.token_hex(4)}{suffix}")
        try:
            return create(path, mode)
        except FileExistsError:
            continue
    raise FileExistsError(f"no unused temporary name in {directory}")


def write_new(path, data: bytes, mode: int = 0o644) -> None:
    """A new file holding `data`, not synced (the caller syncs the whole tree before using it)."""
    with create(path, mode) as f:
        f.write(data)
        f.fchmod(mode)         # exactly `mode`, whatever the umask


def fsync_file(path) -> None:
    with _disk.open(path, write=False) as f:
        f.fsync()


def fsync_dir(path) -> None:
    """Persist a directory entry change (create/rename/unlink) in `path`."""
    _disk.fsync_dir(path)


def rename(src, dst) -> None:
    """rename(2): atomic within a file system, and replaces `dst` (os.replace is the same call)."""
    _disk.rename(src, dst)


replace = rename


def unlink(path, missing_ok: bool = False) -> None:
    try:
        _disk.unlink(path)
    except FileNotFoundError:
        if not missing_ok:
            raise


def symlink(target: str, path) -> None:
    _disk.symlink(target, path)


def link(src, dst) -> None:
    _disk.link(src, dst)


def chmod(path, mode: int) -> None:
    _disk.chmod(path, mode)


def mkdir(path, mode: int = 0o777) -> None:
    _disk.mkdir(path, mode)


def makedirs(path, mode: int = 0o777, *, durable: bool = False) -> None:
    """mkdir -p. `durable`: each directory made is fsynced into its parent, so a file later synced
    inside it survives a power cut with its folder (POSIX does not promise that otherwise)."""
    path = Path(path)
    if path.is_dir():
        return
    if not path.parent.is_dir() and path.parent != path:
        makedirs(path.parent, mode, durable=durable)
    try:
        _disk.mkdir(path, mode)
    except FileExistsError:
        if not path.is_dir():
            raise
        return
    if durable:
        fsync_dir(path.parent)


def rmtree(path) -> None:
    """Remove a folder and everything in it, ignoring errors (shutil.rmtree(ignore_errors=True))."""
    if not os.path.isdir(path) or os.path.islink(path):
        return
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames:
            with contextlib.suppress(OSError):
                _disk.unlink(os.path.join(dirpath, name))
        for name in dirnames:
            p = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                _disk.unlink(p) if os.path.islink(p) else _disk.rmdir(p)
    with contextlib.suppress(OSError):
        _disk.rmdir(path)


def copy_file(src, dst, mode: int = 0o644) -> None:
    """A new file `dst` with the bytes of `src` (not synced), in chunks."""
    with open(src, "rb") as fin, create(dst, mode) as fout:
        while chunk := fin.read(1 << 20):
            fout.write(chunk)
