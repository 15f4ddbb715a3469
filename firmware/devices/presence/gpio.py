"""Presence from GPIO sensors through gpiozero: HC-SR04 ultrasonic (DistanceSensor) and PIR
(MotionSensor). On a Jetson the pins go through firmware.devices.jetson_pins.JetsonFactory, since
gpiozero's own pin factories only run on a Raspberry Pi; tests pass gpiozero's MockFactory.
"""
from __future__ import annotations

import threading
import warnings

from firmware.devices.base import Latest
from firmware.devices.presence.interface import PresenceSensor, Reading


def default_pin_factory(kind: str = "auto"):
    """None lets gpiozero choose (Pi, or GPIOZERO_PIN_FACTORY); a Jetson gets JetsonFactory."""
    import os
    from firmware.devices.jetson_pins import JetsonFactory, is_jetson
    if kind == "jetson" or (kind == "auto" and is_jetson() and not os.environ.get("GPIOZERO_PIN_FACTORY")):
        return JetsonFactory()
    return None


class _PolledGpioSensor(PresenceSensor):
    """Polls a gpiozero device at `rate_hz` on its own thread and publishes Readings."""

    rate_hz = 10.0
    retry_s = 5.0      # between attempts to open the GPIO device

    def __init__(self, cfg, clock, pin_factory=None) -> None:
        super().__init__()
        self.cfg, self.clock = cfg, clock
        self.name = f"presence[{cfg.type}]"
        self._factory = pin_factory
        self._latest: Latest[Reading] = Latest()
        self._stop = threading.Event()
        self._device = None
        self._open()   # a missing GPIO library or pin is a fault, retried by the thread, never a crash
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _open(self) -> bool:
        try:
            if self._factory is None:
                self._factory = default_pin_factory(self.cfg.pin_factory)
            self._device = self._make_device()
            return True
        except Exception as exc:  # gpiozero/Jetson.GPIO raise many types (BadPinFactory, RuntimeError...)
            self.fault(f"cannot open GPIO: {exc}")
            return False

    def latest(self) -> Reading | None:
        return self._latest.get()

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        while not self._stop.wait(period):
            if self._device is None:
                if not self._open():
                    self._stop.wait(self.retry_s)
                continue
            try:
                self._poll()
            except Exception as exc:  # a GPIO driver error must not end the thread silently
                self.fault(f"GPIO read failed: {exc}")

    def _publish(self, distance_m: float | None) -> None:
        self._latest.put(Reading(distance_m=distance_m, t=self.clock.now()))
        self.recover("reading")

    def _close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        if self._device is not None:
            self._device.close()


class DistanceSensorBackend(_PolledGpioSensor):
    """HC-SR04: median-filtered echo time -> metres; at `max_distance_m` or beyond means nobody.

    gpiozero keeps its last distance when echoes stop, so we watch the echo pin's edges ourselves:
    no echo for `stale_after_s` (unplugged or dead sensor) stops publishing and raises a fault.
    """

    def __init__(self, cfg, clock, pin_factory=None) -> None:
        self.rate_hz = cfg.rate_hz
        super().__init__(cfg, clock, pin_factory)

    def _make_device(self):
        from gpiozero import DistanceSensor
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "use pigpio for accuracy": not available on a Jetson
            dev = DistanceSensor(echo=self.cfg.echo_pin, trigger=self.cfg.trigger_pin, queue_len=5,
                                 max_distance=self.cfg.max_distance_m, partial=True,
                                 pin_factory=self._factory)
        self._last_echo = self.clock.now()
        self._echoes = 0
        inner = dev._echo_changed

        def spy(ticks, level):  # wraps gpiozero's handler; the pin holds only a weak reference
            if not level:
                self._echoes += 1
                self._last_echo = self.clock.now()
            inner(ticks, level)

        self._spy = spy
        dev.pin.when_changed = spy
        return dev

    def _poll(self) -> None:
        now = self.clock.now()
        if now - self._last_echo > self.cfg.stale_after_s or self._echoes == 0:
            if now - self._last_echo > self.cfg.stale_after_s:
                self.fault(f"stale sensor: no echo on pin {self.cfg.echo_pin} for "
                           f"{now - self._last_echo:.1f} s")
            return
        d = self._device.distance
        self._publish(None if d >= self.cfg.max_distance_m * 0.98 else round(d, 3))


class MotionSensorBackend(_PolledGpioSensor):
    """PIR: motion -> `present_distance_m`, none -> `absent_distance_m` (the show's filter decides)."""

    def _make_device(self):
        from gpiozero import MotionSensor
        return MotionSensor(self.cfg.pin, pin_factory=self._factory)

    def _poll(self) -> None:
        moving = self._device.motion_detected
        self._publish(self.cfg.present_distance_m if moving else self.cfg.absent_distance_m)
