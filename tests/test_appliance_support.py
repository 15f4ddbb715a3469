"""Shared helpers for the appliance tests (imported by test_appliance_*.py; holds one self-test)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
from pathlib import Path

from firmware.appliance import bundle as bundlemod
from firmware.appliance.bundle_keys import generate_keypair, key_id, load_signing_key, load_trusted_keys
from firmware.appliance.bundle_schema import FORMAT, SIG_FORMAT

REPO = Path(__file__).resolve().parents[1]


def make_key(dirpath: Path, name: str = "studio") -> tuple[Path, Path]:
    private, public = generate_keypair(name)
    key, pub = dirpath / f"{name}.key", dirpath / f"{name}.pub"
    key.write_text(private)
    pub.write_text(public)
    return key, pub


def make_src(dirpath: Path, version: str, app: bool = True, model: bool = True, extra: bytes = b"") -> Path:
    """A release-shaped source folder whose files say which version they belong to."""
    src = dirpath / f"src-{version}"
    if app:
        (src / "app/firmware").mkdir(parents=True, exist_ok=True)
        (src / "app/firmware/__init__.py").write_text(f'__version__ = "{version}"\n')
        (src / "app/firmware/show.py").write_bytes(b"# show\n" + extra)
    if model:
        (src / "models/decay").mkdir(parents=True, exist_ok=True)
        (src / "models/decay/unet.onnx").write_bytes(f"weights {version}\n".encode() * 1000)
    return src


def make_root(dirpath: Path, pub: Path) -> Path:
    root = dirpath / "root"
    (root / "etc/humus/keys").mkdir(parents=True)
    (root / "etc/humus/keys" / pub.name).write_bytes(pub.read_bytes())
    return root


def installed_box(dirpath: Path) -> dict:
    """A root with one installed release (1.0.0) and a trusted key: what the bundle and update tests start from."""
    from firmware.appliance import updater
    from firmware.appliance.release_layout import Layout
    key, pub = make_key(dirpath)
    root = make_root(dirpath, pub)
    layout = Layout.at(root)
    b1 = dirpath / "1.0.0.bundle"
    bundlemod.build_bundle(make_src(dirpath, "1.0.0"), key, "1.0.0", b1)
    updater.update(layout, b1)
    return {"tmp": dirpath, "key": key, "pub": pub, "root": root, "layout": layout}


def tree(root: Path) -> dict[str, str]:
    """Everything under root: file hashes and symlink targets (to prove 'nothing changed')."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath, n)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


def craft_bundle(out: Path, key: Path, members: list[tuple[tarfile.TarInfo, bytes | None]],
                 files: dict | None = None, version: str = "9.0.0", kind: str = "app",
                 mutate_manifest=None) -> Path:
    """A correctly signed manifest followed by arbitrary (possibly hostile) tar members."""
    if files is None:
        files = {ti.name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "mode": 0o644}
                 for ti, data in members if ti.isreg() and data is not None}
    manifest = {"format": FORMAT, "version": version, "kind": kind,
                "created": "2026-01-01T00:00:00Z", "files": files}
    if mutate_manifest:
        mutate_manifest(manifest)
    mbytes = json.dumps(manifest).encode()
    sk, name = load_signing_key(key)
    import base64
    sig = json.dumps({"format": SIG_FORMAT, "alg": "ed25519", "signer": name,
                      "key_id": key_id(bytes(sk.verify_key)),
                      "signature": base64.b64encode(sk.sign(mbytes).signature).decode()}).encode()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for n, data in (("bundle.json", mbytes), ("bundle.sig", sig)):
            ti = tarfile.TarInfo(n)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            else:
                tar.addfile(ti)
    return out


def reg(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode = len(data), 0o644
    return ti, data


FAKE_SYSTEMCTL = r'''#!{python}
"""Stands in for systemctl: 'restart' starts the 'service', which writes the status file
for whatever release `current` points at; versions in $FAKE_BAD report a fault."""
import json, os, sys, time
sys.path.insert(0, {repo!r})
from firmware.appliance.statusfile import StatusWriter
root = os.environ["FAKE_ROOT"]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\n")
if sys.argv[1] == "is-active":
    print(os.environ.get("FAKE_ACTIVE", "active"))
elif sys.argv[1] == "restart":
    cur = os.path.realpath(os.path.join(root, "opt/humus/current"))
    version = json.load(open(os.path.join(cur, "release.json")))["version"]
    w = StatusWriter(os.path.join(root, "run/humus/status.json"))
    bad = version in os.environ.get("FAKE_BAD", "").split(",")
    w.update(state="fault" if bad else "running", release=version, fps=12.0, engine="tensorrt")
    if bad:
        w.fault("model produced NaN")
    w.flush(force=True)
'''


def fake_systemctl(dirpath: Path) -> Path:
    p = dirpath / "fake-systemctl"
    p.write_text(FAKE_SYSTEMCTL.format(python=sys.executable, repo=str(REPO)))
    p.chmod(0o755)
    return p


def test_crafted_bundle_with_honest_members_verifies(tmp_path):
    key, pub = make_key(tmp_path)
    b = craft_bundle(tmp_path / "ok.bundle", key, [reg("app/firmware/__init__.py", b"x = 1\n")])
    trusted = load_trusted_keys(tmp_path)
    v = bundlemod.open_bundle(b, trusted)
    assert v.version == "9.0.0" and list(v.manifest["files"]) == ["app/firmware/__init__.py"]
