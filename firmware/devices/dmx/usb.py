"""DMX over USB serial: the Enttec DMX USB Pro (and compatible widgets) and the FTDI "Open DMX".

Transports only open, send one universe, and close; `DmxSender` owns the fixed rate and the
reopen-with-backoff. Every failure surfaces as OSError (pyserial's SerialException is one), which is
what the sender treats as "the interface is gone".
"""
from __future__ import annotations

import time

from firmware.devices.dmx.interface import DmxTransport
from firmware.devices.protocols import FrameError, enttec
from firmware.devices.serial_port import close_quietly, open_serial


class SerialDmxTransport(DmxTransport):
    """What both USB interfaces share: open at `baud`, set the port up, close without raising.

    A port whose set-up fails is closed again before the error goes up, so the sender's reopen loop
    does not leak a file descriptor on every retry.
    """

    kind: str    # in the device name, as the config's `type` spells it
    baud: int

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.name = f"dmx[{self.kind} {cfg.port}]"
        self._port = None

    def open(self) -> None:
        self.close()
        port = open_serial(self.cfg.port, self.baud, timeout=0.2, write_timeout=0.5)
        try:
            self._set_up(port)
        except OSError:
            port.close()
            raise
        self._port = port

    def _set_up(self, port) -> None:
        pass

    def close(self) -> None:
        port, self._port = self._port, None
        close_quietly(port)


class EnttecProTransport(SerialDmxTransport):
    """Label 6 frames; on every open, label 4 sets the widget's break, MAB and output rate."""

    kind = "enttec-pro"
    baud = 115200  # a dummy for the widget's virtual COM port; a plain 115200 opens everywhere

    def _set_up(self, port) -> None:
        port.reset_input_buffer()
        port.write(enttec.encode_set_params(self.cfg.break_us, self.cfg.mab_us, self.cfg.rate_hz))

    def send(self, universe: bytes) -> None:
        if self._port is None:
            raise OSError("port not open")
        self._port.write(enttec.encode_dmx(universe))

    def query(self, label: int, request: bytes, timeout: float = 1.0) -> bytes:
        """Send a request and return the data of the widget's reply with the same label."""
        if self._port is None:
            self.open()
        parser = enttec.Parser()
        self._port.reset_input_buffer()
        self._port.write(request)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in parser.feed(self._port.read(self._port.in_waiting or 1)):
                if msg.label == label:
                    return msg.data
        raise TimeoutError(f"no label {label} reply from {self.cfg.port} within {timeout:.1f} s"
                           + (f" (last error: {parser.last_error})" if parser.last_error else ""))

    def serial_number(self, timeout: float = 1.0) -> str:
        """The number printed on the widget's case (label 10)."""
        return enttec.decode_serial(self.query(enttec.LABEL_GET_SERIAL, enttec.encode_get_serial(), timeout))

    def parameters(self, timeout: float = 1.0) -> enttec.WidgetParams:
        return enttec.decode_params(self.query(enttec.LABEL_GET_PARAMS, enttec.encode_get_params(), timeout))


class OpenDmxTransport(SerialDmxTransport):
    """FTDI at 250 kbit/s 8N2 with no microcontroller: the host makes break and MAB itself.

    Known to flicker when the OS is busy; prefer a Pro-style widget or Art-Net/sACN.
    """

    kind = "open-dmx"
    baud = 250000

    def _set_up(self, port) -> None:
        import serial
        try:
            port.bytesize, port.parity, port.stopbits = serial.EIGHTBITS, serial.PARITY_NONE, serial.STOPBITS_TWO
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot set 250000 8N2 on {self.cfg.port}: {exc}") from exc

    def send(self, universe: bytes) -> None:
        port = self._port
        if port is None:
            raise OSError("port not open")
        port.break_condition = True
        _spin(self.cfg.break_us * 1e-6)
        port.break_condition = False
        _spin(self.cfg.mab_us * 1e-6)
        port.write(b"\x00" + bytes(universe))
        # Let the frame drain before the next break, or the break would cut it short.
        port.flush()


def _spin(seconds: float) -> None:
    """Sub-millisecond wait: sleep() overshoots by ~50-100 us, which would double a 100 us break."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def describe_reply_error(exc: Exception) -> str:
    return f"bad reply at byte {exc.offset}: {exc}" if isinstance(exc, FrameError) else str(exc)
