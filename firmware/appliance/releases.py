"""Releases on a box: install a verified bundle, swap `current`, roll back, prune.

Layout under a root ("/" on a box, any folder for rehearsals and tests):

  etc/humus/keys/*.pub            public keys this box trusts
  opt/humus/releases/<version>/   one complete release: app/, models/, release.json,
                                  plus bundle.json + bundle.sig as delivered
  opt/humus/current  -> releases/<version>   the active release (relative symlink)
  opt/humus/previous -> releases/<version>   where `humus rollback` goes
  opt/humus/state.json            failed releases and a short history
  opt/humus/.staging-*            a release being unpacked (removed if found later)

Power can fail at any instant, so every step leaves a state the next boot can run:
a release directory only gets its final name once every file and release.json are
fsynced; `current` is only ever replaced by rename(2). A half-unpacked staging
directory is never pointed at and is swept up by the next update.

A release is always complete: a model-only bundle takes the app from the current
release, an app-only bundle takes the models (hard links: release files are never
modified in place, so sharing inodes is safe).
"""
from __future__ import annotations

import fcntl
import os
import signal
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from firmware.digest import sha256_file
from . import bundle as bundlemod
from . import fsops as fs
from .atomic import symlink_atomic, write_json_atomic
from .bundle_schema import KINDS, MANIFEST_NAME, SIGNATURE_NAME, BundleError, version_key
from .bytecode import compile_tree
from .release_layout import (RELEASE_FILE, Layout, ReleaseError, current_version, installed_versions, previous_version,
                             read_release, verify_release)
from .state import _record, read_state

PARTS = ("app", "models")
DEFAULT_KEEP = 3
CRASH_ENV = "HUMUS_TEST_CRASH_AT"   # test hook: SIGKILL ourselves at the named step


def crashpoint(step: str) -> None:
    """Die like a power cut at `step` when $HUMUS_TEST_CRASH_AT names it (crash tests only)."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


# --- state (firmware/appliance/state.py) ---------------------------------------------------

@contextmanager
def locked(layout: Layout) -> Iterator[None]:
    """One updater at a time per box; the kernel drops the lock if we are killed. The folders are
    made durably: a first release synced into a folder whose own name was not could vanish."""
    fs.makedirs(layout.releases, durable=True)
    with fs.disk().open(layout.base / ".update.lock", create=True, mode=0o600) as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ReleaseError(f"another update is running ({layout.base / '.update.lock'} is locked)") from None
        yield


def sweep(layout: Layout) -> list[str]:
    """Remove debris of interrupted updates and prunes (never a finished release)."""
    removed = []
    for d in list(layout.base.glob(".staging-*")) + list(layout.base.glob(".trash-*")):
        fs.rmtree(d)
        removed.append(d.name)
    for tmp in layout.base.glob(".*.tmp"):
        fs.unlink(tmp, missing_ok=True)
        removed.append(tmp.name)
    return removed


# --- install ---------------------------------------------------------------------------------

@dataclass
class InstallResult:
    version: str
    path: Path
    already_installed: bool = False
    inherited: dict = field(default_factory=dict)


def _fsync_tree(path: Path) -> None:
    for dirpath, _, filenames in os.walk(path):
        for f in filenames:
            fs.fsync_file(os.path.join(dirpath, f))
        fs.fsync_dir(dirpath)


def _inherit(src_release: Path, part: str, dest: Path) -> dict:
    """Take `part` (app or models) of an installed release into `dest`; return its file records."""
    rec = read_release(src_release)
    taken = {}
    for name, entry in rec["files"].items():
        if name.split("/")[0] != part:
            continue
        src, dst = src_release / name, dest / name
        fs.makedirs(dst.parent)
        try:
            fs.link(src, dst)
        except OSError:      # another file system, or links refused: a copy, synced with the tree
            mode = stat.S_IMODE(os.stat(src).st_mode)
            fs.copy_file(src, dst, mode)
            fs.chmod(dst, mode)
        taken[name] = entry
    return taken


def install(layout: Layout, verified: bundlemod.VerifiedBundle, force: bool = False) -> InstallResult:
    """Unpack a verified bundle into releases/<version> (does not activate it). Caller holds the lock."""
    version = verified.version
    final = layout.release_dir(version)
    cur = current_version(layout)
    if cur is not None and not force and version_key(version) < version_key(cur):
        raise ReleaseError(f"bundle version {version} is older than the running {cur}; "
                           f"use --force to downgrade (or `humus rollback` to go back)")
    if final.exists():
        try:
            same = read_release(final).get("bundle", {}).get("digest") == verified.digest
        except ReleaseError:
            same = False
        if same and not verify_release(final, hashes=False):
            return InstallResult(version, final, already_installed=True)
        if version == cur:
            raise ReleaseError(f"version {version} is running with different content; bump the version")
        if not force:
            raise ReleaseError(f"version {version} is already installed with different content; bump the "
                               f"version or use --force to replace it")
        trash = layout.base / f".trash-{version}-{os.getpid()}"
        fs.rename(final, trash)
        fs.rmtree(trash)

    missing_parts = [p for p in PARTS if p not in KINDS[verified.kind]]
    if cur is None and "app" in missing_parts:
        raise ReleaseError(f"bundle {version} is model-only and no release is installed to take "
                           f"the app from; install an app bundle first")
    staging = layout.base / f".staging-{version}-{os.getpid()}"
    try:
        return _unpack(layout, verified, staging, final, cur, missing_parts)
    except BaseException as exc:
        # Whatever went wrong (disk full, the bundle changed under us, Ctrl-C), the half-written
        # staging folder goes now: it must not hold the disk full until the next update.
        fs.rmtree(staging)
        if isinstance(exc, OSError):
            raise ReleaseError(f"could not unpack {version} into {staging}: {_os_reason(exc)}; "
                               f"removed the staging folder, current release untouched") from exc
        if isinstance(exc, BundleError):
            raise ReleaseError(f"{exc}; removed the staging folder, current release untouched") from exc
        raise


def _os_reason(exc: OSError) -> str:
    import errno
    if exc.errno == errno.ENOSPC:
        return f"disk full (ENOSPC) writing {exc.filename or 'a file'}"
    return f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)


def _unpack(layout: Layout, verified: bundlemod.VerifiedBundle, staging: Path, final: Path,
            cur: str | None, missing_parts: list[str]) -> InstallResult:
    version = verified.version
    fs.mkdir(staging, 0o755)
    crashpoint("staging")
    first = [True]

    def on_file(name: str) -> None:
        if first[0]:
            first[0] = False
            crashpoint("extracting")

    bundlemod.extract_verified(verified, staging, on_file=on_file)
    crashpoint("extracted")

    files = dict(verified.manifest["files"])
    inherited = {}
    for part in missing_parts:
        if cur is None:
            continue                      # first release, app-only: no models yet
        taken = _inherit(layout.release_dir(cur), part, staging)
        files.update(taken)
        inherited[part] = cur
    crashpoint("inherited")

    fs.write_new(staging / MANIFEST_NAME, verified.manifest_bytes)
    fs.write_new(staging / SIGNATURE_NAME, verified.signature_bytes)
    _seal(layout, staging, final, {
        "version": version, "kind": verified.kind, "created": verified.manifest["created"],
        "inherited": inherited,
        "bundle": {"digest": verified.digest, "key_id": verified.key.key_id, "signer": verified.key.name},
        "files": files,
    })
    _record(layout, "installed", version=version, digest=verified.digest)
    return InstallResult(version, final, inherited=inherited)


def _seal(layout: Layout, staging: Path, final: Path, record: dict) -> None:
    """Write release.json, fsync everything, and give the release its final name."""
    if (staging / "app").is_dir():
        # The show runs with /opt read-only: compile now (with the interpreter that will run
        # it) so every start does not recompile. Bytecode is not listed in release.json.
        compile_tree(staging / "app", final / "app")
    record = {**record, "installed_at": round(time.time(), 3), "files": dict(sorted(record["files"].items()))}
    write_json_atomic(staging / RELEASE_FILE, record)
    _fsync_tree(staging)
    crashpoint("sealed")
    fs.rename(staging, final)
    fs.fsync_dir(layout.releases)
    crashpoint("renamed")


def install_local(layout: Layout, files: dict[str, Path], version: str, kind: str) -> InstallResult:
    """Install files from a checkout as a release (install.sh's first release; no signature:
    whoever runs install.sh is root on the box already). Caller holds the lock."""
    final = layout.release_dir(version)
    if final.exists():
        raise ReleaseError(f"release {version} already exists at {final}")
    staging = layout.base / f".staging-{version}-{os.getpid()}"
    fs.mkdir(staging, 0o755)
    records = {}
    for name, src in sorted(files.items()):
        dst = staging / name
        fs.makedirs(dst.parent)
        mode = 0o755 if os.access(src, os.X_OK) else 0o644
        fs.copy_file(src, dst, mode)
        fs.chmod(dst, mode)
        records[name] = {"sha256": sha256_file(dst), "size": dst.stat().st_size, "mode": mode}
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _seal(layout, staging, final, {"version": version, "kind": kind, "created": created, "inherited": {},
                                   "bundle": {"digest": None, "key_id": None, "signer": "install.sh (local)"},
                                   "files": records})
    _record(layout, "installed", version=version, digest=None)
    return InstallResult(version, final)


def activate(layout: Layout, version: str) -> str | None:
    """Make `version` current; the release it replaces becomes `previous`. Returns that one."""
    target = layout.release_dir(version)
    problems = verify_release(target, hashes=False)
    if problems:
        raise ReleaseError(f"refusing to activate {version}: {problems[0]}")
    old = current_version(layout)
    if old == version:
        return None
    if old is not None:
        symlink_atomic(f"releases/{old}", layout.previous)
    crashpoint("previous-linked")
    symlink_atomic(f"releases/{version}", layout.current)
    crashpoint("swapped")
    _record(layout, "activated", version=version, previous=old)
    return old


def rollback_target(layout: Layout, to: str | None = None) -> str:
    cur = current_version(layout)
    if to is not None:
        if not (layout.release_dir(to) / RELEASE_FILE).is_file():
            raise ReleaseError(f"release {to} is not installed; installed: {', '.join(installed_versions(layout)) or 'none'}")
        return to
    prev = previous_version(layout)
    if prev and prev != cur and (layout.release_dir(prev) / RELEASE_FILE).is_file():
        return prev
    failed = read_state(layout)["failed"]
    older = [v for v in installed_versions(layout)
             if v != cur and v not in failed and (cur is None or version_key(v) < version_key(cur))]
    if not older:
        raise ReleaseError(f"nothing to roll back to: current is {cur}, no previous release installed")
    return older[-1]


def prune(layout: Layout, keep: int = DEFAULT_KEEP) -> list[str]:
    """Delete old releases beyond the newest `keep`; never current or previous."""
    protected = {current_version(layout), previous_version(layout)}
    versions = installed_versions(layout)
    doomed = [v for v in versions[:-keep] if v not in protected] if keep > 0 else []
    for v in doomed:
        # rename first, so a power cut mid-delete leaves only a .trash-* for sweep()
        trash = layout.base / f".trash-{v}-{os.getpid()}"
        fs.rename(layout.release_dir(v), trash)
        fs.fsync_dir(layout.releases)
        fs.rmtree(trash)
    crashpoint("pruned")
    return doomed

