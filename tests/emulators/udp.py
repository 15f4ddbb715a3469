"""Loopback UDP receivers standing in for an Art-Net node or an sACN receiver: they keep every
datagram with its arrival time, and can write a pcap file for tshark."""
from __future__ import annotations

import socket
import struct
import threading
import time


class UdpReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, group: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0" if group else host, port))
        if group:  # join the multicast group on the loopback interface
            mreq = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("127.0.0.1"))
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.packets: list[tuple[float, bytes, tuple]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="udp-receiver")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            self.packets.append((time.monotonic(), data, addr))

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
        self._stop.set()
        self._thread.join(timeout=1)
        self.sock.close()
