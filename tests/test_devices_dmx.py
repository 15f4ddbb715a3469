"""DMX transports on the wire: the Enttec widget emulator on a pty (with unplug and replug mid-show),
Open DMX break timing, Art-Net and sACN to loopback UDP receivers (and tshark, when installed)."""
from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from firmware.clock import RealClock
from firmware.config.devices import DmxArtNet, DmxEnttecPro, DmxOpenDmx, DmxSacn
from firmware.devices.dmx.open import open_dmx
from firmware.devices.dmx.sender import DmxSender
from firmware.devices.emulators.network import UdpReceiver
from firmware.devices.emulators.widget import EnttecEmulator
from firmware.devices.protocols import artnet, sacn
from waiting import wait_for


def universe(*head: int, n: int = 512) -> bytes:
    return bytes(head).ljust(n, b"\0")


@pytest.fixture
def widget(tmp_path):
    emu = EnttecEmulator(tmp_path / "humus-dmx").start()
    yield emu
    emu.close()


def test_enttec_params_then_frames_at_rate(widget):
    cfg = DmxEnttecPro(type="enttec-pro", port=widget.port.path, break_us=180, mab_us=20, rate_hz=40)
    sender = open_dmx(cfg, RealClock())
    sender.set_universe(universe(255, 128, 1))
    sender.start()
    try:
        assert wait_for(lambda: len(widget.state.frames) >= 5)
        t0, n0 = time.monotonic(), len(widget.state.frames)
        time.sleep(0.5)
        rate = (len(widget.state.frames) - n0) / (time.monotonic() - t0)
    finally:
        sender.close()
    first_label, first_data = widget.state.messages[0]
    assert first_label == 4 and first_data == bytes([0, 0, 17, 2, 40])   # 180/10.67, 20/10.67, 40 Hz
    assert widget.state.frames[-1][1] == universe(255, 128, 1)
    assert 30 <= rate <= 50 and widget.state.errors == 0


def test_enttec_serial_number_and_parameters(widget):
    from firmware.devices.dmx.usb import EnttecProTransport
    t = EnttecProTransport(DmxEnttecPro(type="enttec-pro", port=widget.port.path))
    try:
        assert t.serial_number() == "12345678"
        p = t.parameters()
        assert p.firmware == 0x0144 and p.rate_hz == 40
    finally:
        t.close()
        t.close()


def test_enttec_unplug_and_replug_mid_show(widget):
    cfg = DmxEnttecPro(type="enttec-pro", port=widget.port.path)
    sender = DmxSender(open_dmx(cfg, RealClock()).transport, RealClock(), rate_hz=40,
                       backoff_s=(0.05, 0.2))
    sender.start()
    try:
        sender.set_universe(universe(10))
        assert wait_for(lambda: widget.state.frames and widget.state.frames[-1][1][0] == 10)
        widget.inject("unplug")
        assert wait_for(lambda: not sender.health.ok)
        for v in range(20, 30):                    # the show keeps setting looks; nothing raises
            sender.set_universe(universe(v))
            time.sleep(0.01)
        n = len(widget.state.messages)
        widget.heal()
        assert wait_for(lambda: sender.health.ok and widget.state.frames[-1][1][0] == 29, timeout=5)
        resumed = [label for label, _ in widget.state.messages[n:]]
        assert resumed[0] == 4 and 6 in resumed    # parameters re-sent on reopen, then frames
        assert sender.health.faults == 1 and sender.health.recoveries == 1
    finally:
        sender.close()


def test_enttec_safe_look_on_shutdown(widget):
    cfg = DmxEnttecPro(type="enttec-pro", port=widget.port.path)
    sender = open_dmx(cfg, RealClock())
    sender.start()
    sender.set_universe(universe(200, 200, 200))
    assert wait_for(lambda: len(widget.state.frames) >= 2)
    safe = universe(40, 30, 20)
    sender.send_final(safe)
    sender.close()
    assert wait_for(lambda: [f for _, f in widget.state.frames[-3:]] == [safe] * 3)


class _BreakSpy:
    """Wraps the real pty port to timestamp break on/off and writes."""

    def __init__(self, port):
        self._port, self.events = port, []

    def __getattr__(self, name):
        return getattr(self._port, name)

    def __setattr__(self, name, value):
        if name == "break_condition":
            self.events.append((time.perf_counter(), "break" if value else "mark"))
            self._port.break_condition = value
        else:
            super().__setattr__(name, value)

    def write(self, data):
        self.events.append((time.perf_counter(), "data"))
        return self._port.write(data)


def test_open_dmx_break_mab_then_start_code_and_slots(tmp_path, monkeypatch):
    from firmware.devices.emulators.pty import PtyPort
    from firmware.devices.dmx import usb
    dev = PtyPort(tmp_path / "ftdi")
    spies = []
    real_open = usb.open_serial
    monkeypatch.setattr(usb, "open_serial",
                        lambda *a, **k: spies.append(_BreakSpy(real_open(*a, **k))) or spies[-1])
    t = usb.OpenDmxTransport(DmxOpenDmx(type="open-dmx", port=dev.path, break_us=150, mab_us=20))
    try:
        t.open()
        assert spies[0].baudrate == 250000 and spies[0].stopbits == 2
        t.send(universe(1, 2, 3))
        got = b""
        while len(got) < 513:
            got += dev.read(0.5)
        assert got == b"\x00" + universe(1, 2, 3)
        (tb, b), (tm, m), (td, d) = spies[0].events[:3]
        assert (b, m, d) == ("break", "mark", "data")
        assert tm - tb >= 150e-6 and td - tm >= 20e-6
    finally:
        t.close()
        dev.close()


# ------------------------------------------------------------------------------------- network
def _tshark(pcap, port, proto_args, fields):
    out = subprocess.run(["tshark", "-r", str(pcap), *proto_args, "-T", "fields",
                          *sum((["-e", f] for f in fields), [])],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line.split("\t") for line in out.stdout.splitlines() if line.strip()]


def test_artnet_to_loopback_node(tmp_path):
    rx = UdpReceiver()
    cfg = DmxArtNet(type="artnet", host="127.0.0.1", port=rx.port, universe=0x0312, rate_hz=40)
    sender = open_dmx(cfg, RealClock())
    sender.set_universe(universe(9, 8, 7))
    sender.start()
    try:
        assert rx.wait(5)
    finally:
        sender.close()
    pkts = [artnet.decode_dmx(p) for _, p, _ in rx.packets]
    rx.close()
    assert rx.packets[0][1][:12] == bytes.fromhex("417274 2d4e6574 00 0050 000e".replace(" ", ""))
    assert all(p.port_address == 0x0312 and p.data == universe(9, 8, 7) for p in pkts)
    assert [p.sequence for p in pkts[:4]] == [1, 2, 3, 4]
    if shutil.which("tshark"):
        rx.write_pcap(tmp_path / "artnet.pcap", dst_port=6454)
        rows = _tshark(tmp_path / "artnet.pcap", 6454, [],
                       ["artnet.header.opcode", "artnet.output.universe", "artnet.output.length",
                        "artnet.output.sequence"])
        assert rows[0] == ["0x5000", str(0x0312), "512", "1"], rows[0]
        assert len(rows) == len(pkts)


def test_sacn_unicast_priority_cid_sequence_and_termination(tmp_path):
    rx = UdpReceiver()
    cfg = DmxSacn(type="sacn", host="127.0.0.1", port=rx.port, universe=7, priority=150,
                  source_name="humus-test", cid="0b7c1d2e-3f40-4152-8364-758697a8b9ca")
    sender = open_dmx(cfg, RealClock())
    sender.set_universe(universe(1, 2, 3))
    sender.start()
    assert rx.wait(4)
    sender.close()
    assert wait_for(lambda: sum(1 for _, p, _ in rx.packets if p[112] & sacn.OPT_TERMINATED) == 3)
    rx.close()
    pkts = [sacn.decode_data(p) for _, p, _ in rx.packets]
    assert all(len(p) == 638 for _, p, _ in rx.packets)
    assert {(p.universe, p.priority, p.source_name) for p in pkts} == {(7, 150, "humus-test")}
    assert pkts[0].cid.hex() == "0b7c1d2e3f4041528364758697a8b9ca"
    seqs = [p.sequence for p in pkts]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert [p.options for p in pkts[-3:]] == [sacn.OPT_TERMINATED] * 3 and pkts[0].options == 0
    if shutil.which("tshark"):
        rx.write_pcap(tmp_path / "sacn.pcap", dst_port=5568)
        rows = _tshark(tmp_path / "sacn.pcap", 5568, ["--enable-heuristic", "acn", "-o", "acn.dmx_enable:TRUE"],
                       ["acn.dmx.universe", "acn.dmx.priority", "acn.dmx.source_name", "acn.dmx.count"])
        assert rows[0] == ["7", "150", "humus-test", "513"], rows[0]


def test_sacn_cid_is_stable_per_box():
    from firmware.devices.dmx.net import SacnTransport
    a = SacnTransport(DmxSacn(type="sacn"))
    b = SacnTransport(DmxSacn(type="sacn"))
    assert a.cid == b.cid and len(a.cid) == 16
    assert a.dest == ("239.255.0.1", 5568)


def test_sacn_multicast_on_loopback():
    try:
        rx = UdpReceiver(port=0, group="239.255.0.9")
    except OSError as exc:
        pytest.skip(f"no multicast on this host: {exc}")
    cfg = DmxSacn(type="sacn", universe=9, port=rx.port, interface="127.0.0.1")
    sender = open_dmx(cfg, RealClock())
    sender.set_universe(universe(5))
    sender.start()
    try:
        ok = rx.wait(2, timeout=2)
    finally:
        sender.close()
        rx.close()
    if not ok:
        pytest.skip("multicast over loopback is not routed here")
    assert sacn.decode_data(rx.packets[0][1]).data[0] == 5


def test_bench_dmx_smoke():
    from firmware.devices.bench import bench_dmx
    from firmware.devices.dmx.sim import SimDmxTransport
    r = bench_dmx(SimDmxTransport(), seconds=0.6, load=False)
    assert r["frames"] >= 20 and 35 <= r["rate_hz"] <= 45
    assert r["jitter_p50_ms"] < r["jitter_p99_ms"] + 1e-9 and r["jitter_p99_ms"] < 25


def test_bench_command_on_configured_transport(tmp_path, capsys):
    from firmware.devices.bench import main
    rx = UdpReceiver()
    cfg = tmp_path / "humus.toml"
    cfg.write_text(f'[dmx]\ntype = "artnet"\nhost = "127.0.0.1"\nport = {rx.port}\n')
    try:
        assert main(["--config", str(cfg), "--seconds", "0.4", "--no-load"]) == 0
    finally:
        rx.close()
    out = capsys.readouterr().out
    assert out.startswith(f"dmx[artnet 127.0.0.1:{rx.port} u0]: ") and "jitter p50" in out
    assert len(rx.packets) >= 12


def test_bench_dmx_with_a_caller_supplied_load():
    import contextlib
    from firmware.devices.bench import bench_dmx
    from firmware.devices.dmx.sim import SimDmxTransport
    entered = []

    @contextlib.contextmanager
    def generation_flat_out():
        entered.append("in")
        yield
        entered.append("out")

    r = bench_dmx(SimDmxTransport(), seconds=0.3, load=generation_flat_out())
    assert entered == ["in", "out"] and r["load"] == "_GeneratorContextManager" and r["frames"] >= 10


def test_sender_skips_missed_slots_without_a_burst_and_keeps_its_phase():
    from firmware.clock import FakeClock
    from firmware.devices.dmx.sim import SimDmxTransport
    clock = FakeClock()
    s = DmxSender(SimDmxTransport(clock=clock), clock, rate_hz=40)
    assert s.pump()                          # t=0: first frame
    clock.advance(0.101)                     # the thread was held up for four slots
    assert s.pump() and not s.pump()         # one frame now, not a burst of missed ones
    clock.advance(0.0235)                    # t=0.1245: the 0.125 slot is not due yet
    assert not s.pump()
    clock.advance(0.001)                     # t=0.1255: same phase as before the stall
    assert s.pump()
    assert [round(f.t, 4) for f in s.transport.frames] == [0.0, 0.101, 0.1255]
