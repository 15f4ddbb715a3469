"""OSC only from the show's own network (issue 23): `[osc] allow`, the default (loopback and the send
hosts, resolved at start and again until they resolve), refused senders counted and shown by `humus
status`, and the loopback-only warning of check-config and doctor. Over real loopback UDP with
python-osc's own client, a second loopback address (127.0.0.2) standing in for another host."""
from __future__ import annotations

import socket
import time

import pytest
from pythonosc.udp_client import SimpleUDPClient

from firmware import cli
from firmware.appliance import doctor as doctormod
from firmware.appliance.status_view import render_status
from firmware.appliance.statusfile import StatusError, StatusWriter, read_status
from firmware.check_result import render
from firmware.config.errors import ConfigError
from firmware.config.load import config_warnings, parse_config
from firmware.osc import OscLink
from firmware.osc_allow import LOOPBACK, Senders, only_loopback, parse_network, permits, sender_address
from firmware.status_publisher import StatusPublisher
from test_osc_venue import make_box, wait_inbox
from waiting import wait_for


# ----------------------------------------------------------------------------------- decisions
def test_permits_addresses_networks_and_what_sockets_report():
    nets = [parse_network(t) for t in ("192.168.1.20", "10.0.0.0/24", "fd00::/8")]
    assert permits(nets, "192.168.1.20") and permits(nets, "10.0.0.255") and permits(nets, "fd12::7")
    assert not permits(nets, "192.168.1.21") and not permits(nets, "10.0.1.0") and not permits(nets, "fe80::1")
    assert permits(nets, "::ffff:10.0.0.9")                 # an IPv4 sender on a dual-stack socket
    assert permits([parse_network("fe80::/10")], "fe80::1%eth0")   # a link-local sender with its zone
    assert not permits(nets, "not an address") and not permits(nets, "")
    assert permits([parse_network("0.0.0.0/0")], "203.0.113.9") and not permits([parse_network("0.0.0.0/0")], "::2")
    assert sender_address("::ffff:127.0.0.1").version == 4
    assert only_loopback(LOOPBACK) and only_loopback([parse_network("127.0.0.2")])
    assert not only_loopback([parse_network("127.0.0.1"), parse_network("10.0.0.1")])


@pytest.mark.parametrize("entry, says", [
    ("10.0.0.5/24", "did you mean 10.0.0.0/24"), ("controller.local", "a name"), ("256.0.0.1", "not an IP"),
    ("10.0.0.0/33", "not an IP"), ("::ffff:10.0.0.1", "IPv4-mapped"), (" 10.0.0.1", "not an IP"),
    ("010.0.0.1", "not an IP"), ("", "not an IP")])
def test_allow_entries_are_checked_strictly_and_the_error_names_the_key(entry, says):
    with pytest.raises(ConfigError) as e:
        parse_config({"osc": {"listen": "0.0.0.0:9000", "allow": ["10.0.0.0/24", entry]}}, "humus.toml")
    assert "humus.toml: osc.allow.1:" in str(e.value) and says in str(e.value)


@pytest.mark.parametrize("allow, says", [([], "empty list refuses every sender"), ("10.0.0.0/24", "valid list"),
                                         ([10], "valid string"), ([["10.0.0.1"]], "valid string")])
def test_allow_must_be_a_list_of_strings(allow, says):
    with pytest.raises(ConfigError, match=says) as e:
        parse_config({"osc": {"allow": allow}}, "humus.toml")
    assert "osc.allow" in str(e.value)


def test_default_is_loopback_and_the_send_hosts_resolved_now_or_later():
    answers = {"ctl.venue": OSError("no DNS yet")}
    asked = []

    def resolve(host):
        asked.append(host)
        a = answers[host]
        if isinstance(a, Exception):
            raise a
        return a

    s = Senders(None, ["192.168.1.20", "ctl.venue", "ctl.venue"], resolve, retry_s=0.01)
    assert s.permits("127.0.0.1") and s.permits("127.0.0.2") and s.permits("::1") and s.permits("192.168.1.20")
    assert not s.permits("192.168.1.30") and s.pending == ["ctl.venue"] and asked == ["ctl.venue"]
    answers["ctl.venue"] = ["192.168.1.30", "fd00::30"]
    s.start()                                            # retried off the socket thread
    try:
        assert wait_for(lambda: s.permits("192.168.1.30") and s.permits("fd00::30"))
        assert s.pending == [] and s.addresses["ctl.venue"] == ["192.168.1.30", "fd00::30"]
        n = len(asked)
        time.sleep(0.1)
        assert len(asked) == n                           # resolved: never asked again
    finally:
        s.close()
    # written, allow is the whole list: neither loopback nor the send hosts are added
    s = Senders(["10.0.0.0/24"], ["192.168.1.20"], resolve)
    assert s.permits("10.0.0.7") and not s.permits("127.0.0.1") and not s.permits("192.168.1.20")
    assert s.addresses["192.168.1.20"] == ["192.168.1.20"]   # still the send target's address


def test_a_name_that_does_not_resolve_is_said_once_and_stays_pending(caplog):
    answers = iter([OSError("no DNS"), OSError("no DNS"), [], ["not an address"], ["10.0.0.9"]])

    def resolve(host):
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    with caplog.at_level("DEBUG", logger="humus.osc"):
        s = Senders(None, ["ctl.venue"], resolve)
        for _ in range(3):
            s.resolve_pending()
        assert s.pending == ["ctl.venue"] and not s.permits("10.0.0.9")   # nothing usable came back
        s.resolve_pending()
    assert s.pending == [] and s.permits("10.0.0.9")
    warned = [r for r in caplog.records if r.levelname == "WARNING" and "cannot resolve ctl.venue" in r.getMessage()]
    assert len(warned) == 1


def test_a_send_host_that_resolves_late_gets_its_messages(tmp_path):
    """A name with no DNS at boot: nothing is sent to it (counted), nothing from it is taken; once it
    resolves, both. Before issue 23 such a name made python-osc's client raise at start."""
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer
    import threading
    got = []
    d = Dispatcher()
    d.set_default_handler(lambda address, *args: got.append((address, args)))
    peer = ThreadingOSCUDPServer(("127.0.0.1", 0), d)
    threading.Thread(target=peer.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    resolvable = []

    def resolve(host):
        if not resolvable:
            raise OSError("Temporary failure in name resolution")
        return ["127.0.0.1"]

    cfg = parse_config({"osc": {"send": [f"ctl.venue:{peer.server_address[1]}"]}}).osc
    link = OscLink(cfg, resolve=resolve)
    try:
        link.senders.retry_s = 0.01
        link.send("/humus/state", "idle")
        assert link.send_errors == 1 and link.sent == 0
        resolvable.append(True)
        assert wait_for(lambda: not link.senders.pending)
        link.send("/humus/state", "approach")
        assert link.sent == 1 and wait_for(lambda: got == [("/humus/state", ("approach",))])
    finally:
        link.close()
        peer.shutdown()
        peer.server_close()


# ------------------------------------------------------------------------------------ over UDP
def other_host_client(target) -> SimpleUDPClient:
    """python-osc's client sending from 127.0.0.2: another host, as far as the box can tell."""
    client = SimpleUDPClient(*target)
    try:
        client._sock.bind(("127.0.0.2", 0))   # python-osc keeps its socket private and binds none
    except OSError as exc:
        pytest.skip(f"no second loopback address here: {exc}")
    return client


def test_an_allowed_sender_works_and_a_flood_from_elsewhere_is_refused_and_counted(tiny_model, tmp_path):
    box = make_box(tiny_model, tmp_path, {"listen": "127.0.0.1:0", "allow": ["127.0.0.1"], "max_rate_hz": 50.0})
    try:
        link = box.venue.osc
        intruder = other_host_client(link.address)
        port = intruder._sock.getsockname()[1]
        sent = 2000
        for _ in range(sent):
            intruder.send_message("/humus/blackout", 1)
        # the kernel may drop some of a flood at the socket's buffer; what arrives is refused
        assert wait_for(lambda: link.inlet.refused > 0)
        time.sleep(0.3)
        refused = link.inlet.refused
        print(f"flood: {sent} datagrams from 127.0.0.2, {refused} refused, {link.received} received")   # pytest -s
        assert 0 < refused <= sent and link.received == 0 and link.inbox.qsize() == 0
        assert link.inlet.last_refused == f"127.0.0.2:{port}"
        # refused before the rate limit: the flood spent none of the allowed controller's budget
        friend = SimpleUDPClient(*link.address)
        for _ in range(20):
            friend.send_message("/humus/intensity", 0.5)
        wait_inbox(link, 20)
        assert link.received == 20 and link.dropped == 0
        box.step()
        assert box.venue.inputs.intensity == 0.5 and box.venue.inputs.blackout is False
        # what `humus status` shows, through the status file the box writes
        writer = StatusWriter(tmp_path / "status.json", min_interval=0)
        StatusPublisher(writer)(box)
        status = read_status(tmp_path / "status.json")
        assert status["osc"]["refused"] == refused and status["osc"]["last_refused"] == f"127.0.0.2:{port}"
        text, _ = render_status(status, status["updated_at"], "0.1.0", None)
        assert f"osc       REFUSED {refused} from senders not allowed, last from 127.0.0.2:{port}" in text
    finally:
        box.close()


def test_default_allows_every_loopback_sender(tiny_model, tmp_path):
    box = make_box(tiny_model, tmp_path, {"listen": "127.0.0.1:0"})
    try:
        link = box.venue.osc
        other_host_client(link.address).send_message("/humus/intensity", 0.25)
        wait_inbox(link)
        box.step()
        assert box.venue.inputs.intensity == 0.25 and link.inlet.refused == 0
    finally:
        box.close()


def test_a_datagram_that_is_not_osc_is_counted_bad_not_a_traceback(tiny_model, tmp_path, capfd):
    box = make_box(tiny_model, tmp_path, {"listen": "127.0.0.1:0"})
    try:
        link = box.venue.osc
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for dgram in (b"hello", b"/hu\xffmus\0\0\0,i\0\0\0\0\0\1", b"#bundle\0" + b"\xff" * 12):
                s.sendto(dgram, link.address)
        assert wait_for(lambda: link.inlet.malformed == 3)
        assert link.status()["bad"] == 3 and link.received == 0
    finally:
        box.close()
    assert "Traceback" not in capfd.readouterr().err


# ---------------------------------------------------------------------------- status, warnings
def test_old_status_files_still_read_and_bad_osc_fields_are_named(tmp_path):
    import json
    path = tmp_path / "status.json"
    old = {"state": "idle", "updated_at": 100.0, "osc": {"listen": "0.0.0.0:9000", "send": [], "received": 12,
                                                        "bad": 2, "dropped": 0, "sent": 40, "send_errors": 0}}
    path.write_text(json.dumps(old))
    text, _ = render_status(read_status(path), 101.0, "0.1.0", None)
    assert "12 in (2 bad, 0 dropped), 40 out" in text and "REFUSED" not in text
    for key, value in (("refused", "7"), ("refused", -1), ("last_refused", 7), ("received", 1.5)):
        path.write_text(json.dumps({**old, "osc": {**old["osc"], key: value}}))
        with pytest.raises(StatusError, match=f"osc.{key}"):
            read_status(path)


WARN = "a show controller on another machine would be silently refused"


@pytest.mark.parametrize("osc, warned", [
    ({"listen": "0.0.0.0:9000"}, True),
    ({"listen": "0.0.0.0:9000", "send": ["127.0.0.1:9001", "localhost:9002"]}, True),
    ({"listen": "0.0.0.0:9000", "allow": ["127.0.0.1", "::1"]}, True),
    ({"listen": "0.0.0.0:9000", "send": ["192.168.1.20:9001"]}, False),
    ({"listen": "0.0.0.0:9000", "send": ["ctl.venue:9001"]}, False),    # a name: another machine
    ({"listen": "0.0.0.0:9000", "allow": ["127.0.0.1", "10.0.0.0/24"]}, False),
    ({"listen": "127.0.0.1:9000"}, False),             # listening on loopback: nobody else can reach it
    ({"send": ["127.0.0.1:9001"]}, False),             # not listening at all
])
def test_loopback_only_warning(osc, warned):
    assert any(WARN in w for w in config_warnings(parse_config({"osc": osc}))) == warned


def test_check_config_and_doctor_warn_with_the_exit_status_unchanged(tmp_path, capsys):
    path = tmp_path / "humus.toml"
    path.write_text('[osc]\nlisten = "0.0.0.0:9000"\nsend = ["127.0.0.1:9001"]\n')
    assert cli.main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "[osc]" in out and WARN in err and err.startswith("humus: warning: osc:")
    row = doctormod.check_config(doctormod.Context(root=tmp_path, config_path=path, on_box=False))
    assert row.ok is True and WARN in row.warning
    text = render([row])
    assert text.splitlines()[0].startswith("[warn] config") and "warning: osc:" in text
    assert text.endswith("all checks passed, 1 warning(s)")
    path.write_text('[osc]\nlisten = "0.0.0.0:9000"\nallow = ["10.0.0.0/24"]\n')
    assert cli.main(["check-config", str(path)]) == 0 and "warning" not in capsys.readouterr().err
    row = doctormod.check_config(doctormod.Context(root=tmp_path, config_path=path, on_box=False))
    assert row.ok is True and row.warning == "" and render([row]).startswith("[ok  ] config")
