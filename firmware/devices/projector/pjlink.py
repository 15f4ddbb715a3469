"""PJLink class 1 over TCP (port 4352): power on/off, with the standard's MD5 authentication.

The projector greets every connection: `PJLINK 0\r` (no password) or `PJLINK 1 <8 random chars>\r`.
With a password, every command is prefixed with MD5(random + password) as 32 lower-case hex digits.
Commands are `%1POWR 1\r` / `%1POWR 0\r` / `%1POWR ?\r`; answers `%1POWR=OK\r`, `%1POWR=1\r`, or an
error: ERR1 undefined command, ERR2 out of parameter, ERR3 unavailable time (warming/cooling),
ERR4 projector failure; `PJLINK ERRA\r` = wrong password. One connection per command keeps the
client stateless: projectors close idle connections after ~30 s anyway.

`PJLinkEmulator` is a projector on a loopback socket for tests, `humus bench` and rehearsals.
"""
from __future__ import annotations

import hashlib
import secrets
import socket
import threading

ERRORS = {"ERR1": "undefined command", "ERR2": "out of parameter",
          "ERR3": "unavailable time (warming up or cooling down)", "ERR4": "projector failure"}


class PJLinkError(OSError):
    """Any failure talking to the projector; an OSError so the power control treats it as a fault."""


def auth_prefix(greeting: str, password: str | None) -> str:
    """What goes before each command, from the projector's greeting (without the \\r)."""
    if greeting == "PJLINK 0":
        return ""
    if greeting.startswith("PJLINK 1 ") and len(greeting) == 17:
        if password is None:
            raise PJLinkError("the projector asks for a PJLink password; set [projector] password")
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


def command(host: str, port: int, body: str, password: str | None = None, timeout: float = 5.0) -> str:
    """Send `%1<body>` (e.g. 'POWR 1') and return the answer's parameter ('OK', '1', ...)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            prefix = auth_prefix(_readline(sock), password)
            sock.sendall(f"{prefix}%1{body}\r".encode("ascii"))
            answer = _readline(sock)
    except PJLinkError:
        raise
    except OSError as exc:   # refused, unreachable, timed out
        raise PJLinkError(f"{host}:{port}: {exc}") from exc
    if answer == "PJLINK ERRA":
        raise PJLinkError("wrong PJLink password (PJLINK ERRA)")
    head = f"%1{body.split()[0]}="
    if not answer.startswith(head):
        raise PJLinkError(f"unexpected answer {answer[:40]!r} to {body!r}")
    param = answer[len(head):]
    if param in ERRORS:
        raise PJLinkError(f"{body}: {param} {ERRORS[param]}")
    return param


class PJLinkProjector:
    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.name = f"projector[pjlink {cfg.host}:{cfg.port}]"

    def power(self, on: bool) -> None:
        command(self.cfg.host, self.cfg.port, f"POWR {int(on)}", self.cfg.password, self.cfg.timeout_s)

    def is_on(self) -> bool | None:
        state = command(self.cfg.host, self.cfg.port, "POWR ?", self.cfg.password, self.cfg.timeout_s)
        return {"0": False, "1": True, "2": False, "3": True}.get(state)   # 2 cooling, 3 warming


class PJLinkEmulator:
    """A class 1 projector on 127.0.0.1: answers POWR, checks the MD5 prefix, records every line.

    `mute = True` accepts connections and never answers (a hung projector); `busy = True` answers
    ERR3; `close()` stops listening (the projector unplugged)."""

    def __init__(self, password: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.password = password
        self.power = False
        self.mute = False
        self.busy = False
        self.lines: list[bytes] = []       # every line received, as sent on the wire
        self.greetings: list[bytes] = []
        self.auth_failures = 0
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(0.1)   # the accept loop checks for close() this often
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="pjlink-emulator")
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:     # closed under us by close()
                return
            with conn:
                try:
                    self._session(conn)
                except OSError:
                    pass

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(2.0)
        if self.mute:
            self._stop.wait(3.0)
            return
        rand = secrets.token_hex(4) if self.password is not None else None
        greeting = (f"PJLINK 1 {rand}\r" if rand else "PJLINK 0\r").encode()
        self.greetings.append(greeting)
        conn.sendall(greeting)
        line = bytearray()
        while not line.endswith(b"\r"):
            chunk = conn.recv(1)
            if not chunk:
                return
            line += chunk
        self.lines.append(bytes(line))
        text = line[:-1].decode("ascii", "replace")
        if rand is not None:
            want = hashlib.md5((rand + self.password).encode()).hexdigest()
            if not text.startswith(want):
                self.auth_failures += 1
                conn.sendall(b"PJLINK ERRA\r")
                return
            text = text[32:]
        conn.sendall(self._answer(text).encode())

    def _answer(self, text: str) -> str:
        if not text.startswith("%1POWR "):
            return f"{text[:6]}=ERR1\r"
        arg = text[7:]
        if self.busy:
            return "%1POWR=ERR3\r"
        if arg == "?":
            return f"%1POWR={int(self.power)}\r"
        if arg in ("0", "1"):
            self.power = arg == "1"
            return "%1POWR=OK\r"
        return "%1POWR=ERR2\r"

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=2)
