"""The DMX sender in a process of its own.

Inside the box's process the sender thread shares the GIL with the compositor and the generation
worker; measured on 2 cores it then misses its 25 ms slot by up to 7-20 ms (p99), however high its
scheduling priority. In its own process (SCHED_FIFO where allowed) nothing in Python can hold it up.

The parent keeps the DmxSender interface (set_universe, start, send_final, close, health, sent,
send_times, recorded), so the box does not know which one it has. The universe crosses in shared memory (one
512-byte slot, newest wins); health and send times come back the same way. The child owns the
transport: a serial port or socket is opened, reopened after an unplug, and closed there.
"""
from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import time

from firmware.devices.base import Device

log = logging.getLogger("humus.dmx")
RING = 4096


def _child(cfg, shared, stop, ready) -> None:
    from firmware.clock import RealClock
    from firmware.devices.dmx.table import BACKENDS
    from firmware.devices.dmx.sender import DmxSender, raise_thread_priority

    universe, seq, ok, detail, sent, times, head = shared
    sender = DmxSender(BACKENDS.open(cfg, None), RealClock(), rate_hz=cfg.rate_hz,
                       channels=cfg.channels)
    sender.priority = raise_thread_priority()
    detail.value = sender.priority.encode()[:127]
    ready.set()
    last_seq = -1
    clock = sender.clock
    while not stop.is_set():
        if seq.value != last_seq:
            with universe.get_lock():
                last_seq = seq.value
                sender.set_universe(bytes(universe.get_obj()[: cfg.channels]))
        if sender.pump():
            times[head.value % RING] = time.monotonic()
            head.value += 1
            sent.value = sender.sent
        if sender.health.ok != bool(ok.value):
            ok.value = int(sender.health.ok)
            detail.value = sender.health.detail.encode()[:127]
        delay = sender._next_send - clock.now()
        if delay > 0:
            time.sleep(min(delay, 0.005))  # wake at least every 5 ms to pick up a new universe
    final = bytes(universe.get_obj()[: cfg.channels])
    sender.send_final(final)
    sender.close()


class DmxProcessSender(Device):
    def __init__(self, cfg) -> None:
        super().__init__()
        self.name = f"dmx[{cfg.type}, own process]"
        self.channels = cfg.channels
        self.period = 1.0 / cfg.rate_hz
        ctx = mp.get_context("spawn")  # never fork a process that already runs threads
        self._universe = ctx.Array(ctypes.c_ubyte, 512)
        self._seq = ctx.Value(ctypes.c_long, 0, lock=False)
        self._ok = ctx.Value(ctypes.c_int, 1, lock=False)
        self._detail = ctx.Array(ctypes.c_char, 128, lock=False)
        self._sent = ctx.Value(ctypes.c_long, 0, lock=False)
        self._times = ctx.Array(ctypes.c_double, RING, lock=False)
        self._head = ctx.Value(ctypes.c_long, 0, lock=False)
        self._stop = ctx.Event()
        self._ready = ctx.Event()
        shared = (self._universe, self._seq, self._ok, self._detail, self._sent, self._times, self._head)
        self._proc = ctx.Process(target=_child, args=(cfg, shared, self._stop, self._ready),
                                 name="humus-dmx", daemon=True)
        self.priority = "not started"

    def start(self) -> None:
        if not self._proc.is_alive() and self._proc.exitcode is None:
            self._proc.start()
            self._ready.wait(10.0)
            self.priority = self._detail.value.decode(errors="replace") + " (own process)"

    def set_universe(self, universe: bytes) -> None:
        data = bytes(universe[: self.channels]).ljust(self.channels, b"\0")
        with self._universe.get_lock():
            self._universe.get_obj()[: self.channels] = data
            self._seq.value += 1

    @property
    def sent(self) -> int:
        return self._sent.value

    recorded = None   # the transport lives in the child; what it sent does not come back

    @property
    def send_times(self) -> list[float]:
        head = self._head.value
        n = min(head, RING)
        return [self._times[i % RING] for i in range(head - n, head)]

    def pump(self) -> bool:  # the child keeps the rate; nothing to do on the caller's thread
        return False

    catch_up = pump

    # Health lives in the child; reading it here brings the child's verdict over first.
    @property
    def health(self):
        if not self._syncing and self._proc is not None:
            self._syncing = True
            try:
                self._sync_health()
            finally:
                self._syncing = False
        return self._health

    @health.setter
    def health(self, value) -> None:
        self._health = value

    _syncing = False
    _proc = None   # Device.__init__ sets the health before there is a child to ask

    def _sync_health(self) -> None:
        if not self._proc.is_alive() and self._proc.exitcode is not None and not self.closed:
            self.fault(f"DMX process died (exit {self._proc.exitcode})")
        elif self._ok.value:
            self.recover("sending")
        else:
            self.fault(self._detail.value.decode(errors="replace"))

    def send_final(self, universe: bytes, repeats: int = 3) -> None:
        """The child sends the last universe (the safe look) a few times as it stops."""
        self.set_universe(universe)
        time.sleep(2 * self.period)  # let the child pick it up at its rate first
        self._stop_child()

    def _close(self) -> None:
        self._stop_child()
        if self._proc.is_alive():
            self._proc.terminate()

    def _stop_child(self) -> None:
        """Ask the child to stop (it sends the final universe and closes its port), and wait."""
        self._stop.set()
        if self._proc.is_alive():
            self._proc.join(timeout=2.0)
