"""The clock source (firmware/devices/timesync/): the system probe against fake /run and /var/lib trees
and a fake kernel, its rate limit on the box clock, the sim and trusted backends, and the real
adjtimex(2) call's struct layout."""
from __future__ import annotations

import math
import os
import sys
import time

import pytest
from hypothesis import given, settings, strategies as st

from firmware.clock import FakeClock
from firmware.config.load import parse_config
from firmware.devices.timesync.sim import SimTimeSync
from firmware.devices.timesync.system import (FLAG, MAXERROR_LIMIT_S, SAVED, STA_NANO, Evidence, SystemTimeSync,
                                              Timex, adjtimex, gather, judge)
from firmware.devices.timesync.table import open_timesync

NOW = 1_796_400_000.0      # 2026-12-04 16:00 UTC, the fake trees' "now"


def touch(root, rel, mtime):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.touch()
    os.utime(p, (mtime, mtime))
    return p


def kernel_says(maxerror_s):
    def ask():
        if isinstance(maxerror_s, OSError):
            raise maxerror_s
        return maxerror_s
    return ask


def look(root, kernel=None, wall=NOW):
    return judge(gather(root, kernel, lambda: wall))


def test_an_empty_tree_and_no_kernel_is_not_synchronised(tmp_path):
    synced, detail = look(tmp_path)
    assert not synced and detail == f"no /{FLAG}"


def test_timesyncds_flag_file_means_synchronised_this_boot(tmp_path):
    touch(tmp_path, FLAG, NOW - 3600)
    synced, detail = look(tmp_path, kernel_says(OSError(1, "Operation not permitted")))
    assert synced and detail == "systemd-timesyncd synchronised it at 2026-12-04 15:00:00 UTC"


@pytest.mark.parametrize("maxerror, synced", [(0.0, True), (0.05, True), (15.999, True), (MAXERROR_LIMIT_S, False),
                                              (16.5, False)])
def test_the_kernel_bound_is_timedatectls(tmp_path, maxerror, synced):
    got, detail = look(tmp_path, kernel_says(maxerror))
    assert got is synced
    assert ("kernel NTP status synchronised" in detail) is synced
    assert (f"kernel max error {maxerror:.3g} s (synchronised below 16 s)" in detail) is not synced


def test_a_kernel_that_will_not_answer_is_named(tmp_path):
    synced, detail = look(tmp_path, kernel_says(PermissionError(1, "Operation not permitted")))
    assert not synced and "kernel NTP status not readable (Operation not permitted)" in detail


def test_a_clock_before_the_last_known_good_time_is_certainly_wrong(tmp_path):
    touch(tmp_path, SAVED, NOW)
    # the box woke up at systemd's build date after a cut: years before the saved clock
    synced, detail = look(tmp_path, wall=NOW - 3 * 86400 - 7200)
    assert not synced
    assert detail.endswith(f"certainly wrong: 3 d 2 h behind the last known good time 2026-12-04 16:00:00 UTC "
                           f"(/{SAVED})")
    # within the slack an NTP step may leave after timesyncd's touch: nothing to say
    assert "certainly wrong" not in look(tmp_path, wall=NOW - 30)[1]
    assert "certainly wrong" not in look(tmp_path, wall=NOW + 86400)[1]   # after it: plausible, still unproven
    assert not look(tmp_path, wall=NOW + 86400)[0]


def test_positive_evidence_wins_over_a_saved_clock_in_the_future(tmp_path):
    """A saved clock written while the clock ran ahead (an RTC full of garbage) must not keep a
    synchronised box on the policy: timesyncd and the kernel set the clock, the file only guards it."""
    touch(tmp_path, SAVED, NOW + 10 * 365 * 86400)
    assert look(tmp_path, kernel_says(0.01))[0]
    touch(tmp_path, FLAG, NOW)
    assert look(tmp_path)[0]


def test_unreadable_evidence_is_a_note_not_a_crash(tmp_path):
    (tmp_path / FLAG).parent.mkdir(parents=True)
    os.symlink(tmp_path / FLAG, tmp_path / FLAG)                 # a loop: ELOOP on stat
    synced, detail = look(tmp_path)
    assert not synced and f"cannot read {tmp_path / FLAG}" in detail
    synced, detail = look(tmp_path / "nul\0here", kernel_says(OSError(38, "no adjtimex on this system")))
    assert not synced and "embedded null byte" in detail and "not readable (no adjtimex on this system)" in detail


finite_or_not = st.floats() | st.floats(-1e20, 1e20)


@settings(max_examples=300, deadline=None)
@given(st.builds(Evidence, finite_or_not, st.none() | finite_or_not, st.none() | finite_or_not,
                 st.none() | finite_or_not, st.lists(st.text(max_size=20), max_size=3).map(tuple)))
def test_judge_takes_any_evidence(e):
    """Whatever the filesystem and the kernel hand over (mtimes far outside the C library's range,
    nan, negative errors), judge answers, and its answer is the rule in system.py's docstring."""
    synced, detail = judge(e)
    assert isinstance(detail, str) and detail
    k = e.kernel_maxerror_s
    assert synced is (e.flag_mtime is not None or (k is not None and k < MAXERROR_LIMIT_S))


def system(tmp_path, clock, kernel=None, check_s=5.0):
    cfg = parse_config({"timesync": {"type": "system", "root": str(tmp_path), "kernel": False,
                                     "check_s": check_s}}).timesync
    return SystemTimeSync(cfg, clock, kernel=kernel, wall=lambda: NOW)


def test_the_system_source_looks_every_check_s_until_synchronised_then_stops(tmp_path):
    clock = FakeClock(100.0)
    src = system(tmp_path, clock)
    for _ in range(20 * 20):               # 20 s of frames at 20 fps
        assert not src.read().synced
        clock.advance(0.05)
    assert src.looks == 4                  # at 100 s and about every 5 s after: not every frame
    assert src.read().since == 100.0
    touch(tmp_path, FLAG, NOW)             # timesyncd reaches its server
    flagged = clock.now()
    while not src.read().synced:
        clock.advance(0.05)
    assert clock.now() - flagged <= 5.0 + 0.05 and src.read().since == clock.now()
    looks = src.looks
    (tmp_path / FLAG).unlink()
    clock.advance(3600)
    assert src.read().synced and src.looks == looks   # latched: a set clock drifts seconds a day


def test_the_table_opens_every_type(tmp_path):
    clock = FakeClock()
    for section, name, synced in ((None, "timesync[system]", False), ({"type": "trusted"}, "timesync[trusted]", True),
                                  ({"type": "sim"}, "timesync[sim]", True),
                                  ({"type": "sim", "synced": False}, "timesync[sim]", False)):
        cfg = parse_config({"timesync": section or {"root": str(tmp_path), "kernel": False}}).timesync
        with open_timesync(cfg, clock) as src:
            assert src.name == name and src.read().synced is synced
        assert src.closed


def test_the_sim_is_scripted_on_the_box_clock_and_set_by_hand():
    clock = FakeClock(10.0)
    src = SimTimeSync(parse_config({"timesync": {"type": "sim", "synced_after_s": 2}}).timesync, clock)
    assert src.read() == src.read() and not src.read().synced
    assert src.read().detail == "sim: not synchronised until 2 s after start"
    clock.advance(1.99)
    assert not src.read().synced
    clock.advance(0.01)
    assert src.read().synced and src.read().since == 12.0
    src.set_synced(False, "network cable pulled")
    assert src.read().detail == "sim: network cable pulled" and not src.read().synced


def test_the_kernels_time_is_read_in_nanoseconds_while_sta_nano_is_set():
    """A CI machine's clock discipline had STA_NANO set: tv_usec was 219011620 (nanoseconds)."""
    tx = Timex()
    tx.time.tv_sec, tx.time.tv_usec = 1_796_345_022, 219_011_620
    tx.status = STA_NANO
    assert tx.seconds() == pytest.approx(1_796_345_022.219011620, abs=1e-6)
    tx.status, tx.time.tv_usec = 0, 219_011
    assert tx.seconds() == pytest.approx(1_796_345_022.219011, abs=1e-6)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex(2) is Linux's")
def test_adjtimex_reads_the_kernels_struct_where_allowed():
    """The ctypes layout is right if the kernel's own copy of the time lands in `time`; a seccomp
    filter (ProtectClock) answers EPERM, which is an OSError, never a crash."""
    try:
        tx = adjtimex()
    except OSError as exc:
        pytest.skip(f"adjtimex not allowed here: {exc}")
    fraction_limit = 1_000_000_000 if tx.status & STA_NANO else 1_000_000
    assert abs(tx.seconds() - time.time()) < 5 and 0 <= tx.time.tv_usec < fraction_limit
    assert 0 <= tx.maxerror and math.isfinite(tx.maxerror)
    assert tx.modes == 0
