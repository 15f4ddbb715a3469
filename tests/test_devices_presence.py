"""Presence backends against emulators: LD2410 and TFmini on pty pairs (with unplug and replug),
HC-SR04 and PIR through gpiozero's MockFactory, and the Jetson pin factory on a fake Jetson.GPIO."""
from __future__ import annotations

import time
import types

import pytest

from firmware.clock import RealClock
from firmware.config.devices import PresenceDistance, PresenceLD2410, PresenceMotion, PresenceTFmini
from firmware.devices.emulators.lidar import TFminiEmulator
from firmware.devices.emulators.radar import LD2410Emulator
from firmware.devices.presence.table import open_presence
from waiting import wait_for


@pytest.fixture
def radar(tmp_path):
    emu = LD2410Emulator(tmp_path / "humus-radar", distance_cm=400).start()
    yield emu
    emu.close()


def test_ld2410_reads_visitor_distance_and_follows_it(radar):
    cfg = PresenceLD2410(type="ld2410", port=radar.port.path, stale_after_s=1.0)
    with open_presence(cfg, RealClock()) as s:
        assert wait_for(lambda: s.latest() is not None and s.latest().distance_m == 4.0)
        radar.distance_cm = 150
        assert wait_for(lambda: s.latest().distance_m == 1.5)
        radar.distance_cm = None
        assert wait_for(lambda: s.latest().distance_m is None)
        assert s.health.ok and s.parser.rejected == 0 and s.rejected == 0
        assert s.gates == ()                 # basic reports carry no per-gate energies


def test_ld2410_ignores_weak_targets(radar):
    radar.energy = 5
    cfg = PresenceLD2410(type="ld2410", port=radar.port.path, min_energy=10)
    with open_presence(cfg, RealClock()) as s:
        assert wait_for(lambda: s.frames >= 2)
        assert s.latest().distance_m is None


def test_ld2410_engineering_mode_is_requested_and_parsed(radar):
    cfg = PresenceLD2410(type="ld2410", port=radar.port.path, engineering=True)
    with open_presence(cfg, RealClock()) as s:
        assert wait_for(lambda: s.last_report is not None and s.last_report.engineering)
        assert len(s.last_report.moving_gates) == 9 and s.latest().distance_m == 4.0
        assert len(s.gates) == 9             # what `humus calibrate` prints
    assert radar.commands[:3] == [bytes.fromhex("fdfcfbfa0400ff00010004030201"),
                                  bytes.fromhex("fdfcfbfa0200620004030201"),
                                  bytes.fromhex("fdfcfbfa0200fe0004030201")]


def test_ld2410_survives_dropped_bytes(radar):
    radar.inject("drop_bytes")
    cfg = PresenceLD2410(type="ld2410", port=radar.port.path)
    with open_presence(cfg, RealClock()) as s:
        assert wait_for(lambda: s.frames >= 3 and s.parser.rejected >= 3)
        assert s.rejected >= 3               # what `humus doctor` reports as bad frames
        assert s.latest().distance_m == 4.0 and s.health.ok


def test_ld2410_unplug_goes_stale_and_replug_recovers(radar):
    cfg = PresenceLD2410(type="ld2410", port=radar.port.path, stale_after_s=0.3)
    with open_presence(cfg, RealClock()) as s:
        assert wait_for(lambda: s.frames > 0)
        radar.inject("unplug")
        assert wait_for(lambda: not s.health.ok)
        t_last = s.latest().t
        assert "lost" in s.health.detail or "stale" in s.health.detail
        time.sleep(0.5)
        assert s.latest().t == t_last              # nothing new while unplugged: the filter sees it age
        radar.distance_cm = 120
        radar.heal()                               # a new /dev/pts/N behind the same name
        assert wait_for(lambda: s.health.ok and s.latest().distance_m == 1.2, timeout=5)
        assert s.opens >= 2 and s.health.recoveries >= 1 and s.health.faults == 1


def test_ld2410_silent_port_raises_stale_fault(radar):
    radar.inject("silent")                         # port present, radar mute
    cfg = PresenceLD2410(type="ld2410", port=radar.port.path, stale_after_s=0.2)
    with open_presence(cfg, RealClock()) as s:
        assert wait_for(lambda: not s.health.ok)
        assert "stale" in s.health.detail and s.latest() is None


def test_missing_port_faults_without_raising(tmp_path):
    cfg = PresenceLD2410(type="ld2410", port=str(tmp_path / "nothing"))
    s = open_presence(cfg, RealClock())
    assert wait_for(lambda: not s.health.ok)
    assert "cannot open" in s.health.detail
    s.close()
    s.close()                                      # idempotent
    assert s.closed


def test_tfmini_checksum_verified_and_strength_gated(tmp_path):
    emu = TFminiEmulator(tmp_path / "humus-lidar", distance_cm=250, strength=2000).start()
    try:
        cfg = PresenceTFmini(type="tfmini", port=emu.port.path, stale_after_s=0.3)
        with open_presence(cfg, RealClock()) as s:
            assert wait_for(lambda: s.latest() is not None and s.latest().distance_m == 2.5)
            emu.strength = 40
            assert wait_for(lambda: s.latest().distance_m is None)
            emu.inject("corrupt")                  # every checksum wrong: nothing valid -> stale
            assert wait_for(lambda: not s.health.ok)
            assert "stale" in s.health.detail and "checksum" in s.health.detail
            emu.heal()
            emu.strength = 2000
            assert wait_for(lambda: s.health.ok and s.latest().distance_m == 2.5)
            emu.inject("unplug")
            assert wait_for(lambda: not s.health.ok)
            emu.heal()
            assert wait_for(lambda: s.health.ok, timeout=5)
    finally:
        emu.close()


# --------------------------------------------------------------------------------- GPIO sensors
@pytest.fixture
def mock_factory():
    from gpiozero.pins.mock import MockFactory
    f = MockFactory()
    yield f
    f.close()
    f.reset()


def test_distance_sensor_hcsr04(mock_factory):
    from gpiozero.pins.mock import MockTriggerPin
    echo = mock_factory.pin(24)
    # 0.0087 s echo = 1.49 m at 343.26 m/s (there and back)
    mock_factory.pin(23, pin_class=MockTriggerPin, echo_pin=echo, echo_time=0.0087)
    cfg = PresenceDistance(type="distance", echo_pin=24, trigger_pin=23, max_distance_m=4.0, rate_hz=20,
                           stale_after_s=0.5)
    from firmware.devices.presence.gpio import DistanceSensorBackend
    with DistanceSensorBackend(cfg, RealClock(), pin_factory=mock_factory) as s:
        assert wait_for(lambda: s.latest() is not None)
        time.sleep(0.3)
        d = s.latest().distance_m
        # The mock's pulses are made with sleep() and run long under load: compare with the pulses
        # that really happened (MockPin records each state with the time since the previous change).
        widths = [st.timestamp for st in echo.states[1:] if st.state is False]
        real = [w * 343.26 / 2 for w in widths[-12:]]
        assert min(real) - 0.02 <= d <= max(real) + 0.02 and d == pytest.approx(1.49, abs=0.6)
        assert s.health.ok


@pytest.mark.filterwarnings("ignore::gpiozero.DistanceSensorNoEcho")
def test_distance_sensor_without_echo_goes_stale(mock_factory):
    from firmware.devices.presence.gpio import DistanceSensorBackend
    mock_factory.pin(24)
    mock_factory.pin(23)                           # a trigger pin wired to nothing: no echo ever
    cfg = PresenceDistance(type="distance", echo_pin=24, trigger_pin=23, rate_hz=20, stale_after_s=0.3)
    with DistanceSensorBackend(cfg, RealClock(), pin_factory=mock_factory) as s:
        assert wait_for(lambda: not s.health.ok)
        assert "no echo" in s.health.detail and s.latest() is None


def test_motion_sensor_pir(mock_factory):
    from firmware.devices.presence.gpio import MotionSensorBackend
    pin = mock_factory.pin(17)
    cfg = PresenceMotion(type="motion", pin=17, present_distance_m=1.0, absent_distance_m=8.0)
    with MotionSensorBackend(cfg, RealClock(), pin_factory=mock_factory) as s:
        assert wait_for(lambda: s.latest() is not None and s.latest().distance_m == 8.0)
        pin.drive_high()
        assert wait_for(lambda: s.latest().distance_m == 1.0)
        pin.drive_low()
        assert wait_for(lambda: s.latest().distance_m == 8.0)


def test_open_presence_uses_gpiozero_default_factory(mock_factory, monkeypatch):
    from gpiozero import Device
    monkeypatch.setattr(Device, "pin_factory", mock_factory)
    cfg = PresenceMotion(type="motion", pin=17)
    with open_presence(cfg, RealClock()) as s:
        assert wait_for(lambda: s.latest() is not None)
        assert s.latest().distance_m == cfg.absent_distance_m


class FakeJetsonGPIO(types.SimpleNamespace):
    """The slice of Jetson.GPIO's API the factory uses, with pins you can drive from the test."""

    BOARD, IN, OUT, BOTH, RISING, FALLING = "BOARD", "IN", "OUT", 33, 31, 32

    def __init__(self):
        super().__init__(mode=None, setups={}, levels={}, callbacks={}, outputs=[])

    def setwarnings(self, flag): pass
    def setmode(self, mode): self.mode = mode
    def setup(self, ch, direction, initial=None):
        self.setups[ch] = direction
        if initial is not None:
            self.output(ch, initial)
    def input(self, ch): return self.levels.get(ch, 0)
    def output(self, ch, v):
        assert self.setups.get(ch) == self.OUT, f"pin {ch} is not an output"
        self.levels[ch] = v
        self.outputs.append((ch, v))
    def add_event_detect(self, ch, edge, callback=None, bouncetime=None): self.callbacks[ch] = callback
    def remove_event_detect(self, ch): self.callbacks.pop(ch, None)
    def cleanup(self, ch=None): pass

    def drive(self, ch, v):
        self.levels[ch] = v
        if ch in self.callbacks:
            self.callbacks[ch](ch)


def test_jetson_factory_drives_gpiozero_devices():
    from gpiozero import LED, Button, MotionSensor
    from firmware.devices.jetson_pins import JetsonFactory
    gpio = FakeJetsonGPIO()
    f = JetsonFactory(gpio=gpio)
    try:
        assert gpio.mode == "BOARD"
        pir = MotionSensor(17, pin_factory=f)        # BCM 17 = physical pin 11 on the 40-pin header
        assert gpio.setups[11] == "IN"
        gpio.drive(11, 1)
        assert wait_for(lambda: pir.motion_detected, timeout=1)
        led = LED("BOARD13", pin_factory=f)
        led.on()
        assert gpio.outputs[-1] == (13, 1)
        pressed = []
        btn = Button("GPIO22", pull_up=False, pin_factory=f)    # physical 15
        btn.when_pressed = lambda: pressed.append(True)
        gpio.drive(15, 1)
        assert pressed == [True]
        for d in (pir, led, btn):
            d.close()
    finally:
        f.close()


def test_jetson_detection_is_false_here():
    from firmware.devices.jetson_pins import is_jetson
    assert is_jetson() is False


def test_gpio_backend_without_a_usable_pin_factory_faults_then_opens(mock_factory):
    from firmware.devices.presence.gpio import MotionSensorBackend

    class Broken:
        """Stands in for a pin factory that cannot start (no Jetson.GPIO, no permissions)."""

        def __getattr__(self, name):
            raise RuntimeError("no access to /dev/gpiochip0")

    cfg = PresenceMotion(type="motion", pin=17)
    s = MotionSensorBackend(cfg, RealClock(), pin_factory=Broken())
    try:
        assert not s.health.ok and "cannot open GPIO" in s.health.detail and s.latest() is None
        s._factory, s.retry_s = mock_factory, 0.05   # the permission gets fixed
        assert wait_for(lambda: s.latest() is not None and s.health.ok)
    finally:
        s.close()


def test_health_follows_the_filters_staleness_and_lifts_only_its_own_verdict():
    from firmware.clock import FakeClock
    from firmware.config.devices import PresenceSim
    from firmware.devices.presence.sim import NoPresence, SimPresence
    sensor = SimPresence(PresenceSim(type="sim"), FakeClock())
    seen = sensor.latest()
    sensor.follow_filter(True, 2.0, seen)
    assert not sensor.health.ok and sensor.health.detail == "stale sensor: no reading for 2 s"
    sensor.follow_filter(False, 2.0, seen)
    assert sensor.health.ok
    sensor.follow_filter(True, 2.0, seen)
    sensor.fault("/dev/humus-radar lost: gone")        # the sensor's own fault, raised meanwhile
    sensor.follow_filter(False, 2.0, seen)
    assert not sensor.health.ok and sensor.health.detail == "/dev/humus-radar lost: gone"
    none = NoPresence()
    none.follow_filter(True, 2.0, None)                # nothing to go quiet: never stale
    assert none.health.ok


def test_a_reading_published_after_the_frame_read_its_input_starts_no_stale_episode():
    """The radar comes back from an unplug between the frame's read and its health verdict: the
    verdict judged a reading already replaced, so it raises no new fault episode (the soak's
    'health flaps' check caught one per unplug before)."""
    from firmware.clock import FakeClock
    from firmware.devices.presence.uart import LD2410Sensor
    from firmware.devices.protocols.ld2410 import Report, encode_report
    frame = encode_report(Report(False, 1, 150, 60, 0, 0, 150))
    clock = FakeClock(100.0)
    sensor = LD2410Sensor(PresenceLD2410(type="ld2410", port="/dev/null"), clock, start=False)
    sensor.feed(frame)
    old = sensor.latest()
    assert old is not None and old.distance_m == 1.5 and sensor.health.ok
    sensor.fault("/dev/humus-radar lost: gone")           # unplugged: the sensor's own episode
    clock.advance(3.0)
    judged = sensor._latest.get()                          # the frame reads the old reading...
    sensor.feed(frame)                                     # ...the port is back, a frame arrives...
    assert sensor.health.ok and sensor.health.faults == 1
    sensor.follow_filter(True, 2.0, judged)                # ...and the frame judges the old one stale
    assert sensor.health.ok and sensor.health.faults == 1
    sensor.follow_filter(False, 2.0, sensor.latest())      # the next frame sees the fresh reading
    assert sensor.health.ok and sensor.health.faults == 1
    clock.advance(3.0)                                     # really silent now: the verdict stands
    stale = sensor._latest.get()
    sensor.follow_filter(True, 2.0, stale)
    assert not sensor.health.ok and sensor.health.faults == 2
    assert sensor.health.detail == "stale sensor: no reading for 2 s"
