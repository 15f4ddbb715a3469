"""DMX over Ethernet: Art-Net 4 (ArtDmx) and sACN (E1.31), one UDP datagram per universe refresh.

UDP sends rarely fail, but a missing route or a down interface raises OSError, which the sender
treats like an unplugged widget (reopen with backoff).
"""
from __future__ import annotations

import logging
import socket
from pathlib import Path

from firmware.devices.dmx.interface import DmxTransport
from firmware.devices.protocols import artnet, sacn

log = logging.getLogger("humus.dmx")


class ArtNetTransport(DmxTransport):
    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.name = f"dmx[artnet {cfg.host}:{cfg.port} u{cfg.universe}]"
        self._sock: socket.socket | None = None
        self._seq = 0

    def open(self) -> None:
        self.close()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)   # default target is broadcast
        self._sock = s

    def send(self, universe: bytes) -> None:
        if self._sock is None:
            raise OSError("socket not open")
        self._seq = artnet.next_sequence(self._seq)
        self._sock.sendto(artnet.encode_dmx(self.cfg.universe, universe, self._seq),
                          (self.cfg.host, self.cfg.port))

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def machine_id() -> str:
    """The OS's per-install id (stable across reboots); the hostname when there is none."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            text = Path(path).read_text().strip()
            if text:
                return text
        except OSError:
            continue
    return socket.gethostname()


def box_cid(cfg) -> bytes:
    """The configured CID, else one derived from the machine id: stable per box, unique per box."""
    if cfg.cid:
        import uuid
        return uuid.UUID(cfg.cid).bytes
    return sacn.cid_for(machine_id())


class SacnTransport(DmxTransport):
    """E1.31 to the universe's multicast group (or a unicast host); stream-terminated on close."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.dest = (cfg.host or sacn.multicast_group(cfg.universe), cfg.port)
        self.cid = box_cid(cfg)
        self.name = f"dmx[sacn {self.dest[0]} u{cfg.universe}]"
        self._sock: socket.socket | None = None
        self._seq = 0
        self._last = b""

    def open(self) -> None:
        self.close()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if self.cfg.host is None:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)   # a console on the box sees it
            if self.cfg.interface:  # without a default route the kernel has no idea where 239.255.x.y goes
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.cfg.interface))
        self._sock = s

    def _packet(self, universe: bytes, options: int = 0) -> bytes:
        self._seq = (self._seq + 1) & 0xFF
        return sacn.encode_data(self.cid, self.cfg.source_name, self.cfg.universe, universe, self._seq,
                                priority=self.cfg.priority, options=options)

    def send(self, universe: bytes) -> None:
        if self._sock is None:
            raise OSError("socket not open")
        self._last = bytes(universe)
        self._sock.sendto(self._packet(universe), self.dest)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        # E1.31 6.2.6: three packets with Stream_Terminated let receivers drop us at once
        # instead of holding our last look for the 2.5 s source timeout.
        try:
            for _ in range(3):
                sock.sendto(self._packet(self._last, sacn.OPT_TERMINATED), self.dest)
        except OSError:
            pass
        sock.close()
