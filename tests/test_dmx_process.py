"""The DMX sender in its own process: the universe crosses to the child, goes out on the wire at
the fixed rate, and the last look is sent on close."""
import socket
import time


from firmware.clock import RealClock
from firmware.config.load import parse_config
from firmware.devices.dmx.open import open_dmx
from firmware.devices.dmx.process import DmxProcessSender


def test_universe_reaches_the_wire_from_the_child_process():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    port = rx.getsockname()[1]
    cfg = parse_config({"dmx": {"type": "artnet", "host": "127.0.0.1", "port": port}}).dmx
    sender = open_dmx(cfg, RealClock(), isolate=True)
    assert isinstance(sender, DmxProcessSender)
    try:
        sender.start()
        assert "own process" in sender.priority
        sender.set_universe(bytes([10, 20, 30]) + bytes(509))
        deadline = time.monotonic() + 3
        seen = None
        while time.monotonic() < deadline:
            pkt = rx.recv(1024)
            assert pkt[:8] == b"Art-Net\0" and pkt[8:10] == b"\x00\x50"
            if pkt[18:21] == bytes([10, 20, 30]):
                seen = pkt
                break
        assert seen is not None, "the new universe never left the child"
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 0.5:
            rx.recv(1024)
            n += 1
        assert 15 <= n <= 25  # ~40 Hz
        assert sender.health.ok and sender.sent > 20 and len(sender.send_times) > 20
        sender.send_final(bytes([7]) * 512)
        last = []
        rx.settimeout(0.3)
        try:
            while True:
                last.append(rx.recv(1024))
        except socket.timeout:
            pass
        assert last and last[-1][18:21] == bytes([7, 7, 7])
    finally:
        sender.close()
        sender.close()  # idempotent
        rx.close()
