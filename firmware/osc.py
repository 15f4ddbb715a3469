"""OSC show control over UDP, with python-osc (imported here only, and only when [osc] is written).

In: a python-osc server on its own thread. A datagram from a sender the allow list does not name
(firmware/osc_allow.py) is refused before it is parsed, and counted with its sender. The rest is parsed
by `Inlet` (not python-osc's Dispatcher: no pattern regex per message, no sleeping on a bundle's
future time tag), every message put in a queue; the box drains it once a frame and applies it with the
pure `firmware.show.control.apply_message`. A flood is cut at the socket thread by a token bucket
(`max_rate_hz`, one second of burst): what is over is dropped and counted, so a runaway controller
cannot grow memory or starve the frame loop.
Out: `send(address, value)` to every target; a send that fails (no route, the target's port closed,
the name not resolved yet) is counted, never raised.
"""
from __future__ import annotations

import logging
import queue
import threading
import time

from firmware.config.venue import parse_hostport
from firmware.osc_allow import Senders, resolve_host

log = logging.getLogger("humus.osc")
MAX_QUEUE = 10_000


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


class Inlet:
    """The socket thread's side, without a socket: `admit(host, port)` says whether a sender may
    talk to the box (counting the refused), `call_handlers_for_packet(data, sender)` (python-osc's
    dispatcher seam) parses an admitted datagram and hands each message to `on_message`.

    Counters, all written by the socket thread only: `refused` datagrams (and `last_refused`, the
    latest such sender), `malformed` datagrams (not OSC), `messages` parsed. Nothing here raises:
    whatever the bytes, a datagram is refused, malformed or a number of messages."""

    def __init__(self, senders: Senders, on_message) -> None:
        self.senders, self.on_message = senders, on_message
        self.refused = 0
        self.last_refused: str | None = None
        self.malformed = 0
        self.messages = 0

    def admit(self, host: str, port) -> bool:
        if self.senders.permits(host):
            return True
        self.refused += 1
        self.last_refused = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        # a log line at the 1st, 10th, 100th, ... refusal: a flood cannot fill the journal
        if str(self.refused).rstrip("0") == "1":
            log.warning("OSC: refused a message from %s, not an allowed sender ([osc] allow); "
                        "%d refused so far", self.last_refused, self.refused)
        return False

    def call_handlers_for_packet(self, data: bytes, sender) -> list:
        from pythonosc.osc_packet import OscPacket, ParseError
        try:
            messages = OscPacket(data).messages   # the whole datagram (a bundle's messages with it)
        # Found by fuzzing (tests/test_fuzz_network.py): python-osc decodes strings as UTF-8 unguarded,
        # and parses nested bundles by recursion (a 60 kB datagram of them nests ~3000 deep).
        # Uncaught, socketserver would print a traceback per datagram.
        except (ParseError, UnicodeDecodeError, RecursionError):
            self.malformed += 1
            return []
        for timed in messages:
            self.messages += 1
            self.on_message(timed.message.address, *timed.message.params)
        return []          # nothing to answer: python-osc sends a handler's return value back


def _server_class():
    from pythonosc.osc_server import BlockingOSCUDPServer

    class AllowListServer(BlockingOSCUDPServer):
        """python-osc's UDP server, asking the inlet before it parses anything."""

        def verify_request(self, request, client_address) -> bool:
            if not self.dispatcher.admit(client_address[0], client_address[1]):
                return False
            if super().verify_request(request, client_address):
                return True
            self.dispatcher.malformed += 1     # not even the start of an OSC message or bundle
            return False
    return AllowListServer


class OscLink:
    def __init__(self, cfg, resolve=resolve_host) -> None:
        """resolve: host name -> its addresses, raising OSError when it does not resolve (tests
        inject one: no DNS)."""
        from pythonosc.udp_client import SimpleUDPClient

        self.cfg = cfg
        self._client_class = SimpleUDPClient
        self.inbox: queue.Queue = queue.Queue(MAX_QUEUE)
        self.received = 0
        self.dropped = 0          # over the rate limit (or the queue full)
        self.bad = 0              # unknown address or wrong arguments (counted by the box)
        self.sent = 0
        self.send_errors = 0
        self._bucket = TokenBucket(cfg.max_rate_hz, max(1.0, cfg.max_rate_hz))
        self.targets = [parse_hostport(t) for t in cfg.send]
        # Names are resolved here, at start, and retried on a thread until they resolve: a sendto()
        # with a host name would ask DNS on every message, from the frame loop.
        self.senders = Senders(cfg.allow, [h for h, _ in self.targets], resolve)
        self.clients: dict[int, object | None] = {}   # target index -> client (None: cannot)
        self._connect()
        self.senders.start()
        self.inlet = Inlet(self.senders, self._on_message)
        self.server = None
        self._thread = None
        if cfg.listen:
            self.server = _server_class()(parse_hostport(cfg.listen), self.inlet)
            self.address = self.server.server_address[:2]
            self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                            name="osc-in", daemon=True)
            self._thread.start()
            log.info("OSC: listening on %s:%d, from %s", *self.address, self.allowed_text())

    def allowed_text(self) -> str:
        nets = [str(n) for n in self.senders.networks] + [f"{h} (unresolved)" for h in self.senders.pending]
        return ", ".join(nets)

    def _connect(self) -> None:
        """A client for every target whose host has an address now (an IP: no DNS when sending)."""
        for i, (host, port) in enumerate(self.targets):
            addresses = self.senders.addresses.get(host)
            if i in self.clients or not addresses:
                continue
            ip = next((a for a in addresses if ":" not in a), addresses[0])   # IPv4 first, as before
            try:
                self.clients[i] = self._client_class(ip, port)
            except OSError as exc:   # no socket of that family (IPv6 off): counted at every send
                self.clients[i] = None
                log.warning("OSC: cannot send to %s:%d (%s): %s", host, port, ip, exc)

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
        if len(self.clients) < len(self.targets):
            self._connect()        # a name resolved since (a dict look-up, no DNS, until it has)
        for i in range(len(self.targets)):
            c = self.clients.get(i)
            if c is None:
                self.send_errors += 1
                continue
            try:
                c.send_message(address, value)
                self.sent += 1
            except OSError:
                self.send_errors += 1

    def status(self) -> dict:
        inlet = self.inlet
        return {"listen": self.cfg.listen, "send": list(self.cfg.send), "received": self.received,
                "bad": self.bad + inlet.malformed, "dropped": self.dropped, "refused": inlet.refused,
                "last_refused": inlet.last_refused, "sent": self.sent, "send_errors": self.send_errors}

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self._thread.join(timeout=2.0)
            self.server = None
        self.senders.close()
        for c in self.clients.values():
            try:
                c.close()
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
