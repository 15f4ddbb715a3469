"""Hostile update bundles signed with the right key (issue 13): whatever passes the signature must still
be refused with a BundleError/ReleaseError naming the problem, leave no .staging-* behind and keep the
running release. Each case also runs once through the CLI: exit 1, no traceback."""
from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from firmware.appliance import bundle as bundlemod
from firmware.appliance import commands
from firmware.appliance import releases as rel
from firmware.appliance import updater
from firmware.appliance.bundle_schema import BundleError, check_version, version_key
from firmware.appliance.release_layout import Layout, ReleaseError, current_version, read_release
from test_appliance_support import craft_bundle, installed_box, make_key, make_root, make_src, reg, tree


@pytest.fixture
def box(tmp_path):
    """A root with one installed release (1.0.0) and a trusted key; returns helpers."""
    return installed_box(tmp_path)


def refused_everywhere(box, bundle, match, capsys):
    """Refused by the updater (nothing changed on disk) and by `humus update` (exit 1, one line)."""
    before = tree(box["root"])
    with pytest.raises((BundleError, ReleaseError), match=match):
        updater.update(box["layout"], bundle)
    assert tree(box["root"]) == before
    capsys.readouterr()
    assert commands.main(["update", str(bundle), "--root", str(box["root"])]) == 1
    err = capsys.readouterr().err
    assert "update refused" in err and "Traceback" not in err
    assert tree(box["root"]) == before and not list(box["layout"].base.glob(".staging-*"))
    assert current_version(box["layout"]) == "1.0.0"


BAD_VERSIONS = ["2.0.0\n", "\u0662.0.0", "\uff12.0.0", "2.0.\u0660", "1." + "9" * 298, "9" * 5000,
                "2.0.0-" + "a" * 300, "2.0.0 ", "", "v2.0.0", "2..0", "1.2.3.4.5", "2.0.0-rc1\n"]


@pytest.mark.parametrize("version", BAD_VERSIONS, ids=range(len(BAD_VERSIONS)))
def test_versions_are_ascii_bounded_and_anchored(box, version, capsys):
    b = craft_bundle(box["tmp"] / "v.bundle", box["key"], [reg("app/firmware/a.py", b"a")], version=version)
    refused_everywhere(box, b, r"version .* is not like 1\.2\.0", capsys)


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=70))
def test_check_version_accepts_only_the_documented_ascii_form(text):
    import re
    documented = re.fullmatch(r"[0-9]{1,9}(\.[0-9]{1,9}){0,3}([-+][0-9A-Za-z]+(\.[0-9A-Za-z]+)*)?", text,
                              flags=re.ASCII) and len(text) <= 64
    try:
        check_version(text)
        assert documented, text
        version_key(text)
    except BundleError:
        assert not documented, text


def _payload_case(case):
    if case == "file-and-dir":
        return [reg("app/firmware/x", b"a"), reg("app/firmware/x/y.py", b"b")], r"both a file and a directory"
    if case == "long-name":
        return [reg("app/firmware/" + "n" * 300, b"a")], r"name over 200 bytes"
    if case == "long-path":
        return [reg("app/" + "/".join(["d" * 99] * 50) + "/f.py", b"a")], r"path of \d+ bytes"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["file-and-dir", "long-name", "long-path"])
def test_unextractable_payload_paths_are_refused(box, case, capsys):
    members, match = _payload_case(case)
    b = craft_bundle(box["tmp"] / "p.bundle", box["key"], members, version="2.0.0")
    refused_everywhere(box, b, match, capsys)


def test_a_size_that_is_a_bool_is_not_coerced(box, capsys):
    data = b"a"
    files = {"app/firmware/a.py": {"sha256": hashlib.sha256(data).hexdigest(), "size": True, "mode": 0o644}}
    b = craft_bundle(box["tmp"] / "b.bundle", box["key"], [reg("app/firmware/a.py", data)], files=files,
                     version="2.0.0")
    refused_everywhere(box, b, r"needs sha256", capsys)


@pytest.mark.parametrize("header", ["pax", "gnu-longname"])
def test_huge_tar_headers_are_refused_before_they_are_read(box, header, capsys):
    b = craft_bundle(box["tmp"] / "h.bundle", box["key"], [reg("app/firmware/a.py", b"a")], version="2.0.0")
    ti = tarfile.TarInfo("app/firmware/" + ("n" * 200_000 if header == "gnu-longname" else "b.py"))
    ti.size = 1
    if header == "pax":
        ti.pax_headers = {"comment": "x" * 200_000}
    # the hostile member goes after the honest, signed ones
    with tarfile.open(b) as src:
        members = [(m, src.extractfile(m).read()) for m in src.getmembers()]
    fmt = tarfile.PAX_FORMAT if header == "pax" else tarfile.GNU_FORMAT
    with tarfile.open(b, "w", format=fmt) as out:
        for m, d in members:
            out.addfile(m, io.BytesIO(d))
        out.addfile(ti, io.BytesIO(b"z"))
    refused_everywhere(box, b, r"extended header of \d+ bytes, over the limit", capsys)


def test_modes_are_normalised_whatever_the_signed_manifest_says(box):
    members = [reg("app/firmware/__init__.py", b'__version__ = "2.0.0"\n'), reg("app/firmware/run", b"#!x\n"),
               reg("app/firmware/data.txt", b"d")]
    files = {ti.name: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d), "mode": m}
             for (ti, d), m in zip(members, (0o777, 0o711, 0o666))}
    b = craft_bundle(box["tmp"] / "m.bundle", box["key"], members, files=files, version="2.0.0")
    updater.update(box["layout"], b)
    cur = box["layout"].current
    modes = {n: stat.S_IMODE((cur / n).stat().st_mode) for n in files}
    assert modes == {"app/firmware/__init__.py": 0o755, "app/firmware/run": 0o755, "app/firmware/data.txt": 0o644}
    assert {e["mode"] for e in read_release(cur)["files"].values()} <= {0o644, 0o755}


def test_enospc_during_extraction_removes_staging_and_says_disk_full(box, monkeypatch, capsys):
    b = box["tmp"] / "2.0.0.bundle"
    bundlemod.build_bundle(make_src(box["tmp"], "2.0.0", extra=b"x" * 100_000), box["key"], "2.0.0", b)
    real = bundlemod._copy_hashed

    def full_disk(src, dst, name, expected):
        if dst is not None and name.endswith("show.py"):
            dst.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), dst.name)
        return real(src, dst, name, expected)
    monkeypatch.setattr(bundlemod, "_copy_hashed", full_disk)
    before = tree(box["root"] / "opt/humus/releases")
    assert commands.main(["update", str(b), "--root", str(box["root"])]) == 1
    err = capsys.readouterr().err
    assert "disk full (ENOSPC)" in err and "removed the staging folder" in err and "Traceback" not in err
    assert not list(box["layout"].base.glob(".staging-*"))
    assert tree(box["root"] / "opt/humus/releases") == before
    assert current_version(box["layout"]) == "1.0.0"


def test_bundle_modified_during_extraction_removes_staging(box, monkeypatch, capsys):
    b = box["tmp"] / "2.0.0.bundle"
    bundlemod.build_bundle(make_src(box["tmp"], "2.0.0", extra=b"x" * 100_000), box["key"], "2.0.0", b)

    def tamper(step):   # between verification and extraction, someone rewrites the payload
        if step == "staging":
            data = bytearray(b.read_bytes())
            i = data.index(b"x" * 1000)
            data[i:i + 4] = b"EVIL"
            b.write_bytes(bytes(data))
    monkeypatch.setattr(rel, "crashpoint", tamper)
    assert commands.main(["update", str(b), "--root", str(box["root"])]) == 1
    err = capsys.readouterr().err
    assert "does not match the signed manifest" in err and "removed the staging folder" in err
    assert not list(box["layout"].base.glob(".staging-*"))
    assert current_version(box["layout"]) == "1.0.0"


names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.lists(names, min_size=1, max_size=4), st.integers(0, 0o7777)),
                min_size=1, max_size=4))
def test_any_signed_payload_paths_install_cleanly_or_are_refused(tmp_path_factory, entries):
    """Signed manifests listing arbitrary paths and modes: installed (files 0644/0755, inside the
    release) or refused with nothing left behind -- never a traceback or a staging folder."""
    tmp = tmp_path_factory.mktemp("p")
    key, pub = make_key(tmp)
    root = make_root(tmp, pub)
    members, files = [], {}
    for parts, mode in entries:
        name = "app/" + "/".join(parts)
        ti, data = reg(name, name.encode("utf-8", "replace")[:50])
        members.append((ti, data))
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "mode": mode}
    b = craft_bundle(tmp / "x.bundle", key, members, files=files, version="2.0.0")
    layout = Layout.at(root)
    try:
        updater.update(layout, b)
    except (BundleError, ReleaseError):
        assert current_version(layout) is None
    else:
        cur = layout.current.resolve()
        for dirpath, _, fnames in os.walk(cur):
            for f in fnames:
                p = os.path.join(dirpath, f)
                assert os.path.realpath(p).startswith(str(cur) + os.sep)
                if not f.endswith(".pyc") and f not in ("release.json", "bundle.json", "bundle.sig"):
                    assert stat.S_IMODE(os.stat(p).st_mode) in (0o644, 0o755)
    assert not list(layout.base.glob(".staging-*"))


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory"])
def test_a_bundle_path_that_is_not_a_regular_file_is_refused(box, kind, capsys):
    path = {"dev-zero": "/dev/zero", "fifo": box["tmp"] / "fifo", "directory": box["tmp"]}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    refused_everywhere(box, path, r"not a regular file", capsys)
