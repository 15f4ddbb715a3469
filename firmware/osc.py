"""OSC show control over UDP, with python-osc (imported here only, and only when [osc] is written).

In: a python-osc server on its own thread puts every message in a queue; the box drains it once a
frame and applies it with the pure `firmware.show.control.apply_message`. A flood is cut at the
socket thread by a token bucket (`max_rate_hz`, one second of burst): what is over is dropped and
counted, so a runaway controller cannot grow memory or starve the frame loop.
Out: `send(address, value)` to every target; a send that fails (no route, the target's port closed)
is counted, never raised.
"""
from __future__ import annotations

import logging
import queue
import threading
import time

from firmware.config_venue import parse_hostport

log = logging.getLogger("humus.osc")
MAX_QUEUE = 10_000


def _resolved(host: str, port: int) -> tuple[str, int]:
    import socket
    try:
        return socket.gethostbyname(host), port
    except OSError as exc:   # no DNS yet at boot: keep the name, python-osc resolves it when sending
        log.warning("OSC: cannot resolve %s now (%s); will try on every send", host, exc)
        return host, port


class TokenBucket:
    def __init__(self, rate: float, burst: float, clock=time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = burst
        self.t = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class OscLink:
    def __init__(self, cfg) -> None:
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer
        from pythonosc.udp_client import SimpleUDPClient

        self.cfg = cfg
        self.inbox: queue.Queue = queue.Queue(MAX_QUEUE)
        self.received = 0
        self.dropped = 0          # over the rate limit (or the queue full)
        self.bad = 0              # unknown address or wrong arguments (counted by the box)
        self.sent = 0
        self.send_errors = 0
        self._bucket = TokenBucket(cfg.max_rate_hz, max(1.0, cfg.max_rate_hz))
        # Names are resolved once, here: a sendto() with a host name would ask DNS on every message,
        # from the frame loop.
        self.clients = [SimpleUDPClient(*_resolved(*parse_hostport(t))) for t in cfg.send]
        self.server = None
        self._thread = None
        if cfg.listen:
            dispatcher = Dispatcher()
            dispatcher.set_default_handler(self._on_message)
            self.server = BlockingOSCUDPServer(parse_hostport(cfg.listen), dispatcher)
            self.address = self.server.server_address[:2]
            self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                            name="osc-in", daemon=True)
            self._thread.start()
            log.info("OSC: listening on %s:%d", *self.address)

    def _on_message(self, address: str, *args) -> None:
        self.received += 1
        if not self._bucket.take():
            self.dropped += 1
            return
        try:
            self.inbox.put_nowait((time.monotonic(), address, args))
        except queue.Full:
            self.dropped += 1

    def poll(self) -> list[tuple[float, str, tuple]]:
        """Everything received since the last call: (arrival time, address, args)."""
        out = []
        while True:
            try:
                out.append(self.inbox.get_nowait())
            except queue.Empty:
                return out

    def send(self, address: str, value) -> None:
        for c in self.clients:
            try:
                c.send_message(address, value)
                self.sent += 1
            except OSError:
                self.send_errors += 1

    def status(self) -> dict:
        return {"listen": self.cfg.listen, "send": list(self.cfg.send), "received": self.received,
                "bad": self.bad, "dropped": self.dropped, "sent": self.sent, "send_errors": self.send_errors}

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self._thread.join(timeout=2.0)
            self.server = None
        for c in self.clients:
            try:
                c._sock.close()   # python-osc keeps the socket private and has no close()
            except (AttributeError, OSError):
                pass


def listening_sockets(pid: str = "self") -> set[tuple[str, str, int]]:
    """(proto, address, port) of every socket this process has bound to receive on: TCP in LISTEN,
    UDP bound to a port. Read from /proc, so it sees sockets whoever opened them (a library too)."""
    import os
    import socket
    import struct
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = set()
    for proto, path in (("tcp", "tcp"), ("udp", "udp"), ("tcp", "tcp6"), ("udp", "udp6")):
        try:
            lines = open(f"/proc/{pid}/net/{path}").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, state, inode = f[1], f[3], f[9]
            if inode not in inodes or (proto == "tcp" and state != "0A"):
                continue
            addr_hex, port_hex = local.split(":")
            raw = bytes.fromhex(addr_hex)
            if len(raw) == 4:
                addr = socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(addr_hex, 16)))
            else:
                addr = socket.inet_ntop(socket.AF_INET6, b"".join(
                    struct.pack("<I", int(addr_hex[i:i + 8], 16)) for i in range(0, 32, 8)))
            port = int(port_hex, 16)
            if proto == "udp" and port == 0:
                continue
            out.add((proto, addr, port))
    return out
