"""Is the system clock synchronised? Asked of what sets it, without a subprocess:

1. systemd-timesyncd's flag file /run/systemd/timesync/synchronized: touched at its first
   synchronisation this boot (/run is a tmpfs, so it is gone after a cut). It is a plain stat, so it
   works inside the hardened humus.service, and it is what systemd-time-wait-sync waits for.
2. The kernel's NTP status, read with adjtimex(2) (modes = 0 only reads), synchronised when its
   maximum error is under 16 s: exactly timedatectl's NTPSynchronized, whichever daemon (timesyncd,
   chrony, ntpd) disciplines the clock. humus.service has ProtectClock=yes, which denies adjtimex
   to the show (EPERM, read or not); `humus doctor`, run by a tech, can ask it.
3. timesyncd's saved clock, /var/lib/systemd/timesync/clock: its mtime is the last known good time
   (timesyncd touches it at each synchronisation, newer ones periodically too). A clock more than a
   minute behind it is certainly wrong, which the detail says; it is never proof of a right one.

Either of 1 or 2 means synchronised. Once synchronised the source stops looking: a clock set by NTP
drifts seconds a day, while the kernel's figure crosses its 16 s limit about nine hours after the
network goes, and a box must not fall back to the policy (dark, or lit all night) for that.
"""
from __future__ import annotations

import ctypes
import functools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from firmware.devices.timesync.interface import TimeSource

FLAG = "run/systemd/timesync/synchronized"
SAVED = "var/lib/systemd/timesync/clock"
MAXERROR_LIMIT_S = 16.0   # the kernel's NTP_PHASE_LIMIT (16 000 000 us); systemd's ntp_synced() bound
BEHIND_SLACK_S = 60.0     # an NTP step after timesyncd's touch moves the clock by far less than this


@dataclass(frozen=True)
class Evidence:
    wall: float                          # the system clock when looked (Unix seconds)
    flag_mtime: float | None = None      # FLAG's mtime, None when absent or unreadable
    saved_mtime: float | None = None     # SAVED's mtime, likewise
    kernel_maxerror_s: float | None = None   # None: not asked, or not readable
    notes: tuple[str, ...] = ()          # what could not be read, and why


def judge(e: Evidence) -> tuple[bool, str]:
    """(synchronised?, the evidence in a line). Pure."""
    if e.flag_mtime is not None:
        return True, f"systemd-timesyncd synchronised it at {_when(e.flag_mtime)}"
    k = e.kernel_maxerror_s
    if k is not None and k < MAXERROR_LIMIT_S:
        return True, f"kernel NTP status synchronised (max error {k:.3g} s)"
    why = [f"no /{FLAG}"]
    if k is not None:
        why.append(f"kernel max error {k:.3g} s (synchronised below {MAXERROR_LIMIT_S:g} s)")
    why.extend(e.notes)
    if e.saved_mtime is not None and e.wall < e.saved_mtime - BEHIND_SLACK_S:
        why.append(f"certainly wrong: {_span(e.saved_mtime - e.wall)} behind the last known good time "
                   f"{_when(e.saved_mtime)} (/{SAVED})")
    return False, "; ".join(why)


def gather(root: Path, kernel: Callable[[], float] | None, wall: Callable[[], float] = time.time) -> Evidence:
    """Read the evidence under `root` (a fake tree in tests); `kernel` answers the maximum error in
    seconds or raises OSError (None: do not ask)."""
    notes: list[str] = []
    flag = _mtime(root / FLAG, notes)
    saved = _mtime(root / SAVED, notes)
    maxerror = None
    if kernel is not None:
        try:
            maxerror = kernel()
        except OSError as exc:   # EPERM under ProtectClock; ENOSYS off Linux
            notes.append(f"kernel NTP status not readable ({exc.strerror or exc})")
    return Evidence(wall(), flag, saved, maxerror, tuple(notes))


def _mtime(path: Path, notes: list[str]) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:   # a private state directory, a link loop, a NUL in the path
        notes.append(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
        return None


STA_NANO = 0x2000   # linux/timex.h: the time's fraction is in nanoseconds


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class Timex(ctypes.Structure):
    """struct timex (linux/timex.h) as glibc and the kernel lay it out on 64-bit Linux."""
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
                ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
                ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
                ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 11)]

    def seconds(self) -> float:
        """The kernel's time as seconds since the epoch. `time.tv_usec` holds nanoseconds, not
        microseconds, while STA_NANO is set in `status` (chrony and ntpd may set it: adjtimex(2))."""
        per_second = 1e9 if self.status & STA_NANO else 1e6
        return self.time.tv_sec + self.time.tv_usec / per_second


@functools.lru_cache(maxsize=1)
def _libc_adjtimex():
    try:
        return ctypes.CDLL(None, use_errno=True).adjtimex
    except AttributeError:   # not Linux
        return None


def adjtimex() -> Timex:
    """The kernel's clock status; raises OSError (EPERM in a unit with ProtectClock=yes)."""
    call = _libc_adjtimex()
    if call is None:
        raise OSError(38, "no adjtimex on this system")
    tx = Timex()   # modes = 0: read only
    if call(ctypes.byref(tx)) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return tx


def kernel_maxerror_s() -> float:
    return adjtimex().maxerror / 1e6


class SystemTimeSync(TimeSource):
    """The system's answer, looked at every `check_s` of the box clock until it is synchronised."""

    name = "timesync[system]"

    def __init__(self, cfg, clock, *, kernel: Callable[[], float] | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.root = Path(cfg.root)
        self.check_s = cfg.check_s
        self.kernel = kernel if kernel is not None else (kernel_maxerror_s if cfg.kernel else None)
        self.wall = wall
        self.looks = 0
        self._next = -math.inf

    def _due(self, now: float) -> bool:
        return not self._answer.synced and now >= self._next

    def _look(self, now: float) -> tuple[bool, str]:
        self.looks += 1
        self._next = now + self.check_s
        return judge(gather(self.root, self.kernel, self.wall))


def _when(t: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
    except (OverflowError, OSError, ValueError):   # an mtime far outside what the C library can show
        return f"{t:.0f} s after 1970"


def _span(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "endlessly"
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400} d {s % 86400 // 3600} h"
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"
