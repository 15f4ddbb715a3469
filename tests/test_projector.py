"""Projector power: PJLink class 1 against an emulator on loopback, HDMI-CEC against a stand-in
cec-ctl, and the control's retries when the projector does not answer."""
import hashlib
import os
import stat

import pytest

from firmware.config.load import parse_config
from firmware.devices.emulators.network import PJLinkEmulator
from firmware.devices.projector import pjlink as pj
from firmware.devices.projector.control import ProjectorControl, open_projector
from firmware.devices.projector.sim import SimProjector
from waiting import wait_for


def test_auth_prefix_matches_the_spec_example():
    # PJLink specification (JBMIA), authentication example: random 498e4a67, password JBMIAProjectorLink
    assert pj.auth_prefix("PJLINK 1 498e4a67", "JBMIAProjectorLink") == "5d8409bc1c3fa39749434aa3a5c38682"
    assert pj.auth_prefix("PJLINK 0", None) == ""
    with pytest.raises(pj.PJLinkError, match="password"):
        pj.auth_prefix("PJLINK 1 498e4a67", None)


def test_pjlink_power_bytes_without_password():
    emu = PJLinkEmulator()
    try:
        cfg = parse_config({"projector": {"type": "pjlink", "host": emu.host, "port": emu.port}}).projector
        p = pj.PJLinkProjector(cfg)
        p.power(True)
        assert emu.lines == [b"%1POWR 1\r"] and emu.power is True
        assert p.is_on() is True
        p.power(False)
        assert emu.lines[-1] == b"%1POWR 0\r" and emu.power is False
    finally:
        emu.close()


def test_pjlink_md5_auth_on_the_wire():
    emu = PJLinkEmulator(password="secret")
    try:
        cfg = parse_config({"projector": {"type": "pjlink", "host": emu.host, "port": emu.port,
                                          "password": "secret"}}).projector
        pj.PJLinkProjector(cfg).power(True)
        rand = emu.greetings[0][9:17].decode()
        assert emu.lines == [hashlib.md5((rand + "secret").encode()).hexdigest().encode() + b"%1POWR 1\r"]
        assert emu.power is True
        wrong = cfg.model_copy(update={"password": "guess"})
        with pytest.raises(pj.PJLinkError, match="ERRA"):
            pj.PJLinkProjector(wrong).power(False)
        assert emu.auth_failures == 1 and emu.power is True
    finally:
        emu.close()


def test_pjlink_busy_is_an_error():
    emu = PJLinkEmulator()
    emu.inject("busy")
    try:
        cfg = parse_config({"projector": {"type": "pjlink", "host": emu.host, "port": emu.port}}).projector
        with pytest.raises(pj.PJLinkError, match="ERR3"):
            pj.PJLinkProjector(cfg).power(True)
    finally:
        emu.close()


def test_unresponsive_projector_is_a_fault_retried_with_backoff():
    emu = PJLinkEmulator()
    emu.inject("mute")
    cfg = parse_config({"projector": {"type": "pjlink", "host": emu.host, "port": emu.port,
                                      "timeout_s": 0.2, "retry_s": [0.05, 0.2]}}).projector
    ctl = open_projector(cfg)
    try:
        ctl.want(True)
        assert wait_for(lambda: ctl.failures >= 2)
        assert not ctl.health.ok and "retry" in ctl.health.detail
        emu.heal()
        assert wait_for(lambda: ctl.settled, 5.0)
        assert ctl.health.ok and emu.power is True
    finally:
        ctl.close()
        emu.close()


def test_projector_gone_entirely_never_raises():
    emu = PJLinkEmulator()
    port = emu.port
    emu.close()                         # nothing listens: connection refused
    cfg = parse_config({"projector": {"type": "pjlink", "host": "127.0.0.1", "port": port,
                                      "timeout_s": 0.2, "retry_s": [0.05, 0.1]}}).projector
    ctl = open_projector(cfg)
    try:
        ctl.want(False)
        assert wait_for(lambda: ctl.failures >= 3)
        assert ctl.confirmed is None and not ctl.health.ok
    finally:
        ctl.close()


@pytest.fixture
def cec_ctl(tmp_path):
    """A stand-in cec-ctl: logs its arguments, fails while a 'fail' file exists."""
    log, fail = tmp_path / "cec.log", tmp_path / "fail"
    script = tmp_path / "cec-ctl"
    script.write_text(f"#!/bin/sh\nif [ -e {fail} ]; then echo 'CEC_TRANSMIT: Device or resource busy' >&2; "
                      f"exit 1; fi\necho \"$@\" >> {log}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, log, fail


def test_cec_power_commands(cec_ctl):
    script, log, fail = cec_ctl
    cfg = parse_config({"projector": {"type": "cec", "command": str(script), "device": "/dev/cec1",
                                      "retry_s": [0.05, 0.1]}}).projector
    ctl = open_projector(cfg)
    try:
        fail.touch()
        ctl.want(True)
        assert wait_for(lambda: ctl.failures >= 1)
        assert "busy" in ctl.health.detail and not log.exists()
        os.unlink(fail)
        assert wait_for(lambda: ctl.settled)
        ctl.want(False)
        assert wait_for(lambda: ctl.settled)
        assert log.read_text().splitlines() == ["-d /dev/cec1 --playback", "-d /dev/cec1 --to 0 --image-view-on",
                                                "-d /dev/cec1 --to 0 --standby"]
    finally:
        ctl.close()


def test_missing_cec_ctl_is_a_fault(tmp_path):
    cfg = parse_config({"projector": {"type": "cec", "command": str(tmp_path / "nope"),
                                      "retry_s": [0.05, 0.1]}}).projector
    ctl = open_projector(cfg)
    try:
        ctl.want(True)
        assert wait_for(lambda: ctl.failures >= 1) and not ctl.health.ok
    finally:
        ctl.close()


def test_none_opens_nothing_and_sim_records():
    assert open_projector(parse_config({}).projector) is None
    ctl = ProjectorControl(SimProjector(), (0.01, 0.02))
    try:
        ctl.want(True)
        assert wait_for(lambda: ctl.settled)
        assert [on for _, on in ctl.backend.commands] == [True]
    finally:
        ctl.close()


def test_doctor_asks_the_projector_harmlessly():
    from firmware.devices.doctor import check_projector
    emu = PJLinkEmulator(password="pw")
    try:
        cfg = parse_config({"projector": {"type": "pjlink", "host": emu.host, "port": emu.port, "password": "pw"}})
        row = check_projector(cfg)
        assert row.ok is True and row.detail.endswith("power off")
        assert [ln[32:] for ln in emu.lines] == [b"%1POWR ?\r"] and emu.power is False
        bad = parse_config({"projector": {"type": "pjlink", "host": emu.host, "port": emu.port, "password": "no"}})
        assert check_projector(bad).ok is False
    finally:
        emu.close()
    assert check_projector(parse_config({})).ok is None
