"""sd_notify(3) in a few lines: readiness, status text and watchdog pings to systemd.

Off systemd ($NOTIFY_SOCKET unset: a dev machine, a test, `humus run` by hand)
every call is a no-op, so the runtime can call it unconditionally. A failure to
send is logged once and never raised: losing a ping must not crash the show
(systemd's watchdog will notice if pings really stop).
"""
from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def watchdog_interval(environ: dict[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between pings the service should aim for (half of WatchdogSec), or None.

    systemd sets $WATCHDOG_USEC (and $WATCHDOG_PID, the process it expects pings
    from). Pinging at half the timeout leaves room for one late frame.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    wpid = env.get("WATCHDOG_PID")
    if wpid and int(wpid) != (os.getpid() if pid is None else pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 / 2 if value > 0 else None


class Notifier:
    """Talks to systemd over $NOTIFY_SOCKET (an AF_UNIX datagram socket)."""

    def __init__(self, address: str | None = None):
        if address is None:
            address = os.environ.get("NOTIFY_SOCKET") or None
        # A leading '@' names a Linux abstract socket; the kernel wants a NUL byte.
        self._address = ("\0" + address[1:]) if address and address.startswith("@") else address
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send "KEY=VALUE" lines; True if systemd got them, False when off systemd or on error."""
        if not self._address:
            return False
        payload = "\n".join(fields).encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(payload, self._address)
            return True
        except OSError as exc:
            if not self._warned:
                log.warning("sd_notify to %r failed: %s (further failures are silent)", self._address, exc)
                self._warned = True
            return False

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up is complete: call once devices are open and the model is warm."""
        fields = ["READY=1"] + ([f"STATUS={status}"] if status else [])
        return self.notify(*fields)

    def watchdog(self) -> bool:
        """Ping the watchdog. Call from the main loop, and only while the loop is healthy."""
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """One-line status shown by `systemctl status humus`."""
        return self.notify(f"STATUS={text.splitlines()[0] if text else ''}")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start-up time (e.g. while TensorRT builds an engine on first boot)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
