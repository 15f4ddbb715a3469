"""The capture loop every real camera shares: a reader thread per session, a supervisor that watches
frame age and frame identity, reconnects with backoff and escalates.

Field failures this catches (PROTOCOLS.md, cameras): a pipeline that stops delivering (stalled), one
that keeps returning its last frame forever (frozen: a live sensor always has noise, so identical
subsampled hashes mean a dead pipeline), a read() that never returns (the session is abandoned and a
new one opened), and an Argus daemon that needs a restart (the escalation command). Whatever happens,
`latest()` returns at once: a fresh frame or None, and the show runs on without the visitor's image.
"""
from __future__ import annotations

import logging
import shlex
import subprocess
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from firmware.devices.base import Latest
from firmware.devices.camera.interface import Camera, Frame

log = logging.getLogger("humus.camera")
MIN_BACKOFF_S = 0.05   # the shortest wait between reconnect attempts, whatever the config says


def frame_hash(img: np.ndarray, samples: int = 48) -> int:
    """CRC of a ~48x48 subsample: microseconds per frame, and any sensor noise changes it."""
    h, w = img.shape[:2]
    sub = img[:: max(1, h // samples), :: max(1, w // samples)]
    return zlib.crc32(np.ascontiguousarray(sub).data)


@dataclass
class FrameWatchdog:
    """Pure: fed (time, hash) per frame, says whether the stream is healthy at `now`."""

    stall_timeout_s: float
    frozen_timeout_s: float
    detect_frozen: bool = True
    last_frame_t: float | None = None
    last_change_t: float | None = None
    last_hash: int | None = None
    started_t: float = 0.0

    def reset(self, now: float) -> None:
        self.started_t, self.last_frame_t, self.last_change_t, self.last_hash = now, None, None, None

    def observe(self, t: float, h: int) -> None:
        if h != self.last_hash:
            self.last_hash, self.last_change_t = h, t
        self.last_frame_t = t

    def verdict(self, now: float) -> str | None:
        """None when healthy, else what is wrong (used as the fault text)."""
        since = self.last_frame_t if self.last_frame_t is not None else self.started_t
        if now - since > self.stall_timeout_s:
            what = "no frame" if self.last_frame_t is None else "no new frame"
            return f"stalled: {what} for {now - since:.1f} s"
        if self.detect_frozen and self.last_change_t is not None and \
                now - self.last_change_t > self.frozen_timeout_s:
            return f"frozen: identical frames for {now - self.last_change_t:.1f} s"
        return None


class Source(Protocol):
    """One capture session. `read` returns an RGB HxWx3 uint8 frame, or None for 'nothing yet';
    it raises OSError when the device is gone. `detect_frozen` is False for recorded sources."""

    detect_frozen: bool

    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...
    def close(self) -> None: ...


def fit(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """The configured capture size, whatever the device delivered (the box expects exact shapes)."""
    if img.shape[0] == height and img.shape[1] == width:
        return img
    try:
        import cv2
        return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    except ImportError:
        ys = np.linspace(0, img.shape[0] - 1, height).astype(int)
        xs = np.linspace(0, img.shape[1] - 1, width).astype(int)
        return img[ys][:, xs]


class _Session:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.stop = threading.Event()
        self.error: str | None = None
        self.thread: threading.Thread | None = None


class CaptureCamera(Camera):
    """A Camera from a `Source` factory; see the module doc for what the supervisor does."""

    tick_s = 0.05

    def __init__(self, cfg, clock, make_source: Callable[[], Source], name: str,
                 run_command: Callable[[str], int] | None = None) -> None:
        super().__init__()
        self.cfg, self.clock, self.name = cfg, clock, name
        self._make_source = make_source
        self._run_command = run_command or _run_escalation
        self._latest: Latest[Frame] = Latest()
        self._seq = 0
        self.failures = 0            # consecutive failed (re)connects since the last good stream
        self.reconnects = 0
        self.escalations = 0
        self._watchdog = FrameWatchdog(cfg.stall_timeout_s, cfg.frozen_timeout_s)
        self._session: _Session | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._supervisor = threading.Thread(target=self._supervise, name=f"{name}-watchdog", daemon=True)
        self._supervisor.start()

    # -- the show's side: never blocks --
    def latest(self) -> Frame | None:
        with self._lock:
            verdict = self._watchdog.verdict(self.clock.now()) if self._session else "not connected"
        if verdict is not None:
            return None
        return self._latest.get()

    # -- supervisor thread --
    def _supervise(self) -> None:
        backoff = self.cfg.reconnect_backoff_s[0]
        while not self._stop.is_set():
            if self._session is None:
                if self._open_session():
                    continue
                backoff = self._failed(backoff)
                continue
            with self._lock:
                verdict = self._session.error or self._watchdog.verdict(self.clock.now())
            if verdict is None:
                if self._watchdog.last_frame_t is not None and self.failures:
                    self.failures, backoff = 0, self.cfg.reconnect_backoff_s[0]
                self._stop.wait(self.tick_s)
                continue
            self.fault(verdict)
            self._end_session()
            backoff = self._failed(backoff)

    def _open_session(self) -> bool:
        try:
            source = self._make_source()
            source.open()
        except Exception as exc:  # vendor libraries raise anything; the show must not care
            self.fault(f"cannot open: {exc}")
            return False
        s = _Session(source)
        s.thread = threading.Thread(target=self._read_loop, args=(s,), name=f"{self.name}-read", daemon=True)
        with self._lock:
            self._watchdog = FrameWatchdog(self.cfg.stall_timeout_s, self.cfg.frozen_timeout_s,
                                           source.detect_frozen)
            self._watchdog.reset(self.clock.now())
            self._session = s
        s.thread.start()
        return True

    def _failed(self, backoff: float) -> float:
        self.failures += 1
        cmd = self.cfg.escalation_command
        if cmd and self.failures % self.cfg.escalate_after == 0:
            self.escalations += 1
            log.warning("%s: %d failed reconnects, running %r", self.name, self.failures, cmd)
            rc = self._run_command(cmd)
            log.info("%s: escalation command exited %s", self.name, rc)
        # The config bounds the backoff already; the floor is for a config built in code. Without it a
        # zero or NaN wait retries (and logs, and escalates) in a tight loop.
        self._stop.wait(backoff if backoff >= MIN_BACKOFF_S else MIN_BACKOFF_S)
        self.reconnects += 1
        return max(MIN_BACKOFF_S, min(backoff * 2, self.cfg.reconnect_backoff_s[1]))

    def _end_session(self) -> None:
        """Stop the reader; if it is stuck in read() it is abandoned and closes its source on return."""
        with self._lock:
            s, self._session = self._session, None
        if s is None:
            return
        s.stop.set()
        if s.thread is not None:
            s.thread.join(timeout=0.5)

    # -- reader thread, one per session --
    def _read_loop(self, s: _Session) -> None:
        try:
            while not s.stop.is_set() and not self._stop.is_set():
                img = s.source.read()
                if img is None or s.stop.is_set():
                    time.sleep(0.005)   # a source with nothing yet must not spin this thread
                    continue
                img = fit(img, self.cfg.width, self.cfg.height)
                now = self.clock.now()
                with self._lock:
                    if self._session is not s:
                        break
                    self._watchdog.observe(now, frame_hash(img))
                    self._seq += 1
                    self._latest.put(Frame(image=img, t=now, seq=self._seq))
                if not self.health.ok:
                    self.recover("frames")
        except Exception as exc:
            s.error = f"read failed: {exc}"
        finally:
            try:
                s.source.close()
            except Exception as exc:
                log.debug("%s: close: %s", self.name, exc)

    def _close(self) -> None:
        self._stop.set()
        self._supervisor.join(timeout=2.0)
        self._end_session()


def _run_escalation(cmd: str, timeout_s: float = 60.0) -> int:
    """Run the configured command (no shell); its failure is logged, never raised."""
    try:
        return subprocess.run(shlex.split(cmd), timeout=timeout_s, stdin=subprocess.DEVNULL,
                              capture_output=True).returncode
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("escalation command %r failed: %s", cmd, exc)
        return -1


def paced(fps: float):
    """A sleeper that keeps a steady cadence for sources that would otherwise run flat out."""
    period, nxt = 1.0 / fps, [time.monotonic()]

    def wait() -> None:
        nxt[0] = max(nxt[0] + period, time.monotonic() - period)
        delay = nxt[0] - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return wait
