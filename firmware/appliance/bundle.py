"""Signed update bundles: one tar that carries the app and/or a model to a box.

Layout of the tar, in this order:
  bundle.json  the manifest: {format, version, created, kind, files: {path: {sha256, size, mode}}}
  bundle.sig   {format, alg: "ed25519", key_id, signer, signature}: detached signature
               over the exact bytes of bundle.json
  app/...      the `firmware` package (kind "app" or "both")
  models/...   model files (kind "model" or "both")

`open_bundle` checks everything -- size limit, signature, manifest schema, every
member's type, path and sha256 -- by reading the tar once WITHOUT writing a byte.

Bundles are plain (uncompressed) tar, and compressed ones are refused before any header is
read: tarfile decompresses a stream to read its headers, so a tiny .gz could otherwise make
the box hold gigabytes in memory before the signature check. Even in a plain tar, a pax or
GNU long-name header is read whole into memory, so those are bounded (MAX_HEADER_BYTES).
Only then may `extract_verified` write files, and it re-hashes as it writes, so a
bundle swapped between the two passes is still caught.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

from . import fsops as fs
from .bundle_schema import (CHUNK, COMPRESSED, DEFAULT_MAX_BYTES, FORMAT, KINDS, MANIFEST_NAME, MAX_HEADER_BYTES,
                            MAX_META_BYTES, SIG_FORMAT, SIGNATURE_NAME, SKIP_NAMES, BundleError, _check_manifest,
                            check_member_path, check_version)
from firmware.digest import sha256_file
from .bundle_keys import TrustedKey, _nacl, key_id, load_signing_key


# --- build -----------------------------------------------------------------------------------

def _walk_files(base: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_NAMES and not d.startswith("."))
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                raise BundleError(f"{os.path.join(dirpath, d)}: symlinks cannot go into a bundle")
        for f in sorted(filenames):
            full = Path(dirpath, f)
            if f in SKIP_NAMES or f.startswith(".") or f.endswith((".pyc", ".pyo")):
                continue
            if full.is_symlink() or not full.is_file():
                raise BundleError(f"{full}: only regular files can go into a bundle")
            rel = full.relative_to(base).as_posix()
            yield f"{prefix}/{rel}", full


MODEL_STUDIO_ONLY = {"eval", "train"}


def collect_sources(src: str | os.PathLike, kind: str | None = None) -> tuple[str, dict[str, Path]]:
    """Map bundle paths to files from SRC.

    SRC may be a checkout (`firmware/` becomes app/firmware/, `models/` becomes models/)
    or a release-shaped folder (`app/`, `models/`). `kind` picks the parts; by default
    every part SRC has.
    """
    src = Path(src)
    parts: dict[str, list[tuple[str, Path]]] = {}
    if (src / "firmware" / "__init__.py").is_file():
        parts["app"] = list(_walk_files(src / "firmware", "app/firmware"))
    elif (src / "app").is_dir():
        parts["app"] = list(_walk_files(src / "app", "app"))
    if (src / "models").is_dir():
        # A model folder's studio-only parts (eval/: grids and figures; train/: the training state, tens
        # of MB) never travel to a box.
        models = [(name, path) for name, path in _walk_files(src / "models", "models")
                  if not (len(name.split("/")) > 3 and name.split("/")[2] in MODEL_STUDIO_ONLY)]
        if models:
            parts["models"] = models
    if kind is None:
        kind = "both" if len(parts) == 2 else ("app" if "app" in parts else "model")
    if kind not in KINDS:
        raise BundleError(f"kind {kind!r} is not one of {sorted(KINDS)}")
    missing = [p for p in KINDS[kind] if p not in parts]
    if missing:
        raise BundleError(f"{src}: kind {kind!r} needs {', '.join(m + '/' for m in missing)} "
                          f"(app: a checkout with firmware/ or an app/ folder; model: a models/ folder)")
    files = {name: path for top in KINDS[kind] for name, path in parts[top]}
    return kind, files


def build_bundle(src: str | os.PathLike, key_path: str | os.PathLike, version: str,
                 out: str | os.PathLike, kind: str | None = None, created: float | None = None) -> dict:
    """Write a signed bundle to `out` (atomically) and return its manifest."""
    check_version(version)
    sk, signer = load_signing_key(key_path)
    kind, files = collect_sources(src, kind)
    created = time.time() if created is None else created
    manifest = {
        "format": FORMAT, "version": version, "kind": kind,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
        "files": {name: {"sha256": sha256_file(p), "size": p.stat().st_size,
                         "mode": 0o755 if os.access(p, os.X_OK) else 0o644}
                  for name, p in sorted(files.items())},
    }
    manifest_bytes = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    sig = {"format": SIG_FORMAT, "alg": "ed25519", "key_id": key_id(bytes(sk.verify_key)),
           "signer": signer, "signature": base64.b64encode(sk.sign(manifest_bytes).signature).decode()}
    sig_bytes = (json.dumps(sig, indent=1, sort_keys=True) + "\n").encode()

    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    fs.unlink(tmp, missing_ok=True)       # a leftover of an earlier build by a process of this pid
    try:
        with fs.create(tmp, 0o644) as f:
            with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for name, data in ((MANIFEST_NAME, manifest_bytes), (SIGNATURE_NAME, sig_bytes)):
                    tar.addfile(_tarinfo(name, len(data), 0o644, created), io.BytesIO(data))
                for name, path in sorted(files.items()):
                    entry = manifest["files"][name]
                    with open(path, "rb") as src:
                        tar.addfile(_tarinfo(name, entry["size"], entry["mode"], created), src)
            f.fsync()
        fs.replace(tmp, out)
        fs.fsync_dir(out.parent if str(out.parent) else ".")
    finally:
        fs.unlink(tmp, missing_ok=True)
    return manifest


def _tarinfo(name: str, size: int, mode: int, mtime: float) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = size, mode, int(mtime)
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


# --- verify ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class VerifiedBundle:
    path: Path
    manifest: dict
    manifest_bytes: bytes
    signature_bytes: bytes
    key: TrustedKey
    max_bytes: int

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def digest(self) -> str:
        """Identity of the bundle's content: sha256 of the signed manifest."""
        return hashlib.sha256(self.manifest_bytes).hexdigest()


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses oversized pax / GNU long-name headers (and sparse members) before
    tarfile reads them into memory."""

    def _proc_member(self, tar):
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise BundleError(f"member {self.name[:80]!r}: sparse file; bundles carry regular files only")
        if (self.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                          tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
                and self.size > MAX_HEADER_BYTES):
            raise BundleError(f"tar header at byte {self.offset}: extended header of {self.size} bytes, "
                              f"over the limit of {MAX_HEADER_BYTES}")
        return super()._proc_member(tar)


def _open_tar(path: Path) -> tarfile.TarFile:
    """Open a bundle as a plain tar; compressed bundles are refused by their magic bytes."""
    with open(path, "rb") as f:
        head = f.read(6)
    for magic, name in COMPRESSED.items():
        if head.startswith(magic):
            raise BundleError(f"{path}: {name}-compressed; bundles are plain tar files as "
                              f"`humus-release build` writes them (compressed bundles are refused)")
    return tarfile.open(path, "r:", tarinfo=_BoundedTarInfo)


def _read_meta(tar: tarfile.TarFile, member: tarfile.TarInfo | None, expected: str, path: Path) -> bytes:
    if member is None or member.name != expected:
        got = "nothing" if member is None else repr(member.name)
        raise BundleError(f"{path}: expected {expected} as the {'first' if expected == MANIFEST_NAME else 'second'} "
                          f"member, found {got} (not a humus bundle?)")
    if not member.isreg() or member.size > MAX_META_BYTES:
        raise BundleError(f"{path}: {expected} must be a regular file under {MAX_META_BYTES} bytes")
    data = tar.extractfile(member).read()
    if len(data) != member.size:
        raise BundleError(f"{path}: {expected} is truncated ({len(data)} of {member.size} bytes)")
    return data


def _check_member_type(m: tarfile.TarInfo) -> None:
    if m.issym() or m.islnk():
        target = m.linkname
        kind = "symlink" if m.issym() else "hard link"
        outside = (target.startswith("/") or ".." in target.split("/"))
        raise BundleError(f"member {m.name!r}: {kind} to {target!r}"
                          f"{' points outside the bundle' if outside else ''}; bundles carry no links")
    if m.ischr() or m.isblk():
        raise BundleError(f"member {m.name!r}: device file ({'char' if m.ischr() else 'block'} "
                          f"{m.devmajor}:{m.devminor}); bundles carry regular files only")
    if m.isfifo():
        raise BundleError(f"member {m.name!r}: FIFO; bundles carry regular files only")
    if not (m.isreg() or m.isdir()):
        raise BundleError(f"member {m.name!r}: unsupported tar member type {m.type!r}")


def _payload(tar: tarfile.TarFile, manifest: dict, path: Path) -> Iterator[tuple[str, tarfile.TarInfo]]:
    """Yield (name, member) for each payload file, after checking its path, type and listing."""
    files = manifest["files"]
    seen: set[str] = set()
    try:
        for index, m in enumerate(tar):   # iterates from the first member, even after next()
            if index < 2:
                continue                  # bundle.json and bundle.sig, checked by _read_meta
            name = check_member_path(m.name)
            _check_member_type(m)
            if m.isdir():
                continue
            if name in seen:
                raise BundleError(f"member {name!r}: appears twice in {path}")
            seen.add(name)
            if name not in files:
                raise BundleError(f"member {name!r}: not listed in {MANIFEST_NAME} (added after signing?)")
            if m.size != files[name]["size"]:
                raise BundleError(f"member {name!r}: {m.size} bytes, {MANIFEST_NAME} says {files[name]['size']}")
            yield name, m
        # tarfile stops quietly at end of file; a complete tar ends in two zero blocks.
        tar.fileobj.seek(tar.offset)
        end = tar.fileobj.read(2 * tarfile.BLOCKSIZE)
        if len(end) != 2 * tarfile.BLOCKSIZE or end.count(0) != len(end):
            raise BundleError(f"{path}: truncated (no end-of-archive marker after byte {tar.offset})")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"{path}: truncated or corrupt tar ({exc})") from exc
    missing = sorted(set(files) - seen)
    if missing:
        raise BundleError(f"{path}: file {missing[0]!r} listed in {MANIFEST_NAME} is missing from the bundle"
                          f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; truncated bundle?")


def _copy_hashed(src, dst, name: str, expected: dict) -> None:
    h = hashlib.sha256()
    n = 0
    try:
        while chunk := src.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
            if dst is not None:
                dst.write(chunk)
    except (tarfile.TarError, EOFError) as exc:
        raise BundleError(f"member {name!r}: truncated ({exc})") from exc
    if n != expected["size"]:
        raise BundleError(f"member {name!r}: truncated, read {n} of {expected['size']} bytes")
    if h.hexdigest() != expected["sha256"]:
        raise BundleError(f"member {name!r}: sha256 {h.hexdigest()} does not match the signed manifest "
                          f"({expected['sha256']}): tampered or corrupt")


def check_signature(manifest_bytes: bytes, sig_bytes: bytes, trusted: dict[str, TrustedKey],
                    where: str | os.PathLike) -> TrustedKey:
    """The trusted key whose signature `sig_bytes` (bundle.sig) is over exactly `manifest_bytes`
    (bundle.json); BundleError naming `where` otherwise. Also used on an installed release's copy."""
    signing, exceptions = _nacl()
    try:
        sig = json.loads(sig_bytes)
        kid, raw_sig = sig["key_id"], base64.b64decode(sig["signature"], validate=True)
        if sig.get("format") != SIG_FORMAT or sig.get("alg") != "ed25519":
            raise ValueError("unsupported format/alg")
        if not isinstance(kid, str):
            raise ValueError(f"key_id {kid!r} is not a string")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:   # Recursion: [[[[... nested
        raise BundleError(f"{where}: {SIGNATURE_NAME} is malformed ({exc})") from exc
    key = trusted.get(kid)
    if key is None:
        raise BundleError(f"{where}: signed by unknown key {kid} ({sig.get('signer', '?')}); this box trusts "
                          f"{', '.join(f'{k.key_id} ({k.name})' for k in trusted.values())}")
    try:
        signing.VerifyKey(key.public).verify(manifest_bytes, raw_sig)
    except (exceptions.BadSignatureError, ValueError) as exc:
        raise BundleError(f"{where}: bad signature: {MANIFEST_NAME} was not signed by key "
                          f"{kid} ({key.name}) or was modified after signing") from exc
    return key


def open_bundle(path: str | os.PathLike, trusted: dict[str, TrustedKey],
                max_bytes: int = DEFAULT_MAX_BYTES) -> VerifiedBundle:
    """Verify a bundle completely without writing anything. Raises BundleError naming the problem."""
    _nacl()           # a box without PyNaCl says so before reading anything
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise BundleError(f"cannot read bundle {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):   # /dev/zero has no size to check, a FIFO would block forever
        raise BundleError(f"{path}: not a regular file")
    size = st.st_size
    if size > max_bytes:
        raise BundleError(f"{path}: {size} bytes, over the bundle size limit of {max_bytes}")
    if not trusted:
        raise BundleError("no trusted public keys (etc/humus/keys/*.pub): cannot verify any bundle")
    try:
        tar = _open_tar(path)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"{path}: not a readable tar ({exc}); truncated download?") from exc
    with tar:
        try:
            manifest_bytes = _read_meta(tar, tar.next(), MANIFEST_NAME, path)
            sig_bytes = _read_meta(tar, tar.next(), SIGNATURE_NAME, path)
        except (tarfile.TarError, EOFError) as exc:
            raise BundleError(f"{path}: truncated or corrupt tar ({exc})") from exc
        key = check_signature(manifest_bytes, sig_bytes, trusted, path)
        try:
            manifest = _check_manifest(json.loads(manifest_bytes), max_bytes)
        except (ValueError, RecursionError) as exc:   # not JSON, not UTF-8, or nested too deep
            raise BundleError(f"{path}: {MANIFEST_NAME} is not JSON ({exc})") from exc
        for name, member in _payload(tar, manifest, path):
            try:
                _copy_hashed(tar.extractfile(member), None, name, manifest["files"][name])
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise BundleError(f"member {name!r}: truncated ({exc})") from exc
    return VerifiedBundle(path, manifest, manifest_bytes, sig_bytes, key, max_bytes)


def extract_verified(bundle: VerifiedBundle, dest: str | os.PathLike, on_file=None) -> list[str]:
    """Write the payload of a verified bundle under `dest` (which must be empty), fsyncing each file.

    Re-hashes while writing: the file on disk could have changed since `open_bundle`.
    `on_file(name)` is called after each file (the updater's crash-test hook).
    """
    dest = Path(dest)
    written: list[str] = []
    with _open_tar(bundle.path) as tar:
        for name, member in _payload(tar, bundle.manifest, bundle.path):
            entry = bundle.manifest["files"][name]
            target = dest.joinpath(*PurePosixPath(name).parts)
            fs.makedirs(target.parent)
            with fs.create(target, 0o600) as out:      # O_EXCL: never through a planted name
                _copy_hashed(tar.extractfile(member), out, name, entry)
                out.fchmod(entry["mode"])
                out.fsync()
            written.append(name)
            if on_file:
                on_file(name)
    return written
