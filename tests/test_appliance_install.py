"""install.sh device mode, rehearsed into a directory with a fake /etc/nv_tegra_release."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib

import pytest

from firmware.appliance.release_layout import Layout, current_version, previous_version, read_release, verify_release
from test_appliance_support import REPO, make_key, tree

TEGRA = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 2025\n"
EXAMPLE = REPO / "firmware/data/humus.example.toml"


def install(root, *args, env=None):
    e = {**os.environ, "HUMUS_SKIP_PIP": "1", "PYTHON": sys.executable, **(env or {})}
    return subprocess.run([str(REPO / "install.sh"), "--root", str(root), *args], capture_output=True,
                          text=True, env=e, timeout=120)


@pytest.fixture
def jetson(tmp_path):
    root = tmp_path / "box"
    (root / "etc").mkdir(parents=True)
    (root / "etc/nv_tegra_release").write_text(TEGRA)
    return root


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """One real install into a tree, shared by the read-only assertions below."""
    tmp = tmp_path_factory.mktemp("inst")
    root = tmp / "box"
    (root / "etc").mkdir(parents=True)
    (root / "etc/nv_tegra_release").write_text(TEGRA)
    _, pub = make_key(tmp, "studio")
    r = install(root, "--key", str(pub))
    assert r.returncode == 0, r.stdout + r.stderr
    return root, r.stdout


def test_dry_run_shows_the_plan_and_changes_nothing(jetson):
    before = tree(jetson)
    r = install(jetson, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert tree(jetson) == before
    for expected in ("Jetson detected: # R36", "would add user humus", "would run: " ,
                     "would install:", "humus.service", "99-humus.rules",
                     "would link: " + str(jetson / "etc/systemd/system/default.target"),
                     "skipped (--root): apt-get install", "skipped (--root): systemctl restart humus.service"):
        assert expected in r.stdout, expected


def test_units_rules_and_journald_are_laid_down_verbatim(installed):
    root, _ = installed
    for src, dest in [("systemd/humus.service", "etc/systemd/system/humus.service"),
                      ("systemd/humus-safe.service", "etc/systemd/system/humus-safe.service"),
                      ("systemd/udev/99-humus.rules", "etc/udev/rules.d/99-humus.rules"),
                      ("systemd/journald-humus.conf", "etc/systemd/journald.conf.d/humus.conf")]:
        assert (root / dest).read_bytes() == (REPO / src).read_bytes(), dest
        assert (root / dest).stat().st_mode & 0o777 == 0o644


def test_service_enabled_and_kiosk_has_no_desktop_or_getty(installed):
    root, _ = installed
    sysd = root / "etc/systemd/system"
    assert os.readlink(sysd / "multi-user.target.wants/humus.service") == "/etc/systemd/system/humus.service"
    assert os.readlink(sysd / "default.target") == "/lib/systemd/system/multi-user.target"
    for masked in ("gdm3.service", "gdm.service", "lightdm.service", "getty@tty1.service"):
        assert os.readlink(sysd / masked) == "/dev/null"


def test_user_and_groups_written_into_the_tree(installed):
    root, _ = installed
    passwd = (root / "etc/passwd").read_text().splitlines()
    user = [ln for ln in passwd if ln.startswith("humus:")]
    assert len(user) == 1 and user[0].endswith(":/var/lib/humus:/usr/sbin/nologin")
    groups = {ln.split(":")[0]: ln.split(":")[3].split(",") for ln in (root / "etc/group").read_text().splitlines()}
    for g in ("video", "dialout", "gpio", "render"):
        assert "humus" in groups[g], g
    assert "humus" in groups


def test_venv_uses_system_site_packages_and_launchers_run_current(installed):
    root, _ = installed
    cfg = (root / "opt/humus/venv/pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg
    launcher = (root / "opt/humus/venv/bin/humus").read_text()
    assert launcher.startswith("#!/opt/humus/venv/bin/python\n") and "from firmware.cli import main" in launcher
    assert os.access(root / "opt/humus/venv/bin/humus", os.X_OK)
    pth = list((root / "opt/humus/venv/lib").glob("python3*/site-packages/humus-current.pth"))
    assert len(pth) == 1 and pth[0].read_text() == "/opt/humus/current/app\n"
    assert os.readlink(root / "usr/local/bin/humus") == "/opt/humus/venv/bin/humus"


def test_first_release_is_the_checkout_and_valid(installed):
    root, _ = installed
    layout = Layout.at(root)
    v = current_version(layout)
    assert v and v.endswith("+local")
    assert verify_release(layout.current) == []
    assert (layout.current / "app/firmware/appliance/releases.py").read_bytes() == \
           (REPO / "firmware/appliance/releases.py").read_bytes()
    assert read_release(layout.current)["bundle"]["signer"] == "install.sh (local)"


def test_config_and_keys(installed):
    root, _ = installed
    assert (root / "etc/humus/keys/studio.pub").read_text().startswith("humus-ed25519 ")
    if not EXAMPLE.exists():
        pytest.skip("firmware/data/humus.example.toml not in this checkout yet")
    assert (root / "etc/humus/humus.toml").read_bytes() == EXAMPLE.read_bytes()


def test_second_run_is_idempotent_and_keeps_an_edited_config(jetson, tmp_path):
    _, pub = make_key(tmp_path)
    r1 = install(jetson, "--key", str(pub))
    assert r1.returncode == 0, r1.stderr
    config = jetson / "etc/humus/humus.toml"
    if config.exists():
        config.write_text(config.read_text() + "\n# edited by the venue tech\n")
    before = tree(jetson)
    r2 = install(jetson, "--key", str(pub))
    assert r2.returncode == 0, r2.stderr
    assert tree(jetson) == before
    actions = [ln for ln in r2.stdout.splitlines()
               if ln.lstrip().startswith(("installed:", "linked:", "wrote ", "added ", "would "))]
    assert actions == []
    assert "kept: " in r2.stdout or not EXAMPLE.exists()


def test_root_without_tegra_release_is_refused(tmp_path):
    r = install(tmp_path)
    assert r.returncode == 2 and "nv_tegra_release" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_rejects_a_key_that_is_not_a_humus_key(jetson, tmp_path):
    bogus = tmp_path / "id_rsa.pub"
    bogus.write_text("ssh-rsa AAAA... tech@laptop\n")
    r = install(jetson, "--key", str(bogus))
    assert r.returncode == 1 and "not a humus public key" in r.stderr


def test_rehearsed_update_on_the_installed_tree(installed, tmp_path):
    """The installed tree accepts a bundle signed by the key given to install.sh."""
    root, _ = installed
    import shutil
    box = tmp_path / "copy"
    shutil.copytree(root, box, symlinks=True)
    key = root.parent / "studio.key"
    from firmware.appliance import bundle as bundlemod
    b = tmp_path / "next.bundle"
    bundlemod.build_bundle(REPO, key, "99.0.0", b, kind="app")
    r = subprocess.run([sys.executable, "-m", "firmware.appliance.commands", "update", str(b), "--root", str(box)],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    layout = Layout.at(box)
    assert current_version(layout) == "99.0.0" and previous_version(layout).endswith("+local")


def test_dev_mode_dry_run_is_unchanged(tmp_path):
    """On a plain dev machine install.sh still plans the .venv install and nothing device-related."""
    r = subprocess.run([str(REPO / "install.sh"), "--dry-run"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "HUMUS_VENV": str(tmp_path / "venv")})
    assert r.returncode == 0, r.stderr
    assert "creating virtual environment" in r.stdout and "would run:" in r.stdout
    assert f"-m pip install --quiet -e {REPO}[cpu,train,dev]" in r.stdout
    assert "Jetson" not in r.stdout and "humus.service" not in r.stdout
    assert not (tmp_path / "venv").exists()


def test_jetson_requirements_cover_pyproject_dependencies():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    listed = (REPO / "systemd/requirements-jetson.txt").read_text().lower()
    for dep in deps:
        name = re.match(r"[A-Za-z0-9_.-]+", dep).group(0).lower()
        assert re.search(rf"^{re.escape(name)}\b", listed, re.M), f"{name} missing from requirements-jetson.txt"


def test_doctor_on_the_installed_tree(installed):
    root, _ = installed
    r = subprocess.run([sys.executable, "-m", "firmware.appliance.commands", "doctor", "--root", str(root), "--json"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["release"]["ok"] is True and rows["update keys"]["ok"] is True and "studio" in rows["update keys"]["detail"]
    assert rows["user"]["ok"] is True and rows["display"]["ok"] is True
    assert rows["service"]["ok"] is None                      # no systemd in a rehearsal
    if EXAMPLE.exists():
        assert rows["config"]["ok"] in (True, None), rows["config"]


def test_doctor_says_what_to_fix_and_survives_a_crashing_check(tmp_path):
    from firmware.appliance import doctor
    ctx = doctor.Context(root=tmp_path, on_box=False)

    def boom(ctx):
        raise RuntimeError("sensor exploded")

    results = doctor.run_checks(ctx, [doctor.check_release, doctor.check_keys, boom])
    by = {r.name: r for r in results}
    assert by["release"].ok is False and "humus update" in by["release"].fix_hint
    assert by["update keys"].ok is False and "--key" in by["update keys"].fix_hint
    assert by["boom"].ok is False and "sensor exploded" in by["boom"].detail
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/group").write_text("video:x:44:humus\ndialout:x:20:\n")
    r = doctor.check_user(ctx)
    assert r.ok is False and "dialout, gpio, render" in r.detail and "usermod -aG dialout,gpio,render humus" in r.fix_hint


def test_doctor_report_marks_each_row_and_puts_the_fix_under_a_failure():
    from firmware.check_result import CheckResult, render
    text = render([CheckResult("release", True, "1.2.0 intact"), CheckResult("gpu", None, "not checked"),
                   CheckResult("update keys", False, "no *.pub", "copy the studio's public key")])
    assert text.splitlines() == ["[ok  ] release          1.2.0 intact",
                                 "[skip] gpu              not checked",
                                 "[FAIL] update keys      no *.pub",
                                 "       fix: copy the studio's public key",
                                 "1 problem(s)"]
    assert render([CheckResult("release", True, "ok")]).endswith("all checks passed")


def test_gpu_mode_dry_run_swaps_onnxruntime_for_the_gpu_build(tmp_path):
    """A studio workstation: the gpu extra in place of cpu, CUDA torch's index, and the CPU onnxruntime
    removed first (both builds install the module onnxruntime; the CPU one would shadow the GPU one)."""
    r = subprocess.run([str(REPO / "install.sh"), "--dry-run", "--gpu"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "HUMUS_VENV": str(tmp_path / "venv"), "HUMUS_TORCH_INDEX": "file:///idx"})
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"-m pip install --quiet --extra-index-url file:///idx -e {REPO}[gpu,train,dev]" in out
    assert out.index("pip uninstall --quiet --yes onnxruntime") < out.index("[gpu,train,dev]")
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("onnxruntime-gpu") for d in extras["gpu"])
    assert not any(re.match(r"onnxruntime\b(?!-)", d) for d in extras["gpu"])
    assert not (tmp_path / "venv").exists()
