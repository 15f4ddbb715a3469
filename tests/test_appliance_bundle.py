"""Signed bundles: build, verify, and every way a box must refuse one with nothing changed."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile

import pytest

from firmware.appliance import bundle as bundlemod
from firmware.appliance import updater
from firmware.appliance.bundle_keys import load_trusted_keys
from firmware.appliance.bundle_schema import BundleError, check_version, version_key
from firmware.appliance.release_layout import ReleaseError, current_version
from test_appliance_support import REPO, craft_bundle, installed_box, make_key, make_src, reg, tree


@pytest.fixture
def box(tmp_path):
    """A root with one installed release (1.0.0) and a trusted key; returns helpers."""
    return installed_box(tmp_path)


def refused(box, bundle_path, match, **kw):
    """Assert the update is refused with `match` in the message and the root is byte-identical."""
    before = tree(box["root"])
    with pytest.raises((BundleError, ReleaseError), match=match):
        updater.update(box["layout"], bundle_path, **kw)
    assert tree(box["root"]) == before
    assert current_version(box["layout"]) == "1.0.0"


def good(box, version="2.0.0", **kw):
    out = box["tmp"] / f"{version}.bundle"
    bundlemod.build_bundle(make_src(box["tmp"], version, **kw), box["key"], version, out)
    return out


# --- build / verify --------------------------------------------------------------------------

def test_keygen_cli_writes_private_0600_and_refuses_to_overwrite(tmp_path):
    cli = [sys.executable, "-m", "firmware.appliance.release_cli"]
    r = subprocess.run(cli + ["keygen", str(tmp_path / "studio")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    key, pub = tmp_path / "studio.key", tmp_path / "studio.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert pub.read_text().startswith("humus-ed25519 ") and "humus-ed25519-private " in key.read_text()
    again = subprocess.run(cli + ["keygen", str(tmp_path / "studio")], capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 1 and "not overwriting" in again.stderr


def test_build_cli_from_checkout_then_verify(tmp_path):
    key, pub = make_key(tmp_path)
    out = tmp_path / "fw.bundle"
    cli = [sys.executable, "-m", "firmware.appliance.release_cli"]
    r = subprocess.run(cli + ["build", str(REPO), "--key", str(key), "--version", "1.4.0", "--kind", "app",
                              "-o", str(out)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert names[:2] == ["bundle.json", "bundle.sig"]
    assert "app/firmware/appliance/bundle.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    v = subprocess.run(cli + ["verify", str(out), "--keys", str(pub)], capture_output=True, text=True, cwd=REPO)
    assert v.returncode == 0 and "app 1.4.0" in v.stdout, v.stderr
    other_key, other_pub = make_key(tmp_path / "..", "someone-else")
    v = subprocess.run(cli + ["verify", str(out), "--keys", str(other_pub)], capture_output=True, text=True, cwd=REPO)
    assert v.returncode == 1 and "unknown key" in v.stderr


def test_manifest_lists_every_file_with_sha256(tmp_path):
    key, pub = make_key(tmp_path)
    src = make_src(tmp_path, "1.0.0")
    m = bundlemod.build_bundle(src, key, "1.0.0", tmp_path / "b")
    assert m["kind"] == "both"
    import hashlib
    for name in ("app/firmware/__init__.py", "app/firmware/show.py", "models/decay/unet.onnx"):
        assert m["files"][name]["sha256"] == hashlib.sha256((src / name).read_bytes()).hexdigest()
        assert m["files"][name]["size"] == (src / name).stat().st_size


def test_build_refuses_symlinks_in_source(tmp_path):
    key, _ = make_key(tmp_path)
    src = make_src(tmp_path, "1.0.0")
    os.symlink("/etc/passwd", src / "app/firmware/passwd")
    with pytest.raises(BundleError, match="passwd"):
        bundlemod.build_bundle(src, key, "1.0.0", tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_versions_order():
    k = version_key
    assert k("1.2.0-rc1") < k("1.2.0") < k("1.2.1") < k("1.10.0") < k("2")
    for bad in ("../1", "1.0/x", "v1", "", "1.0-a..b"):
        with pytest.raises(BundleError):
            check_version(bad)


# --- every rejection, nothing changed --------------------------------------------------------

def test_rejects_unknown_key(box):
    stranger, _ = make_key(box["tmp"] / "..", "stranger")
    out = box["tmp"] / "s.bundle"
    bundlemod.build_bundle(make_src(box["tmp"], "2.0.0"), stranger, "2.0.0", out)
    refused(box, out, r"unknown key [0-9a-f]{16} \(stranger\)")


def test_rejects_bad_signature(box):
    b = good(box)
    data = b.read_bytes()
    i = data.index(b'"version": "2.0.0"')
    b.write_bytes(data[:i] + b'"version": "2.0.1"' + data[i + 18:])   # same length: tar stays valid
    refused(box, b, "bad signature")


def test_rejects_corrupted_signature_from_trusted_key(box):
    b = craft_bundle(box["tmp"] / "x.bundle", box["key"], [reg("app/firmware/a.py", b"a")], version="2.0.0")
    raw = b.read_bytes()
    with tarfile.open(b) as tar:
        sig = json.loads(tar.extractfile("bundle.sig").read())["signature"]
    flipped = ("B" if sig[0] != "B" else "C") + sig[1:]          # same length: the tar stays valid
    b.write_bytes(raw.replace(sig.encode(), flipped.encode()))
    refused(box, b, "bad signature")


def test_rejects_tampered_file(box):
    b = good(box)
    data = bytearray(b.read_bytes())
    i = data.index(b"weights 2.0.0")
    data[i] = ord("W")
    b.write_bytes(bytes(data))
    refused(box, b, r"member 'models/decay/unet.onnx': sha256 .* tampered")


def test_rejects_missing_file(box):
    members = [reg("app/firmware/a.py", b"a")]
    files = {"app/firmware/a.py": {"sha256": __import__("hashlib").sha256(b"a").hexdigest(), "size": 1, "mode": 0o644},
             "app/firmware/b.py": {"sha256": "0" * 64, "size": 3, "mode": 0o644}}
    b = craft_bundle(box["tmp"] / "m.bundle", box["key"], members, files=files, version="2.0.0")
    refused(box, b, r"'app/firmware/b.py' listed in bundle.json is missing")


def test_rejects_unlisted_file(box):
    honest = [reg("app/firmware/a.py", b"a")]
    b = craft_bundle(box["tmp"] / "u.bundle", box["key"], honest + [reg("app/firmware/evil.py", b"x")],
                     files={"app/firmware/a.py": {"sha256": __import__("hashlib").sha256(b"a").hexdigest(),
                                                  "size": 1, "mode": 0o644}}, version="2.0.0")
    refused(box, b, r"'app/firmware/evil.py': not listed")


@pytest.mark.parametrize("name,match", [("/etc/cron.d/evil", "absolute path"),
                                        ("app/../../etc/passwd", r"'\.\.' in path"),
                                        ("../outside", r"'\.\.' in path")])
def test_rejects_hostile_paths(box, name, match):
    b = craft_bundle(box["tmp"] / "p.bundle", box["key"], [reg(name, b"pwned")], files={
        "app/firmware/a.py": {"sha256": "0" * 64, "size": 5, "mode": 0o644}}, version="2.0.0")
    refused(box, b, match)


def test_rejects_hostile_paths_even_when_signed_in_manifest(box):
    b = craft_bundle(box["tmp"] / "p.bundle", box["key"], [reg("app/../../etc/passwd", b"pwned")], version="2.0.0")
    refused(box, b, r"'\.\.' in path")


@pytest.mark.parametrize("kind,target", [(tarfile.SYMTYPE, "/etc/shadow"), (tarfile.SYMTYPE, "../../../etc"),
                                         (tarfile.LNKTYPE, "/etc/shadow")])
def test_rejects_links_pointing_out(box, kind, target):
    ti = tarfile.TarInfo("app/firmware/link")
    ti.type, ti.linkname = kind, target
    b = craft_bundle(box["tmp"] / "l.bundle", box["key"], [reg("app/firmware/a.py", b"a"), (ti, None)], version="2.0.0")
    refused(box, b, r"(symlink|hard link) to .* points outside the bundle")


@pytest.mark.parametrize("kind,match", [(tarfile.CHRTYPE, "device file"), (tarfile.BLKTYPE, "device file"),
                                        (tarfile.FIFOTYPE, "FIFO")])
def test_rejects_device_files(box, kind, match):
    ti = tarfile.TarInfo("app/firmware/mem")
    ti.type, ti.devmajor, ti.devminor = kind, 1, 1
    b = craft_bundle(box["tmp"] / "d.bundle", box["key"], [reg("app/firmware/a.py", b"a"), (ti, None)], version="2.0.0")
    refused(box, b, match)


def test_rejects_bundle_over_size_limit(box):
    b = good(box)
    refused(box, b, r"over the bundle size limit of 1000", max_bytes=1000)


@pytest.mark.parametrize("codec", ["gzip", "bz2", "lzma"])
def test_rejects_compressed_bundles_before_reading_any_header(box, codec):
    """A compressed bundle can be tiny on disk and huge unpacked (and tarfile decompresses headers
    to read them): compressed bundles are refused by their magic bytes, whatever is inside."""
    import importlib
    b = good(box)
    packed = box["tmp"] / f"2.0.0.bundle.{codec}"
    packed.write_bytes(importlib.import_module(codec).compress(b.read_bytes()))
    name = {"gzip": "gzip", "bz2": "bzip2", "lzma": "xz"}[codec]
    refused(box, packed, rf"{name}-compressed; bundles are plain tar files")


@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.6, 0.95])
def test_rejects_truncated_bundle(box, fraction):
    b = good(box)
    data = b.read_bytes()
    b.write_bytes(data[: int(len(data) * fraction)])
    refused(box, b, r"truncated|not a readable tar|missing from the bundle")


def test_rejects_downgrade_unless_forced(box):
    bundlemod.build_bundle(make_src(box["tmp"], "0.9.0"), box["key"], "0.9.0", box["tmp"] / "old.bundle")
    refused(box, box["tmp"] / "old.bundle", r"0\.9\.0 is older than the running 1\.0\.0; use --force")
    updater.update(box["layout"], box["tmp"] / "old.bundle", force=True)
    assert current_version(box["layout"]) == "0.9.0"


def test_rejects_same_version_with_different_content(box):
    out = box["tmp"] / "again.bundle"
    bundlemod.build_bundle(make_src(box["tmp"] / "..", "1.0.0", extra=b"changed"), box["key"], "1.0.0", out)
    refused(box, out, "running with different content; bump the version")


def test_rejects_when_no_key_is_trusted(box):
    b = good(box)
    (box["root"] / "etc/humus/keys/studio.pub").unlink()
    before = tree(box["root"])
    with pytest.raises(BundleError, match="no trusted public keys"):
        updater.update(box["layout"], b)
    assert tree(box["root"]) == before


def test_rejects_model_kind_with_app_files(box):
    b = craft_bundle(box["tmp"] / "k.bundle", box["key"], [reg("app/firmware/a.py", b"a")], kind="model",
                     version="2.0.0")
    refused(box, b, r"outside models/ \(kind 'model'\)")


def test_rejects_setuid_mode(box):
    import hashlib
    b = craft_bundle(box["tmp"] / "s.bundle", box["key"], [reg("app/firmware/a.py", b"a")], version="2.0.0",
                     files={"app/firmware/a.py": {"sha256": hashlib.sha256(b"a").hexdigest(), "size": 1,
                                                  "mode": 0o4755}})
    refused(box, b, "setuid")


def test_verification_writes_nothing_even_for_a_good_bundle(box):
    b = good(box)
    before = tree(box["root"])
    bundlemod.open_bundle(b, load_trusted_keys(box["layout"].keys_dir))
    assert tree(box["root"]) == before


def test_a_model_folders_studio_parts_stay_out_of_bundles(tmp_path):
    """eval/ (grids, figures) and train/ (the training state, tens of MB) are the studio's, not the box's."""
    m = tmp_path / "src" / "models" / "default"
    for rel_path in ("manifest.json", "student.onnx", "eval/grid.jpg", "train/teacher.safetensors",
                     "train/teacher.json", "sub/train/keep.bin"):
        (m / rel_path).parent.mkdir(parents=True, exist_ok=True)
        (m / rel_path).write_bytes(b"x")
    kind, files = bundlemod.collect_sources(tmp_path / "src", "model")
    assert sorted(files) == ["models/default/manifest.json", "models/default/student.onnx",
                             "models/default/sub/train/keep.bin"]
