"""Presence sensors on a UART: the HLK-LD2410 radar and the Benewake TFmini LiDAR.

One reader thread per sensor: open the port (a stable udev name such as /dev/humus-radar), feed what
arrives into the pure stream parser, publish a Reading for every valid frame. A port that vanishes
(USB glitch, unplug) is reopened with backoff; no valid frame for `stale_after_s` raises a
stale-sensor fault. Nothing here ever raises into the show.
"""
from __future__ import annotations

import logging
import threading

from firmware.devices.base import Latest
from firmware.devices.presence.interface import PresenceSensor, Reading
from firmware.devices.protocols import ld2410, tfmini
from firmware.devices.serial_port import close_quietly, open_serial

log = logging.getLogger("humus.presence")


class SerialSensor(PresenceSensor):
    """Reader thread + reopen-with-backoff + stale check; subclasses say how frames become distances."""

    backoff_s = (0.2, 2.0)

    def __init__(self, cfg, clock, start: bool = True) -> None:
        super().__init__()
        self.cfg, self.clock = cfg, clock
        self.name = f"presence[{cfg.type}]"
        self.parser = self._new_parser()
        self.frames = 0                       # valid frames since start
        self.opens = 0
        self._latest: Latest[Reading] = Latest()
        self._last_valid = clock.now()        # stale counts from start-up, too
        self._port = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    # -- for subclasses --
    def _new_parser(self):
        raise NotImplementedError

    def _distance(self, msg) -> tuple[bool, float | None]:
        """(is this a presence frame, distance in metres or None for nobody)."""
        raise NotImplementedError

    def _on_open(self, port) -> None:
        pass

    # -- public --
    @property
    def rejected(self) -> int:
        return self.parser.rejected

    def start(self) -> None:
        if self._thread is None and not self.closed:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def latest(self) -> Reading | None:
        self._check_stale()
        return self._latest.get()

    def _newest(self) -> Reading | None:
        return self._latest.get()   # latest() also checks staleness, which would fault here

    def feed(self, data: bytes) -> None:
        """Handle raw bytes as if read from the port (the reader thread's only path, and tests')."""
        for msg in self.parser.feed(data):
            ok, dist = self._distance(msg)
            if ok:
                self.frames += 1
                self._last_valid = now = self.clock.now()
                self._latest.put(Reading(distance_m=dist, t=now))
                self.recover("reading")

    # -- reader thread --
    def _run(self) -> None:
        backoff = self.backoff_s[0]
        while not self._stop.is_set():
            if self._port is None:
                try:
                    port = open_serial(self.cfg.port, self.cfg.baud)
                    self._on_open(port)
                except OSError as exc:  # SerialException is an OSError
                    self.fault(f"cannot open {self.cfg.port}: {exc}")
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.backoff_s[1])
                    continue
                self._port, backoff = port, self.backoff_s[0]
                self.opens += 1
                self._last_valid = max(self._last_valid, self.clock.now())
            try:
                data = self._port.read(self._port.in_waiting or 1)
            except (OSError, TypeError) as exc:  # TypeError: pyserial after a close race
                self.fault(f"{self.cfg.port} lost: {exc}")
                self._drop_port()
                continue
            if data:
                self.feed(data)
            self._check_stale()
        self._drop_port()

    def _check_stale(self) -> None:
        age = self.clock.now() - self._last_valid
        if age > self.cfg.stale_after_s and self.health.ok:
            self.fault(f"stale sensor: no valid frame for {age:.1f} s "
                       f"({self.parser.rejected} frames rejected, last: {self.parser.last_error})")

    def _drop_port(self) -> None:
        port, self._port = self._port, None
        close_quietly(port)

    def _close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._drop_port()


class LD2410Sensor(SerialSensor):
    """mmWave radar: nearest moving or stationary target above `min_energy`; basic or engineering."""

    last_report: ld2410.Report | None = None

    def _new_parser(self):
        return ld2410.Parser()

    @property
    def gates(self) -> tuple[int, ...]:
        rep = self.last_report   # engineering reports only: a basic one has no gates
        return tuple(rep.moving_gates) if rep is not None and rep.engineering else ()

    def _on_open(self, port) -> None:
        if self.cfg.engineering:
            for cmd in ld2410.enable_engineering():
                port.write(cmd)

    def _distance(self, msg):
        if not isinstance(msg, ld2410.Report):
            return False, None  # a command ACK
        self.last_report = msg
        return True, msg.distance_m(self.cfg.min_energy)


class TFminiSensor(SerialSensor):
    """Single-point LiDAR: a weak or saturated return means nobody in range."""

    last_measurement: tfmini.Measurement | None = None

    def _new_parser(self):
        return tfmini.Parser()

    def _distance(self, msg):
        self.last_measurement = msg
        return True, msg.distance_m(self.cfg.min_strength)
