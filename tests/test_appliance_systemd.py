"""systemd units (verify, security exposure), udev rules and the Ansible rollout playbook."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from test_appliance_support import REPO

SYSTEMD = REPO / "systemd"
UNITS = ("humus.service", "humus-safe.service")
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
MAX_EXPOSURE = 3.0


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd unit syntax: sections of KEY=VALUE, keys may repeat (DeviceAllow=...)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = out.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key, []).append(value)
    return out


def units_with_real_exec(tmp_path):
    """Copies of the units whose ExecStart points at an existing executable (verify checks it)."""
    exe = tmp_path / "opt/humus/venv/bin/humus"
    exe.parent.mkdir(parents=True)
    shutil.copy("/bin/true", exe)
    for u in UNITS:
        (tmp_path / u).write_text((SYSTEMD / u).read_text().replace("/opt/humus/venv/bin/humus", str(exe)))
    return tmp_path


@needs_analyze
def test_systemd_analyze_verify_passes(tmp_path):
    d = units_with_real_exec(tmp_path)
    r = subprocess.run([ANALYZE, "verify", "--man=false", *[str(d / u) for u in UNITS]], capture_output=True,
                       text=True, cwd=d, env={**os.environ, "SYSTEMD_UNIT_PATH": f"{d}:"}, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "humus" not in r.stderr, r.stderr        # no warnings about our units at all


@needs_analyze
def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path):
    """Guard against a verify that passes everything: a typo must fail it."""
    d = units_with_real_exec(tmp_path)
    (d / "humus.service").write_text((d / "humus.service").read_text().replace("Type=notify", "Type=notfy"))
    r = subprocess.run([ANALYZE, "verify", "--man=false", str(d / "humus.service")], capture_output=True, text=True,
                       cwd=d, env={**os.environ, "SYSTEMD_UNIT_PATH": f"{d}:"}, timeout=60)
    assert "notfy" in r.stderr


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_security_exposure_at_most_3(unit, tmp_path):
    d = units_with_real_exec(tmp_path)
    r = subprocess.run([ANALYZE, "security", "--offline=true", "--threshold=30", "--no-pager", str(d / unit)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, r.stdout[-2000:] + r.stderr
    exposure = float(m.group(1))
    print(f"{unit}: exposure {exposure}")
    assert exposure <= MAX_EXPOSURE
    assert r.returncode == 0


def test_humus_service_contract():
    u = parse_unit((SYSTEMD / "humus.service").read_text())
    unit, svc = u["Unit"], u["Service"]
    assert unit["OnFailure"] == ["humus-safe.service"]
    assert int(unit["StartLimitBurst"][0]) >= 3 and int(unit["StartLimitIntervalSec"][0]) > 0
    assert svc["Type"] == ["notify"] and svc["NotifyAccess"] == ["main"]
    assert svc["Restart"] == ["always"] and svc["WatchdogSec"] == ["10"]
    assert svc["User"] == ["humus"]
    assert svc["ExecStart"][0].startswith("/opt/humus/venv/bin/humus run")
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                       ("ProtectHome", "yes"), ("DevicePolicy", "closed"),
                       ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_NETLINK"),
                       ("CapabilityBoundingSet", "CAP_SYS_NICE"), ("IPAddressDeny", "any")]:
        assert svc[key] == [value], key
    # network lights only: the lighting subnets and multicast, not the internet
    allow = svc["IPAddressAllow"][0].split()
    assert "multicast" in allow and "2.0.0.0/8" in allow and "0.0.0.0/0" not in allow
    assert "/var/lib/humus" in svc["ReadWritePaths"][0]
    allowed = " ".join(svc["DeviceAllow"])
    for dev in ("char-video4linux", "char-ttyUSB", "char-gpiochip", "char-drm", "/dev/nvmap"):
        assert dev in allowed, dev
    assert svc["LogRateLimitIntervalSec"] and svc["LogRateLimitBurst"]
    assert "SDL_VIDEODRIVER=kmsdrm" in " ".join(svc["Environment"])
    assert u["Install"]["WantedBy"] == ["multi-user.target"]


def test_safe_mode_contract():
    u = parse_unit((SYSTEMD / "humus-safe.service").read_text())
    assert u["Unit"]["Conflicts"] == ["humus.service"]           # starting the show stops safe mode
    assert u["Unit"]["StartLimitIntervalSec"] == ["0"]           # safe mode never gives up
    assert " safe" in u["Service"]["ExecStart"][0] and u["Service"]["Restart"] == ["always"]
    assert "Install" not in u                                     # only ever started by OnFailure=


def test_units_use_nothing_newer_than_systemd_249():
    """JetPack 6 (Ubuntu 22.04) runs systemd 249: directives from later releases would be ignored."""
    newer = {"ExitType", "ReloadSignal", "RestartSteps", "RestartMaxDelaySec", "MemoryKSM", "OpenFile",
             "SetLoginEnvironment", "RootEphemeral", "ImportCredential", "ProtectHostnameEx", "PrivatePIDs"}
    for unit in UNITS:
        keys = {k for sec in parse_unit((SYSTEMD / unit).read_text()).values() for k in sec}
        assert not keys & newer, (unit, keys & newer)


RULE_TOKEN = re.compile(r'^(?P<key>[A-Z_]+)(\{[^}]+\})?(?P<op>==|!=|\+=|:=|=)"(?P<value>[^"]*)"$')


def test_udev_rules_are_well_formed_and_name_the_three_devices():
    text = (SYSTEMD / "udev/99-humus.rules").read_text()
    symlinks = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        tokens = [t.strip() for t in line.split(", ")]
        for t in tokens:
            m = RULE_TOKEN.match(t)
            assert m, f"99-humus.rules:{n}: cannot parse {t!r}"
            if m["key"] == "SYMLINK":
                symlinks.append(m["value"])
        assert any(RULE_TOKEN.match(t)["op"] in ("==", "!=") for t in tokens), f"line {n} matches everything"
    assert set(symlinks) == {"humus-dmx", "humus-radar", "humus-camera"}
    assert 'ATTRS{idVendor}=="0403", ATTRS{idProduct}=="6001", ATTRS{serial}=="EN*"' in text
    assert 'ATTRS{idVendor}=="1a86"' in text and 'ATTRS{idVendor}=="10c4"' in text


def test_ansible_rollout_goes_one_box_at_a_time_and_stops_on_failure():
    text = (SYSTEMD / "ansible/rollout.yml").read_text()
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is not None:
        play = yaml.safe_load(text)[0]
        assert play["serial"] == 1 and play["max_fail_percentage"] == 0 and play["any_errors_fatal"] is True
        tasks = str(play)
        assert "humus update" in tasks and "humus status" in tasks
    else:  # no PyYAML here: check the same keys textually
        assert re.search(r"^\s+serial: 1$", text, re.M)
        assert re.search(r"^\s+max_fail_percentage: 0$", text, re.M)
        assert re.search(r"^\s+any_errors_fatal: true$", text, re.M)
        assert "humus update" in text and "humus status" in text


ANSIBLE = os.environ.get("HUMUS_ANSIBLE_PLAYBOOK") or shutil.which("ansible-playbook")


@pytest.mark.slow
@pytest.mark.skipif(ANSIBLE is None, reason="ansible-playbook not installed (optional, workstation tool)")
def test_ansible_rollout_really_stops_at_the_first_unhealthy_box(tmp_path):
    """Three 'boxes' on localhost; box2's update fails: box3 must never be touched."""
    import sys
    from firmware.appliance import bundle as bundlemod
    from test_appliance_support import make_key
    key, pub = make_key(tmp_path)
    (tmp_path / "keys").mkdir()
    shutil.copy(pub, tmp_path / "keys")
    b = tmp_path / "b.bundle"
    bundlemod.build_bundle(REPO, key, "2.0.0", b, kind="app")
    log = tmp_path / "log"
    fake = tmp_path / "fake-humus"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n'
                    '[ "$1" = box2 ] && [ "$2" = update ] && { echo "unhealthy, rolled back" >&2; exit 3; }\nexit 0\n')
    fake.chmod(0o755)
    inv = tmp_path / "inv.ini"
    inv.write_text("[humus]\n" + "".join(f'box{i} ansible_connection=local humus_cmd="{fake} box{i}"\n'
                                         for i in (1, 2, 3)))
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOST_KEY_CHECKING": "0"}
    r = subprocess.run([ANSIBLE, "-i", str(inv), str(SYSTEMD / "ansible/rollout.yml"), "-e", f"bundle={b}",
                        "-e", f"keys={tmp_path / 'keys'}", "-e", f"humus_incoming={tmp_path / 'incoming'}",
                        "-e", "ansible_become=false", "-e", f"ansible_python_interpreter={sys.executable}"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0
    assert log.read_text().splitlines() == [f"box1 update {tmp_path}/incoming/b.bundle --health-timeout 180",
                                            "box1 status",
                                            f"box2 update {tmp_path}/incoming/b.bundle --health-timeout 180"]
    assert list((tmp_path / "incoming").iterdir()) == []     # the copied bundle is cleaned up
