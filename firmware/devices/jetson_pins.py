"""A gpiozero pin factory backed by Jetson.GPIO, so gpiozero's devices run on a Jetson.

gpiozero's own factories check the Raspberry Pi revision and refuse other boards. The Jetson's 40-pin
header follows the Pi's layout, so we describe it with gpiozero's Pi header table (pin names such as
17, "GPIO17", "BCM17", "BOARD11" and "J8:11" all work) and drive the pin by its physical number with
Jetson.GPIO in BOARD mode. Jetson.GPIO is imported only when the factory is built (or injected in
tests); PWM is Jetson.GPIO's and only exists on the PWM-capable header pins.
"""
from __future__ import annotations

import time
from pathlib import Path

from gpiozero.exc import PinInvalidFunction, PinInvalidPull, PinInvalidState, PinPWMFixedValue, PinSetInput
from gpiozero.pins.pi import PiBoardInfo, PiFactory, PiPin

# A Pi 4B revision code: only used to borrow the 40-pin J8 header table.
_PI_HEADER_REVISION = 0xA03111


def is_jetson() -> bool:
    """True on NVIDIA Tegra boards (the device tree says nvidia,tegra...)."""
    try:
        return b"nvidia,tegra" in Path("/proc/device-tree/compatible").read_bytes()
    except OSError:
        return False


def _board_model() -> str:
    try:
        return Path("/proc/device-tree/model").read_bytes().rstrip(b"\0").decode("ascii", "replace")
    except OSError:
        return "NVIDIA Jetson"


class JetsonFactory(PiFactory):
    """`JetsonFactory()` on the box; `JetsonFactory(gpio=fake_module)` in tests."""

    def __init__(self, gpio=None) -> None:
        super().__init__()
        if gpio is None:
            import Jetson.GPIO as gpio  # vendor library: only on the box
        self.gpio = gpio
        gpio.setwarnings(False)
        gpio.setmode(gpio.BOARD)
        self.pin_class = JetsonPin

    def _get_revision(self):
        return _PI_HEADER_REVISION

    def _get_board_info(self):
        if self._info is None:
            pi = PiBoardInfo.from_revision(_PI_HEADER_REVISION)
            self._info = pi._replace(revision="jetson", model=_board_model(), soc="Tegra",
                                     manufacturer="NVIDIA", headers={"J8": pi.headers["J8"]})
        return self._info

    @staticmethod
    def ticks():
        return time.monotonic()

    @staticmethod
    def ticks_diff(later, earlier):
        return later - earlier

    def close(self) -> None:
        super().close()
        try:
            self.gpio.cleanup()
        except Exception:  # cleanup of never-configured pins raises on some versions
            pass


class JetsonPin(PiPin):
    """One header pin through Jetson.GPIO (physical numbering)."""

    def __init__(self, factory, info) -> None:
        super().__init__(factory, info)
        self._gpio = factory.gpio
        self._board = info.number          # physical pin on the 40-pin header
        self._function = "input"
        self._pull = info.pull or "floating"
        self._bounce = None
        self._edges = "both"
        self._pwm = None
        self._frequency = None
        self._duty = None
        self._gpio.setup(self._board, self._gpio.IN)

    def close(self) -> None:
        self.frequency = None
        self.when_changed = None
        try:
            self._gpio.cleanup(self._board)
        except Exception:
            pass

    def _get_function(self):
        return self._function

    def _set_function(self, value):
        if value not in ("input", "output"):
            raise PinInvalidFunction(f'invalid function "{value}" for pin {self!r}')
        self._gpio.setup(self._board, self._gpio.IN if value == "input" else self._gpio.OUT)
        self._function = value

    def output_with_state(self, state):
        self._gpio.setup(self._board, self._gpio.OUT, initial=int(bool(state)))
        self._function = "output"

    def _get_state(self):
        if self._pwm is not None:
            return self._duty
        return self._gpio.input(self._board)

    def _set_state(self, value):
        if self._pwm is not None:
            self._pwm.ChangeDutyCycle(value * 100)
            self._duty = value
            return
        if self._function != "output":
            raise PinSetInput(f"cannot set state of input pin {self!r}")
        if value not in (0, 1, True, False):
            raise PinInvalidState(f'invalid state "{value}" for pin {self!r}')
        self._gpio.output(self._board, int(bool(value)))

    def _get_pull(self):
        return self._pull

    def _set_pull(self, value):
        # The Orin's header pins have fixed pulls set in the pinmux; Jetson.GPIO cannot change them.
        if value not in ("floating", "up", "down"):
            raise PinInvalidPull(f'invalid pull "{value}" for pin {self!r}')
        self._pull = value

    def _get_frequency(self):
        return self._frequency

    def _set_frequency(self, value):
        if value is None:
            if self._pwm is not None:
                self._pwm.stop()
            self._pwm = self._frequency = self._duty = None
            return
        if self._pwm is None:
            try:
                self._pwm = self._gpio.PWM(self._board, value)
            except (RuntimeError, ValueError) as exc:
                raise PinPWMFixedValue(f"pin {self!r} has no hardware PWM: {exc}") from exc
            self._pwm.start(0)
            self._duty = 0
        else:
            self._pwm.ChangeFrequency(value)
        self._frequency = value

    def _get_bounce(self):
        return self._bounce

    def _set_bounce(self, value):
        self._bounce = None if value is None else float(value)

    def _get_edges(self):
        return self._edges

    def _set_edges(self, value):
        f = self.when_changed
        self.when_changed = None
        try:
            self._edges = value
        finally:
            self.when_changed = f

    def _call_when_changed(self, channel=None):
        super()._call_when_changed(self._factory.ticks(), self._gpio.input(self._board))

    def _enable_event_detect(self):
        g = self._gpio
        edge = {"both": g.BOTH, "rising": g.RISING, "falling": g.FALLING}[self._edges]
        kwargs = {"callback": self._call_when_changed}
        if self._bounce:
            kwargs["bouncetime"] = int(self._bounce * 1000)
        g.add_event_detect(self._board, edge, **kwargs)

    def _disable_event_detect(self):
        self._gpio.remove_event_detect(self._board)
