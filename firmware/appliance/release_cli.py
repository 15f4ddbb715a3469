"""`humus-release`: the workstation side of updates (make keys, build and check bundles).

  humus-release keygen NAME                  -> NAME.key (secret, 0600) and NAME.pub
  humus-release build SRC --key NAME.key --version 1.3.0 -o humus-1.3.0.bundle [--kind app|model|both]
  humus-release verify FILE --keys DIR|FILE.pub   (the same checks a box runs, nothing written)
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import bundle as bundlemod
from . import fsops as fs
from .argtypes import cli_version, number
from .bundle_keys import TrustedKey, _key_line, generate_keypair, key_id, load_trusted_keys
from .bundle_schema import DEFAULT_MAX_BYTES, KINDS, PUB_PREFIX, BundleError


def cmd_keygen(args) -> int:
    base = Path(args.name)
    key, pub = base.with_name(base.name + ".key"), base.with_name(base.name + ".pub")
    for p in (key, pub):
        if os.path.lexists(p):   # lexists: a dangling symlink is in the way too (it would be written through)
            print(f"humus-release: {p} exists{' (a symlink)' if p.is_symlink() else ''}; not overwriting a key",
                  file=sys.stderr)
            return 1
    private_text, public_text = generate_keypair(base.name)
    # O_EXCL + O_NOFOLLOW + 0600 at creation: the secret is never readable by others, not even
    # briefly, and neither file is written through a symlink planted after the check above.
    try:
        f = fs.create(key, 0o600)
    except OSError as exc:
        print(f"humus-release: cannot create {key}: {exc.strerror}", file=sys.stderr)
        return 1
    with f:
        f.fchmod(0o600)
        f.write(private_text.encode())
    try:
        f = fs.create(pub, 0o644)
    except OSError as exc:
        fs.unlink(key)           # no half pair left behind
        print(f"humus-release: cannot create {pub}: {exc.strerror}", file=sys.stderr)
        return 1
    with f:
        f.write(public_text.encode())
    raw, _ = _key_line(pub, PUB_PREFIX)
    print(f"wrote {key} (secret, mode 0600) and {pub}, key id {key_id(raw)}")
    print(f"install {pub.name} on boxes as /etc/humus/keys/{pub.name}")
    return 0


def cmd_build(args) -> int:
    manifest = bundlemod.build_bundle(args.src, args.key, args.version, args.output, kind=args.kind)
    total = sum(f["size"] for f in manifest["files"].values())
    print(f"wrote {args.output}: {manifest['kind']} {manifest['version']}, "
          f"{len(manifest['files'])} files, {total} bytes")
    return 0


def cmd_verify(args) -> int:
    trusted = {}
    for k in args.keys:
        p = Path(k)
        if p.is_dir():
            trusted.update(load_trusted_keys(p))
        else:
            raw, name = _key_line(p, PUB_PREFIX)
            trusted[key_id(raw)] = TrustedKey(key_id(raw), name, p, raw)
    v = bundlemod.open_bundle(args.file, trusted, max_bytes=args.max_bytes)
    print(f"OK {args.file}: {v.kind} {v.version} created {v.manifest['created']}, "
          f"{len(v.manifest['files'])} files, signed by {v.key.name} ({v.key.key_id})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="humus-release", description="Sign and check humus update bundles.")
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen", help="make a signing key pair NAME.key / NAME.pub")
    k.add_argument("name")
    k.set_defaults(func=cmd_keygen)
    b = sub.add_parser("build", help="build a signed bundle from a checkout or an app/ + models/ folder")
    b.add_argument("src")
    b.add_argument("--key", required=True, help="NAME.key from keygen")
    b.add_argument("--version", required=True, type=cli_version)
    b.add_argument("--kind", choices=sorted(KINDS), help="default: every part SRC has")
    b.add_argument("-o", "--output", required=True)
    b.set_defaults(func=cmd_build)
    v = sub.add_parser("verify", help="check a bundle as a box would, writing nothing")
    v.add_argument("file")
    v.add_argument("--keys", action="append", required=True, help="a .pub file or a folder of them")
    v.add_argument("--max-bytes", type=number(int, 1, 64 * 1024**3), default=DEFAULT_MAX_BYTES)
    v.set_defaults(func=cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BundleError as exc:
        print(f"humus-release: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:   # a missing source folder, an unwritable output
        print(f"humus-release: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
