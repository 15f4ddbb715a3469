"""Network devices on loopback: a UDP receiver standing in for an Art-Net node or an sACN receiver,
and a PJLink class 1 projector on TCP. Both serve from a `Runner` thread as soon as they are made."""
from __future__ import annotations

import hashlib
import secrets
import socket
import struct
import time

from firmware.devices.emulators.runner import Runner
from firmware.devices.fault_injection import FaultInjectable


class UdpReceiver:
    """Keeps every datagram with its arrival time, and can write them as a pcap file for tshark."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, group: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0" if group else host, port))
        if group:  # join the multicast group on the loopback interface
            mreq = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("127.0.0.1"))
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        self.sock.settimeout(0.05)     # the runner checks for close() this often
        self.port = self.sock.getsockname()[1]
        self.packets: list[tuple[float, bytes, tuple]] = []
        self._runner = Runner(self._receive, "udp-receiver")
        self._runner.start()

    def _receive(self) -> bool | None:
        try:
            data, addr = self.sock.recvfrom(2048)
        except socket.timeout:
            return None
        except OSError:                # closed under us
            return False
        self.packets.append((time.monotonic(), data, addr))
        return None

    def wait(self, n: int, timeout: float = 3.0) -> bool:
        end = time.monotonic() + timeout
        while len(self.packets) < n and time.monotonic() < end:
            time.sleep(0.01)
        return len(self.packets) >= n

    def write_pcap(self, path, dst_port: int, src_port: int = 40000) -> None:
        """Wrap the datagrams in Ethernet/IPv4/UDP headers so tshark can dissect them."""
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            for t, data, _ in self.packets:
                udp = struct.pack(">HHHH", src_port, dst_port, 8 + len(data), 0) + data
                ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                                 socket.inet_aton("10.0.0.2"), socket.inet_aton("10.0.0.1"))
                frame = b"\x00\x11\x22\x33\x44\x55" + b"\x66\x77\x88\x99\xaa\xbb" + b"\x08\x00" + ip + udp
                sec = int(t)
                f.write(struct.pack("<IIII", sec, int((t - sec) * 1e6), len(frame), len(frame)) + frame)

    def close(self) -> None:
        self._runner.stop(timeout=1.0)
        self.sock.close()


class PJLinkEmulator(FaultInjectable):
    """A class 1 projector on 127.0.0.1: answers POWR, checks the MD5 prefix, records every line.

    It checks the MD5 prefix with its own code, not the client's (projector/pjlink.py), so a bug
    shared with the client cannot hide. Faults: `mute` accepts connections and never answers (a
    hung projector), `busy` answers ERR3; `close()` stops listening (the projector unplugged)."""

    FAULTS = ("mute", "busy")

    def __init__(self, password: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.password = password
        self.power = False
        self.mute = False
        self.busy = False
        self.lines: list[bytes] = []       # every line received, as sent on the wire
        self.greetings: list[bytes] = []
        self.auth_failures = 0
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(0.1)   # the runner checks for close() this often
        self.host, self.port = self._sock.getsockname()[:2]
        self._runner = Runner(self._serve_one, "pjlink-emulator")
        self._runner.start()

    def _switch(self, fault: str, on: bool) -> None:
        setattr(self, fault, on)

    def _serve_one(self) -> bool | None:
        try:
            conn, _ = self._sock.accept()
        except socket.timeout:
            return None
        except OSError:     # closed under us by close()
            return False
        with conn:
            try:
                self._session(conn)
            except OSError:
                pass
        return None

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(2.0)
        if self.mute:
            self._runner.wait(3.0)
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
        self._sock.close()             # first, so a waiting accept() ends at once
        self._runner.stop()
