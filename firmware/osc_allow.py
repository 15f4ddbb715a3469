"""Who may send OSC to the box: the show's own network, not whoever finds the port.

`[osc] allow` lists addresses and networks; written, it is the whole list (`["0.0.0.0/0"]` opens OSC
to every IPv4 sender). Unwritten, the box allows loopback and the hosts it sends to (`send`): the show
controller that listens to the box is the one that talks to it. Those names are resolved when the box
starts and, for any that did not resolve yet (no DNS at boot), again every few seconds on a thread of
their own (`Senders`), so neither the frame loop nor the socket thread ever waits for DNS.

Pure decisions (`parse_network`, `permits`, `only_loopback`) with the resolver injected, so tests need
no DNS and the config validator shares the parser with the socket thread.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
from typing import Callable, Iterable, Union

log = logging.getLogger("humus.osc")

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
RESOLVE_RETRY_S = 5.0      # a name that did not resolve is asked again this often, not more


def parse_network(text: str) -> Network:
    """One `allow` entry: an address ("10.0.0.5", "fe80::1") or a network ("10.0.0.0/24"). Strict:
    host bits set under the mask ("10.0.0.5/24") are a typo, not a network; names are refused (the
    socket thread must not ask DNS; a controller's name goes in `send`)."""
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        hint = ""
        if "has host bits set" in str(exc):
            hint = f" (did you mean {ipaddress.ip_network(text, strict=False)}?)"
        elif ":" not in text and any(c.isalpha() for c in text):   # IPv4 has no letters, IPv6 has ':'
            hint = " (a name: write the address, or put the host in send)"
        raise ValueError(f"'{text}' is not an IP address or network{hint}: {exc}") from None
    if net.version == 6 and net.network_address.ipv4_mapped is not None:
        # senders arrive as plain IPv4 (permits() unmaps them), so this entry would never match
        raise ValueError(f"'{text}' is an IPv4-mapped IPv6 address: write the IPv4 form")
    return net


def sender_address(host: str) -> Address | None:
    """The sender as the socket reports it: IPv4, IPv6 (a %zone dropped) or, from a dual-stack
    socket, ::ffff:a.b.c.d, which is the IPv4 sender a.b.c.d. None: not an address at all."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def permits(allowed: Iterable[Network], host: str) -> bool:
    addr = sender_address(host)
    return addr is not None and any(addr.version == n.version and addr in n for n in allowed)


def only_loopback(allowed: Iterable[Network]) -> bool:
    return all(n.is_loopback for n in allowed)


def is_loopback_host(host: str) -> bool:
    """A host written in the config that is this machine: a loopback address or "localhost"."""
    addr = sender_address(host)
    return addr.is_loopback if addr is not None else host.lower() in ("localhost", "localhost.")


def resolve_host(host: str) -> list[str]:
    """Every address a name resolves to (IPv4 and IPv6: a controller may send from either).
    Raises OSError when it does not resolve (now)."""
    import socket
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except UnicodeError as exc:   # a name the IDNA codec refuses ("a..b") never resolves
        raise OSError(f"not a host name: {exc}") from None
    return sorted({info[4][0] for info in infos})


class Senders:
    """The `send` hosts' addresses and the allowed senders, kept current.

    `networks` is the explicit `allow` list, or loopback + every address a `send` host resolved to;
    one immutable tuple, replaced whole when a name resolves, so the socket thread reads it without a
    lock. `resolve_pending()` asks the resolver for the names still unresolved; `start()` runs it every
    `retry_s` on a thread of its own until none is left (tests call it directly)."""

    def __init__(self, allow: list[str] | None, send_hosts: Iterable[str],
                 resolve: Callable[[str], list[str]] = resolve_host, retry_s: float = RESOLVE_RETRY_S) -> None:
        self.resolve, self.retry_s = resolve, retry_s
        self.explicit = allow is not None
        self.networks: tuple[Network, ...] = tuple(parse_network(t) for t in allow) if allow is not None \
            else LOOPBACK
        self.addresses: dict[str, list[str]] = {}     # send host -> its addresses, once known
        self.pending: list[str] = []
        self._told: set[str] = set()                  # names whose failure was logged
        for host in dict.fromkeys(send_hosts):        # each name once, in order
            addr = sender_address(host)
            if addr is not None:
                self._learn(host, [str(addr)])
            else:
                self.pending.append(host)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.resolve_pending()

    def _learn(self, host: str, addresses: list[str]) -> None:
        self.addresses[host] = addresses
        if self.explicit:
            return
        nets = [ipaddress.ip_network(a) for a in map(sender_address, addresses) if a is not None]
        self.networks = tuple(dict.fromkeys(self.networks + tuple(nets)))   # one swap: no lock needed

    def permits(self, host: str) -> bool:
        return permits(self.networks, host)

    def resolve_pending(self) -> None:
        """One try at each name not resolved yet; what resolves joins the allowed senders."""
        still = []
        for host in self.pending:
            try:
                addresses = [a for a in self.resolve(host) if sender_address(a) is not None]
                if not addresses:
                    raise OSError("no address")
            except OSError as exc:
                # said once; the retries every few seconds only in the debug log
                (log.debug if host in self._told else log.warning)(
                    "OSC: cannot resolve %s now (%s); nothing is sent to it%s until it resolves (tried "
                    "again every %g s)", host, exc, "" if self.explicit else " and its messages are refused",
                    self.retry_s)
                self._told.add(host)
                still.append(host)
                continue
            self._learn(host, addresses)
            log.info("OSC: %s is %s", host, ", ".join(addresses))
        self.pending = still

    def start(self) -> None:
        """Keep trying the unresolved names, off the socket thread and the frame loop."""
        if not self.pending or self._thread is not None:
            return

        def loop() -> None:
            while self.pending and not self._stop.wait(self.retry_s):
                self.resolve_pending()

        self._thread = threading.Thread(target=loop, name="osc-resolve", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)   # a getaddrinfo in flight is abandoned (daemon thread)
            self._thread = None
