"""The fixed-rate DMX sender: re-sends the newest universe at `rate_hz` and reopens a failed
transport with backoff. Shared by the in-process sender and the one in a process of its own."""
from __future__ import annotations

import logging
import threading

from firmware.devices.base import Device, Latest
from firmware.devices.dmx.interface import DmxTransport, SentFrame

log = logging.getLogger("humus.dmx")


class DmxSender(Device):
    """Sends the newest universe at a fixed rate; reopens a failed transport with backoff.

    Drive it with `start()` (own thread, real clock) or `pump()` (tests with a fake clock).
    """

    def __init__(self, transport: DmxTransport, clock, rate_hz: float = 40.0, channels: int = 512,
                 backoff_s: tuple[float, float] = (0.25, 5.0)) -> None:
        super().__init__()
        self.name = transport.name
        self.transport = transport
        self.clock = clock
        self.period = 1.0 / rate_hz
        self.channels = channels
        self._universe: Latest[bytes] = Latest()
        self._universe.put(bytes(channels))
        self._next_send = clock.now()
        self._open = False
        self._retry_at = 0.0
        self._backoff = backoff_s[0]
        self._backoff_range = backoff_s
        self.sent = 0
        self.send_times: list[float] = []  # bounded ring for jitter figures
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.priority = "not started"   # what the sender thread got: SCHED_FIFO, nice, or normal

    @property
    def recorded(self) -> list[SentFrame] | None:
        """What the transport kept of what was sent (see DmxTransport.frames)."""
        return self.transport.frames

    def set_universe(self, universe: bytes) -> None:
        if len(universe) != self.channels:
            universe = bytes(universe[: self.channels]).ljust(self.channels, b"\0")
        self._universe.put(bytes(universe))

    def pump(self) -> bool:
        """Send one frame if it is due. Returns True when a frame went out."""
        now = self.clock.now()
        if now < self._next_send:
            return False
        # Keep a fixed cadence; after a stall skip the missed slots instead of bursting to catch up
        # (max(next + period, now) sent a second frame at once after any wake-up later than a period).
        missed = int((now - self._next_send) // self.period)
        self._next_send += (missed + 1) * self.period
        return self._send_now(now)

    def catch_up(self) -> int:
        """Inline mode (fake clock, no thread): send every frame that fell due since the last call,
        so the universe count matches the fixed rate whatever the caller's step. Returns frames sent."""
        now = self.clock.now()
        sent = 0
        while self._next_send <= now:
            self._next_send += self.period
            sent += self._send_now(now)
        return sent

    def _send_now(self, now: float) -> bool:
        if not self._open:
            if now < self._retry_at:
                return False
            try:
                self.transport.open()
                self._open = True
                self._backoff = self._backoff_range[0]
                self.recover("sending")
            except OSError as exc:
                self._schedule_retry(now, f"cannot open: {exc}")
                return False
        try:
            self.transport.send(self._universe.get())
        except OSError as exc:
            self._open = False
            try:
                self.transport.close()
            except OSError:
                pass
            self._schedule_retry(now, f"send failed: {exc}")
            return False
        self.sent += 1
        self.send_times.append(now)
        if len(self.send_times) > 4096:
            del self.send_times[:2048]
        return True

    def _schedule_retry(self, now: float, detail: str) -> None:
        self.fault(detail)
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, self._backoff_range[1])

    # -- real-time thread --
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="dmx-sender", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.priority = raise_thread_priority()
        while not self._stop.is_set():
            self.pump()
            delay = self._next_send - self.clock.now()
            if delay > 0:
                self._stop.wait(delay)

    def send_final(self, universe: bytes, repeats: int = 3) -> None:
        """Shutdown: stop the thread, then send the safe look a few times so fixtures latch it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        self.set_universe(universe)
        for _ in range(repeats):
            self._send_now(self.clock.now())

    def _close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        try:
            self.transport.close()
        except OSError:
            pass


def raise_thread_priority(rt_priority: int = 10, nice: int = -10) -> str:
    """Ask for a real-time slot for the calling thread (the DMX cadence), else a better nice value.

    Needs root or CAP_SYS_NICE (systemd: AmbientCapabilities=CAP_SYS_NICE); without them the thread
    keeps its normal priority and the refresh gets more jitter under load, nothing worse. The
    thread only ever sleeps or writes a few hundred bytes, so it cannot starve the box.
    """
    import os
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rt_priority))  # 0 = this thread
        return f"SCHED_FIFO {rt_priority}"
    except (AttributeError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        return f"nice {nice}"
    except (AttributeError, OSError):
        return "normal"
