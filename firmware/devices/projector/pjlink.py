"""PJLink class 1 over TCP (port 4352): power on/off, with the standard's MD5 authentication.

The projector greets every connection: `PJLINK 0\r` (no password) or `PJLINK 1 <8 random chars>\r`.
With a password, every command is prefixed with MD5(random + password) as 32 lower-case hex digits.
Commands are `%1POWR 1\r` / `%1POWR 0\r` / `%1POWR ?\r`; answers `%1POWR=OK\r`, `%1POWR=1\r`, or an
error: ERR1 undefined command, ERR2 out of parameter, ERR3 unavailable time (warming/cooling),
ERR4 projector failure; `PJLINK ERRA\r` = wrong password. One connection per command keeps the
client stateless: projectors close idle connections after ~30 s anyway.

A projector to talk to on loopback (tests, rehearsals): firmware/devices/emulators/network.py.
"""
from __future__ import annotations

import hashlib
import socket

ERRORS = {"ERR1": "undefined command", "ERR2": "out of parameter",
          "ERR3": "unavailable time (warming up or cooling down)", "ERR4": "projector failure"}


class PJLinkError(OSError):
    """Any failure talking to the projector; an OSError so the power control treats it as a fault."""


def auth_prefix(greeting: str, password: str | None) -> str:
    """What goes before each command, from the projector's greeting (without the \\r)."""
    if greeting == "PJLINK 0":
        return ""
    if greeting.startswith("PJLINK 1 ") and len(greeting) == 17 and greeting.isascii():
        if password is None:
            raise PJLinkError("the projector asks for a PJLink password; set [projector] password")
        if not password.isascii():
            raise PJLinkError("a PJLink password is ASCII (the standard: up to 32 letters and digits)")
        return hashlib.md5((greeting[9:] + password).encode("ascii")).hexdigest()
    if greeting == "PJLINK ERRA":
        raise PJLinkError("the projector refused the connection (PJLINK ERRA)")
    raise PJLinkError(f"not a PJLink greeting: {greeting[:40]!r}")


def _readline(sock: socket.socket) -> str:
    buf = bytearray()
    while not buf.endswith(b"\r"):
        chunk = sock.recv(1)
        if not chunk:
            raise PJLinkError("the projector closed the connection")
        buf += chunk
        if len(buf) > 256:
            raise PJLinkError("answer longer than the protocol allows")
    return buf[:-1].decode("ascii", "replace")


def exchange(sock, body: str, password: str | None = None) -> str:
    """One command on an open connection (anything with recv and sendall): read the greeting, send
    `%1<body>` with the auth prefix it asks for, return the answer's parameter ('OK', '1', ...).
    Whatever the projector sends, the only error is PJLinkError (tests/test_fuzz_network.py)."""
    prefix = auth_prefix(_readline(sock), password)
    sock.sendall(f"{prefix}%1{body}\r".encode("ascii"))
    return parse_answer(body, _readline(sock))


def parse_answer(body: str, answer: str) -> str:
    """The parameter of the answer to `%1<body>` (without its \\r), or PJLinkError saying why not."""
    if answer == "PJLINK ERRA":
        raise PJLinkError("wrong PJLink password (PJLINK ERRA)")
    head = f"%1{body.split()[0]}="
    if not answer.startswith(head):
        raise PJLinkError(f"unexpected answer {answer[:40]!r} to {body!r}")
    param = answer[len(head):]
    if param in ERRORS:
        raise PJLinkError(f"{body}: {param} {ERRORS[param]}")
    return param


def command(host: str, port: int, body: str, password: str | None = None, timeout: float = 5.0) -> str:
    """Send `%1<body>` (e.g. 'POWR 1') and return the answer's parameter ('OK', '1', ...)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return exchange(sock, body, password)
    except PJLinkError:
        raise
    except OSError as exc:   # refused, unreachable, timed out
        raise PJLinkError(f"{host}:{port}: {exc}") from exc


class PJLinkProjector:
    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.name = f"projector[pjlink {cfg.host}:{cfg.port}]"

    def power(self, on: bool) -> None:
        command(self.cfg.host, self.cfg.port, f"POWR {int(on)}", self.cfg.password, self.cfg.timeout_s)

    def is_on(self) -> bool | None:
        state = command(self.cfg.host, self.cfg.port, "POWR ?", self.cfg.password, self.cfg.timeout_s)
        return {"0": False, "1": True, "2": False, "3": True}.get(state)   # 2 cooling, 3 warming
