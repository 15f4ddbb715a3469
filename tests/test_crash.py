"""Power cuts at every disk operation (firmware/crash): the seam, the disk models, the whole run."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import firmware
from firmware.appliance import fsops as fs
from firmware.appliance import releases as rel
from firmware.appliance import updater
from firmware.appliance.atomic import write_atomic
from firmware.appliance.state import mark_failed, mark_healthy
from firmware.crash import run_power_cuts
from firmware.crash.disk import SimDisk, differences, read_tree
from firmware.crash.record import Recorder

PKG = Path(firmware.__file__).parent


# --- the seam: nothing that writes on the box goes around fsops --------------------------------------

BOX_WRITERS = sorted(p for p in (PKG / "appliance").glob("*.py") if p.name != "fsops.py") + \
    [PKG / "generate/trt.py", PKG / "generate/engines.py", PKG / "status_publisher.py"]
OS_WRITES = {"replace", "rename", "renames", "symlink", "link", "unlink", "remove", "removedirs", "rmdir", "mkdir",
             "makedirs", "fsync", "fdatasync", "write", "truncate", "ftruncate", "chmod", "fchmod", "open"}
PATH_WRITES = {"write_text", "write_bytes", "mkdir", "unlink", "rmdir", "touch", "symlink_to", "hardlink_to",
               "rename", "chmod"}
ALLOWED = {("commands.py", "os.open"): "dup's /dev/null over a closed stdout: no file is written"}


def bare_writes(text: str, name: str) -> list[str]:
    """Calls in `text` that write to a disk without going through fsops (`fs.`/`fsops.`)."""
    out = []
    for node in ast.walk(ast.parse(text)):
        what = None
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            what = next((m for m in mods if m in ("compileall", "tempfile", "py_compile")), None)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            attr = node.func.attr
            if owner == "os" and attr in OS_WRITES or owner == "shutil" and attr in ("rmtree", "move") \
                    or owner == "shutil" and attr.startswith("copy"):
                what = f"{owner}.{attr}"
            elif attr in PATH_WRITES and owner not in ("fs", "fsops", "os"):
                what = f".{attr}"
            elif owner == "tarfile" and attr == "open" and not any(k.arg == "fileobj" for k in node.keywords):
                what = _write_mode(node) and "tarfile.open"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
            what = _write_mode(node) and "open"
        if what and (name, what) not in ALLOWED:
            out.append(f"{name}:{node.lineno}: {what}")
    return out


def _write_mode(call: ast.Call) -> bool:
    modes = [a for a in call.args[1:2]] + [k.value for k in call.keywords if k.arg == "mode"]
    return any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax+") for m in modes)


def test_every_write_on_the_box_goes_through_the_seam():
    found = [w for p in BOX_WRITERS for w in bare_writes(p.read_text(), p.name)]
    assert found == [], "write through firmware.appliance.fsops instead: " + ", ".join(found)


def test_the_seam_lint_sees_a_bare_write():
    text = ('import compileall\nx.write_text("a")\nos.replace(a, b)\nopen(p, "wb")\nopen(p, "rb")\n'
            'fs.unlink(p)\nshutil.copy2(a, b)\ntarfile.open(p, "w")\ntarfile.open(fileobj=f, mode="w")\n')
    assert sorted(bare_writes(text, "m.py")) == ["m.py:1: compileall", "m.py:2: .write_text", "m.py:3: os.replace",
                                                 "m.py:4: open", "m.py:7: shutil.copy2", "m.py:8: tarfile.open"]


# --- the disk models -----------------------------------------------------------------------------------

def test_what_survives_under_each_model(tmp_path):
    """write, rename, then the file's fsync, then the folder's: what a cut after each step leaves."""
    (tmp_path / "x").write_bytes(b"old")
    initial = read_tree(tmp_path)
    rec = Recorder(tmp_path)
    with fs.use(rec):
        with fs.create(tmp_path / "t") as f:
            f.write(b"hello")
        fs.rename(tmp_path / "t", tmp_path / "x")
        n_renamed = len(rec.ops)
        fs.fsync_file(tmp_path / "x")
        n_synced = len(rec.ops)
        fs.fsync_dir(tmp_path)

    def after(n, model):
        disk = SimDisk(initial)
        for op in rec.ops[:n]:
            disk.apply(op)
        return disk.view(model).get("x", (None, None, None))[2]
    assert after(n_renamed, "strict") == b"old"          # the rename is not synced: the old file
    assert after(n_renamed, "writeback") == b""          # the rename landed before the data
    assert after(n_renamed, "torn") == b"hel\0\0"        # half the data, zeros after
    assert after(n_renamed, None) == b"hello"            # what the running system sees
    assert after(n_synced, "strict") == b"old" and after(n_synced, "writeback") == b"hello"
    assert after(len(rec.ops), "strict") == b"hello"


def test_a_rename_lands_whole_with_either_folder_and_takes_its_mkdir_along(tmp_path):
    (tmp_path / "b").mkdir()
    initial = read_tree(tmp_path)
    rec = Recorder(tmp_path)
    with fs.use(rec):
        fs.mkdir(tmp_path / "a")
        with fs.create(tmp_path / "a/f") as f:
            f.write(b"data")
            f.fsync()
        fs.fsync_dir(tmp_path / "a")
        fs.rename(tmp_path / "a", tmp_path / "b/a")
        fs.fsync_dir(tmp_path / "b")
    disk = SimDisk(initial)
    for op in rec.ops:
        disk.apply(op)
    strict = disk.view("strict")
    assert strict["b/a/f"][2] == b"data" and "a" not in strict
    assert differences(disk.view(None), read_tree(tmp_path)) == []


def test_a_replay_reproduces_links_modes_and_removals(tmp_path):
    (tmp_path / "d/e").mkdir(parents=True)
    (tmp_path / "d/e/old").write_bytes(b"1")
    initial = read_tree(tmp_path)
    with fs.use(Recorder(tmp_path)) as rec:
        write_atomic(tmp_path / "d/f", b"contents", mode=0o640)
        fs.link(tmp_path / "d/f", tmp_path / "g")
        fs.symlink("d/f", tmp_path / "h")
        fs.makedirs(tmp_path / "p/q", durable=True)
        fs.copy_file(tmp_path / "d/f", tmp_path / "p/q/c", 0o600)
        fs.chmod(tmp_path / "p/q/c", 0o755)
        fs.rmtree(tmp_path / "d/e")
    disk = SimDisk(initial)
    for op in rec.ops:
        disk.apply(op)
    assert differences(disk.view(None), read_tree(tmp_path)) == []


# --- the whole run ----------------------------------------------------------------------------------------

# The fsync call sites a power cut shows to be needed: leaving one out must fail a check.
NEEDED = {"atomic.write_atomic (file) <- state._record", "atomic.write_atomic (dir) <- state._record",
          "atomic.write_atomic (file) <- trt.cached_engine", "atomic.write_atomic (dir) <- trt.cached_engine",
          "atomic.write_atomic (file) <- statusfile.flush", "atomic.write_atomic (file) <- bootstrap.ensure_file",
          "releases._fsync_tree (file)", "releases._fsync_tree (dir)", "releases.locked (dir)",
          "trt.cached_engine (dir)"}


@pytest.fixture(scope="module")
def report():
    return run_power_cuts()


def test_every_cut_boots_a_verified_release_and_passes_every_check(report):
    for s in report["scenarios"]:
        assert s["replay_differs"] == [], f"{s['name']}: a write went around the seam"
        assert s["states"] == 3 * (s["ops"] + 1)                     # every prefix, every model
        assert s["failing"] == 0 and s["boots_verified"] == s["states"], s["examples"]
    assert {s["name"] for s in report["scenarios"]} == \
        {"install", "update", "auto-rollback", "rollback", "recover", "first-boot", "show"}
    assert report["ok"]


def test_leaving_out_a_needed_fsync_is_detected_and_every_other_is_explained(report):
    by_site = {m["site"]: m for m in report["mutations"]}
    assert NEEDED <= set(by_site)
    assert {s for s in NEEDED if not by_site[s]["detected"]} == set()
    assert report["unexplained"] == [], [by_site[s]["why"] for s in report["unexplained"]]


def _old_conclude(layout, version, verdict, report, restart, say):
    """updater._conclude as it was: the verdict written before the previous release is back."""
    report.health = verdict.reason
    if verdict.ok:
        mark_healthy(layout, version, verdict.reason)
        return
    mark_failed(layout, version, verdict.reason)
    rel.activate(layout, report.previous)
    restart()
    raise updater.UpdateFailed(f"release {version} failed its health check")


def test_the_harness_finds_a_rollback_that_writes_its_verdict_first(monkeypatch):
    monkeypatch.setattr(updater, "_conclude", _old_conclude)
    s = run_power_cuts(["auto-rollback"], mutations=False)["scenarios"][0]
    assert s["failing"] > 0 and "2.0.0 is current but marked failed" in s["examples"][0]


def test_the_harness_finds_an_engine_cache_folder_made_without_fsync(monkeypatch):
    plain = fs.makedirs
    monkeypatch.setattr(fs, "makedirs", lambda path, mode=0o777, durable=False: plain(path, mode))
    s = run_power_cuts(["first-boot"], mutations=False)["scenarios"][0]
    assert s["failing"] > 0 and "the engine built before the cut is gone" in s["examples"][0]


def test_humus_soak_power_cuts_prints_the_figures(capsys):
    from firmware.cli import main
    assert main(["soak", "--power-cuts", "--scenario", "rollback", "--no-mutations"]) == 0
    out = capsys.readouterr().out
    row = re.search(r"rollback\s+(\d+)\s+(\d+)\s+\d+\s+(\d+)\s+0\n", out)
    assert row and int(row[2]) == int(row[3]) == 3 * (int(row[1]) + 1), out
    assert "every cut boots a verified release" in out
    assert main(["soak", "--power-cuts", "--scenario", "nope"]) == 2
