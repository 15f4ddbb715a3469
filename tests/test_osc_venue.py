"""OSC show control over real UDP loopback sockets (python-osc's own client and server), and the box at
a venue: closing and opening on the schedule, the projector following, overrides by OSC."""
from __future__ import annotations

import threading
import time
from datetime import datetime

import numpy as np
import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from firmware.box.conductor import Box
from firmware.clock import FakeClock
from firmware.config.load import parse_config
from firmware.osc import listening_sockets
from firmware.show.control import ShowInputs, apply_message
from firmware.show.lights import LightLevel, build_universe
from firmware.show.schedule import load_zone
from waiting import wait_for

BERLIN = load_zone("Europe/Berlin")
SHOW = {"dwell_s": 0.1, "leave_grace_s": 0.1, "cooldown_s": 0.2, "approach_s": 0.3, "immersion_s": 1.0,
        "emergence_s": 0.5, "hold_s": 0.3, "release_s": 0.3}


def test_apply_message_types_and_ranges():
    s = ShowInputs()
    assert apply_message(s, "/humus/visitor", (1,)).visitor is True
    assert apply_message(s, "/humus/trigger", ()).triggers == 1
    assert apply_message(s, "/humus/trigger", (0,)).triggers == 0       # a button's release
    assert apply_message(s, "/humus/subject", ("moss",)).subject == "moss"
    assert apply_message(s, "/humus/decay", (0.25,)).decay == 0.25
    assert apply_message(s, "/humus/intensity", (1,)).intensity == 1.0
    assert apply_message(s, "/humus/blackout", (1,)).blackout is True
    assert apply_message(s, "/humus/open", (0,)).open_override is False
    for address, args in [("/humus/nope", ()), ("/humus/visitor", (True,)), ("/humus/visitor", (2,)),
                          ("/humus/visitor", ("1",)), ("/humus/decay", (1.5,)), ("/humus/decay", (float("nan"),)),
                          ("/humus/intensity", ()), ("/humus/subject", (3,)), ("/humus/subject", ("",)),
                          ("/humus/trigger", ("go",)), ("/humus/open", (0.0,))]:
        assert apply_message(s, address, args) is None, (address, args)


class Listener:
    """A python-osc server recording (arrival time, address, args)."""

    def __init__(self):
        self.got: list[tuple[float, str, tuple]] = []
        d = Dispatcher()
        d.set_default_handler(lambda address, *args: self.got.append((time.monotonic(), address, args)))
        self.server = ThreadingOSCUDPServer(("127.0.0.1", 0), d)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def of(self, address):
        return [a[0] if a else None for _, ad, a in self.got if ad == address]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def make_box(tiny_model, tmp_path, osc=None, wall_start=None, **extra):
    data = {"display": {"type": "headless", "width": 64, "height": 64, "fps": 20.0},
            "model": {"dir": str(tiny_model), "engine": "onnxruntime", "engine_cache": str(tmp_path / "e")},
            "presence": {"type": "none"}, "camera": {"type": "sim", "width": 64, "height": 48}, "show": SHOW,
            "timesync": {"type": "sim"}}   # the rehearsed wall clock is synchronised, whatever this machine's is
    if osc is not None:
        data["osc"] = osc
    data.update(extra)
    return Box(parse_config(data, "<test>"), FakeClock(), threaded=False, wall_start=wall_start)


def step_until(box, cond, seconds, real_wait=0.0):
    period = 1.0 / box.config.display.fps
    for _ in range(int(seconds / period)):
        if real_wait:
            time.sleep(real_wait)   # the OSC server thread runs in real time
        box.step()
        if cond(box):
            return True
        box.clock.advance(period)
    return False


def wait_inbox(link, n=1, timeout=2.0):
    end = time.monotonic() + timeout
    while link.inbox.qsize() < n and time.monotonic() < end:
        time.sleep(0.005)


def test_osc_in_and_out_over_udp(tiny_model, tmp_path):
    out = Listener()
    box = make_box(tiny_model, tmp_path, {"listen": "127.0.0.1:0", "send": [f"127.0.0.1:{out.port}"]})
    try:
        link = box.venue.osc
        client = SimpleUDPClient(*link.address)
        box.step()
        client.send_message("/humus/subject", "lichen")
        client.send_message("/humus/decay", 0.9)
        client.send_message("/humus/intensity", 0.5)
        client.send_message("/humus/nowhere", 1)          # bad: unknown address
        client.send_message("/humus/visitor", "yes")      # bad: wrong type
        client.send_message("/humus/trigger", [])
        wait_inbox(link, 6)
        box.step()
        assert box.visit.show.state == "approach" and box.venue.inputs.subject == "lichen"
        assert box.session.conditions(box.venue.inputs).decay == pytest.approx(0.9)             # OSC f is a float32
        assert link.bad == 2
        assert step_until(box, lambda b: b.visit.show.state == "immersion", 2)
        t_imm = box.clock.now()
        assert step_until(box, lambda b: b.visit.show.state == "hold", 3)
        imm_em = box.clock.now() - t_imm
        time.sleep(0.3)
        assert "approach" in out.of("/humus/state") and "immersion" in out.of("/humus/state")
        noise = out.of("/humus/noise")
        # fake clock: messages per second of show time during immersion + emergence
        assert len(noise) / imm_em >= 10 * 0.9, (len(noise), imm_em)
        assert all(0.0 <= n <= 1.0 for n in noise)
        assert out.of("/humus/visitor")[:2] == [0, 1]
    finally:
        box.close()
        out.close()


def test_flood_is_rate_limited_and_nothing_crashes(tiny_model, tmp_path):
    box = make_box(tiny_model, tmp_path, {"listen": "127.0.0.1:0", "max_rate_hz": 50.0})
    try:
        link = box.venue.osc
        client = SimpleUDPClient(*link.address)
        t0 = time.monotonic()
        for i in range(600):
            client.send_message("/humus/intensity" if i % 2 else "/humus/junk", 0.5)
        time.sleep(0.3)
        elapsed = time.monotonic() - t0
        assert link.dropped > 0
        assert link.inbox.qsize() <= 50 + 50 * elapsed + 1
        box.step()
        assert link.bad > 0 and box.venue.inputs.intensity == 0.5
    finally:
        box.close()


def test_no_port_listens_without_osc(tiny_model, tmp_path):
    before = listening_sockets()
    box = make_box(tiny_model, tmp_path)
    try:
        box.step()
        assert listening_sockets() == before
    finally:
        box.close()
    box = make_box(tiny_model, tmp_path, {"listen": "127.0.0.1:0"})
    try:
        new = listening_sockets() - before
        assert new == {("udp", "127.0.0.1", box.venue.osc.address[1])}
    finally:
        box.close()


SCHEDULE = {"timezone": "Europe/Berlin", "open": ["mon-fri 10:00-18:00", "fri 20:00-02:00"], "warmup_s": 90.0,
            "closed_look": {"intensity": 0.1, "color": [0.2, 0.3, 0.4]}}


def test_closing_and_opening_on_the_schedule(tiny_model, tmp_path):
    box = make_box(tiny_model, tmp_path, wall_start=datetime(2026, 12, 4, 17, 59, 58, tzinfo=BERLIN),
                   schedule=SCHEDULE, projector={"type": "sim", "retry_s": [0.01, 0.02]})
    try:
        proj = box.venue.projector
        assert step_until(box, lambda b: False, 1.0) is False
        assert box.venue_now.open and wait_for(lambda: proj.confirmed is True)
        assert step_until(box, lambda b: b.trace.states and b.trace.states[-1][1] == "closed", 3.0)
        done = box.session.worker.images_done
        frame = box.step()
        assert not frame.any()                                            # the wall is dark
        look = box.config.schedule.closed_look
        want = build_universe(box.config.lights.fixtures, LightLevel(0.1, tuple(look.color), 0.0), box.devices.dmx.channels)
        assert box.devices.dmx.transport.frames[-1].data == want                  # the closed look on the wire
        assert wait_for(lambda: proj.confirmed is False)                  # projector off at closing
        opening = datetime(2026, 12, 4, 20, 0, tzinfo=BERLIN)
        box.clock.advance((opening - box.venue.wall()).total_seconds() - 91)   # 19:58:29
        box.step()
        assert wait_for(lambda: proj.confirmed is False) and not box.venue_now.open
        box.clock.advance(2)                                              # 19:58:31: warming up
        box.step()
        assert not box.venue_now.open and wait_for(lambda: proj.confirmed is True)
        assert box.session.worker.images_done == done                             # no generation while closed
        box.clock.advance(90)
        box.step()
        assert box.venue_now.open and box.trace.states[-1][1] == "idle"
        assert [s for _, s, _ in box.trace.states][-2:] == ["closed", "idle"]
        assert [on for _, on in proj.backend.commands] == [True, False, True]
        assert box.venue.status()["schedule"]["next_change"].startswith("2026-12-05T02:00:00+01:00")
    finally:
        box.close()


def test_osc_open_overrides_until_the_next_change(tiny_model, tmp_path):
    box = make_box(tiny_model, tmp_path, {"listen": "127.0.0.1:0"},
                   wall_start=datetime(2026, 12, 4, 18, 30, tzinfo=BERLIN), schedule=SCHEDULE)
    try:
        box.step()
        assert not box.venue_now.open
        SimpleUDPClient(*box.venue.osc.address).send_message("/humus/open", 1)
        wait_inbox(box.venue.osc)
        box.step()
        assert box.venue_now.open and box.venue_now.overridden
        box.clock.advance(90 * 60 - 1)                                    # 19:59:59: still overridden
        box.step()
        assert box.venue_now.overridden
        box.clock.advance(2)                                              # 20:00:01: the schedule again
        box.step()
        assert box.venue_now.open and not box.venue_now.overridden
    finally:
        box.close()


def test_blackout_zeroes_the_universe(tiny_model, tmp_path):
    box = make_box(tiny_model, tmp_path, {"listen": "127.0.0.1:0"})
    try:
        box.step()
        full = box.devices.dmx.transport.frames[-1].data
        assert full[0] > 20                                               # the idle look's dimmer
        client = SimpleUDPClient(*box.venue.osc.address)
        client.send_message("/humus/intensity", 0.5)                      # the light master
        wait_inbox(box.venue.osc)
        box.clock.advance(0.05)
        box.step()
        assert abs(box.devices.dmx.transport.frames[-1].data[0] - full[0] / 2) <= 1
        client.send_message("/humus/blackout", 1)
        wait_inbox(box.venue.osc)
        box.clock.advance(0.05)
        box.step()
        assert not any(box.devices.dmx.transport.frames[-1].data)
        assert np.asarray(box.step()).any()                               # the wall still shows
    finally:
        box.close()


def test_device_fault_goes_out_once(tiny_model, tmp_path):
    out = Listener()
    box = make_box(tiny_model, tmp_path, {"send": [f"127.0.0.1:{out.port}"]},
                   camera={"type": "sim", "width": 64, "height": 48})
    try:
        box.step()
        box.devices.camera.inject("unplug")
        for _ in range(30):
            box.clock.advance(0.05)
            box.step()
        time.sleep(0.2)
        assert out.of("/humus/fault") == ["camera: unplugged"]
    finally:
        box.close()
        out.close()


def test_a_trigger_while_closed_is_dropped(tiny_model, tmp_path):
    box = make_box(tiny_model, tmp_path, {"listen": "127.0.0.1:0"},
                   wall_start=datetime(2026, 12, 4, 19, 59, 59, tzinfo=BERLIN), schedule=SCHEDULE)
    try:
        box.step()
        SimpleUDPClient(*box.venue.osc.address).send_message("/humus/trigger", [])
        wait_inbox(box.venue.osc)
        box.step()
        assert not box.venue_now.open
        box.clock.advance(2)
        box.step()
        assert box.venue_now.open and box.visit.show.state == "idle"
    finally:
        box.close()
