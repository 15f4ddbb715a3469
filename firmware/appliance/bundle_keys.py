"""Release signing keys: ed25519 key files (a secret one to sign bundles, public ones a box trusts),
their short ids, and loading them. PyNaCl is imported only when a key is used."""
from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .bundle_schema import KEY_PREFIX, PUB_PREFIX, BundleError


def _nacl():
    try:
        import nacl.exceptions
        import nacl.signing
    except ImportError as exc:  # pragma: no cover - PyNaCl is a base dependency
        raise BundleError("PyNaCl is not installed: pip install pynacl") from exc
    return nacl.signing, nacl.exceptions


def key_id(public_key: bytes) -> str:
    """Short, stable name of a public key: the first 16 hex digits of its sha256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def generate_keypair(name: str) -> tuple[str, str]:
    """(private key file text, public key file text) for a new ed25519 signing key."""
    if not re.match(r"^[A-Za-z0-9_.-]+$", name):
        raise BundleError(f"key name {name!r}: use letters, digits, '_', '.', '-'")
    signing, _ = _nacl()
    sk = signing.SigningKey.generate()
    seed = base64.b64encode(bytes(sk)).decode()
    pub = base64.b64encode(bytes(sk.verify_key)).decode()
    private = (f"# humus release signing key {name!r} (key id {key_id(bytes(sk.verify_key))}).\n"
               f"# Keep it secret: anyone holding it can update every box that trusts {name}.pub.\n"
               f"{KEY_PREFIX} {seed} {name}\n")
    return private, f"{PUB_PREFIX} {pub} {name}\n"


def _key_line(path: Path, prefix: str) -> tuple[bytes, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BundleError(f"cannot read key {path}: {exc.strerror}") from exc
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == prefix and len(parts) >= 2:
            try:
                raw = base64.b64decode(parts[1], validate=True)
            except ValueError as exc:
                raise BundleError(f"key {path}: base64 is corrupt") from exc
            if len(raw) != 32:
                raise BundleError(f"key {path}: expected 32 key bytes, found {len(raw)}")
            return raw, (parts[2] if len(parts) > 2 else path.stem)
    raise BundleError(f"key {path}: no line starting with {prefix!r} (is this a humus key?)")


def load_signing_key(path: str | os.PathLike):
    signing, _ = _nacl()
    raw, name = _key_line(Path(path), KEY_PREFIX)
    return signing.SigningKey(raw), name


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    name: str
    path: Path
    public: bytes


def load_trusted_keys(keys_dir: str | os.PathLike) -> dict[str, TrustedKey]:
    """Every `*.pub` in keys_dir, by key id. A corrupt key file is an error, not a skip."""
    keys: dict[str, TrustedKey] = {}
    d = Path(keys_dir)
    for path in sorted(d.glob("*.pub")) if d.is_dir() else []:
        raw, name = _key_line(path, PUB_PREFIX)
        keys[key_id(raw)] = TrustedKey(key_id(raw), name, path, raw)
    return keys
