"""Opening and closing a serial port, shared by the DMX widgets and the presence sensors.

pyserial is imported inside `open_serial`, not at the top: a box whose config names no serial
device must start without it (tests/test_engines.py checks the start-up imports).
"""
from __future__ import annotations


def open_serial(port: str, baud: int, timeout: float = 0.05, write_timeout: float | None = 0.5):
    """pyserial port from a device path or a pyserial URL (socket://, rfc2217://, loop://)."""
    import serial
    return serial.serial_for_url(port, baudrate=baud, timeout=timeout, write_timeout=write_timeout)


def close_quietly(port) -> None:
    """Close `port` (None is fine). Callers close because the device failed or is being dropped, and
    an unplugged device's close can fail too; that second error must not replace the first."""
    if port is not None:
        try:
            port.close()
        except OSError:
            pass
