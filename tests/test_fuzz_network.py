"""Fuzzing what the box reads from the network with hypothesis: OSC datagrams through the inlet and the
box's dispatch (firmware/osc.py, firmware/venue.py), and a projector's PJLink answers
(firmware/devices/projector/pjlink.py).

Only the documented outcomes: an OSC datagram is refused, malformed or its messages, each queued or
dropped and then applied or counted bad, and nothing raises (firmware.fuzz.OscRig checks the counters
on every example); `exchange` with a projector raises only PJLinkError. And they are right, not just
quiet: a message built by python-osc arrives as it was built, a bundle's messages all arrive at once
whatever their time tag, a well-formed PJLink answer gives its parameter. CI runs a few hundred
examples per property; the long run: HUMUS_FUZZ_EXAMPLES=100000 pytest tests/test_fuzz_network.py.
"""
from __future__ import annotations

import hashlib
import math
import os
import struct
import time

from hypothesis import HealthCheck, given, settings, strategies as st
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from firmware.devices.projector.pjlink import ERRORS
from firmware.fuzz import OscRig, _ProjectorBytes, check_pjlink_reply, fuzz_osc, fuzz_pjlink
from firmware.show.control import MAX_SUBJECT, ShowInputs, apply_message

N = int(os.environ.get("HUMUS_FUZZ_EXAMPLES", "0"))
RIG = OscRig()            # one box-side OSC path for every example: the counters carry on, as in the field


def fuzz(ci: int):
    return settings(max_examples=N or ci, deadline=None, database=None if N else settings().database,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


ADDRESSES = ["/humus/visitor", "/humus/trigger", "/humus/subject", "/humus/decay", "/humus/intensity",
             "/humus/blackout", "/humus/open"]
addresses = st.sampled_from(ADDRESSES) | st.text(max_size=30).map(lambda t: "/" + t.replace("\0", ""))
# what python-osc's builder can write, each with its type tag
osc_args = st.lists(
    st.integers(-2**31, 2**31 - 1).map(lambda v: (v, "i")) | st.integers(-2**63, 2**63 - 1).map(lambda v: (v, "h"))
    | st.floats(width=32).map(lambda v: (v, "f")) | st.floats().map(lambda v: (v, "d"))
    | st.text(max_size=40).map(lambda v: (v.replace("\0", ""), "s")) | st.binary(min_size=1, max_size=40).map(lambda v: (v, "b"))   # python-osc builds no empty blob
    | st.booleans().map(lambda v: (v, "T" if v else "F")) | st.none().map(lambda v: (v, "N")),
    max_size=6)


def build(address: str, args: list) -> bytes:
    b = OscMessageBuilder(address=address)
    for value, tag in args:
        b.add_arg(value, tag)
    return b.build().dgram


def same(a, b) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b


# ------------------------------------------------------------------------------------------ OSC
@fuzz(2000)
@given(st.binary(max_size=300))
def test_osc_random_bytes(data):
    fuzz_osc(data)      # from an allowed sender, or (first byte) one refused before parsing


@fuzz(1000)
@given(addresses, st.text("ifdsbhtmrcTFNI[]", max_size=8), st.binary(max_size=64))
def test_osc_message_shaped_bytes(address, tags, payload):
    """An address and type tags, then bytes that may not match them: the decoders' error paths."""
    def padded(b: bytes) -> bytes:
        return b + b"\0" * (4 - len(b) % 4)
    RIG.datagram(padded(address.encode()) + padded(b"," + tags.encode()) + payload)


@fuzz(1000)
@given(addresses, osc_args, st.integers(0, 64), st.integers(0, 255))
def test_osc_built_message_arrives_as_built_or_is_malformed_when_cut(address, args, cut, flip):
    dgram = build(address, args)
    got = RIG.datagram(dgram)
    assert len(got) == 1 and got[0][0] == address
    assert all(same(x, v if t != "f" else struct.unpack(">f", struct.pack(">f", v))[0])
               for x, (v, t) in zip(got[0][1], args)) and len(got[0][1]) == len(args)
    # damaged on the way: cut short or a byte flipped; anything may come of it but an exception
    RIG.datagram(dgram[:max(0, len(dgram) - 1 - cut)])
    i = flip % len(dgram)
    RIG.datagram(dgram[:i] + bytes([dgram[i] ^ (flip or 1)]) + dgram[i + 1:])


bundles = st.recursive(st.tuples(addresses, osc_args).map(lambda m: ("msg", m)),
                       lambda inner: st.tuples(st.sampled_from([IMMEDIATELY, 0.0, 1e9, 2e9, 2**32 - 2208988800 - 1.0]),
                                               st.lists(inner, min_size=0, max_size=4)).map(lambda b: ("bundle", b)),
                       max_leaves=12)


def build_bundle(node):
    kind, body = node
    if kind == "msg":
        return OscMessageBuilder(address=body[0]).build() if not body[1] else _built(*body)
    timetag, contents = body
    b = OscBundleBuilder(timetag)
    for c in contents:
        b.add_content(build_bundle(c))
    return b.build()


def _built(address, args):
    b = OscMessageBuilder(address=address)
    for value, tag in args:
        b.add_arg(value, tag)
    return b.build()


def leaves(node) -> int:
    return 1 if node[0] == "msg" else sum(leaves(c) for c in node[1][1])


@fuzz(500)
@given(bundles.filter(lambda n: n[0] == "bundle"))
def test_osc_bundles_arrive_whole_and_at_once(node):
    """Every message of a bundle arrives, whatever its time tag: python-osc's own dispatcher would
    sleep on the socket thread until a future one (2033, or 2036: the last NTP second), blocking
    all OSC input."""
    t0 = time.monotonic()
    got = RIG.datagram(build_bundle(node).dgram)
    assert len(got) == leaves(node)
    assert time.monotonic() - t0 < 5.0


def test_osc_deeply_nested_bundle_is_malformed_not_a_crash():
    """Found by the fuzzing above: python-osc parses bundles by recursion, and ~3000 levels fit in
    one UDP datagram."""
    d = build("/humus/decay", [(0.5, "f")])
    for _ in range(3000):
        d = b"#bundle\0" + struct.pack(">Q", 1) + struct.pack(">i", len(d)) + d
    assert len(d) < 65507
    malformed = RIG.link.inlet.malformed
    assert RIG.datagram(d) == []
    assert RIG.link.inlet.malformed == malformed + 1


def test_osc_not_utf8_is_malformed_not_a_crash():
    malformed = RIG.link.inlet.malformed
    assert RIG.datagram(b"/hu\xffmus\0\0\0,i\0\0\0\0\0\1") == []
    assert RIG.link.inlet.malformed == malformed + 1


def test_osc_refused_sender_is_never_parsed():
    inlet = RIG.link.inlet
    refused, messages = inlet.refused, inlet.messages
    assert RIG.datagram(build("/humus/blackout", [(1, "i")]), host="192.0.2.9") == []
    assert inlet.refused == refused + 1 and inlet.messages == messages and inlet.last_refused == "192.0.2.9:9"
    assert RIG.venue.inputs.blackout is False


values = (st.integers() | st.floats() | st.text(max_size=MAX_SUBJECT + 20) | st.binary(max_size=8) | st.booleans()
          | st.none() | st.lists(st.integers() | st.text(max_size=4), max_size=3) | st.tuples(st.integers(0, 255)))


@fuzz(2000)
@given(addresses, st.lists(values, max_size=4).map(tuple))
def test_dispatch_any_address_any_arguments(address, args):
    """apply_message is the box's whole dispatch: a new ShowInputs in range, or None (counted bad)."""
    before = RIG.venue.inputs
    got = RIG.dispatch(address, args)
    after = RIG.venue.inputs
    if got:                         # not dropped by the rate limit
        new = apply_message(before, address, args)
        assert (new is None and after == before) or after == new
    assert isinstance(after, ShowInputs)
    assert after.decay is None or 0 <= after.decay <= 1
    assert 0 <= after.intensity <= 1 and after.triggers >= before.triggers
    assert after.subject is None or (0 < len(after.subject) <= MAX_SUBJECT and after.subject.isprintable())
    assert all(isinstance(getattr(after, k), bool) for k in ("visitor", "blackout"))


# --------------------------------------------------------------------------------------- PJLink
@fuzz(2000)
@given(st.binary(max_size=300))
def test_pjlink_random_bytes(data):
    fuzz_pjlink(data)


greetings = st.sampled_from([b"PJLINK 0\r", b"PJLINK ERRA\r", b"PJLINK 1 498e4a67\r", b"PJLINK 1 \xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\r",
                             b"PJLINK 1 short\r", b"", b"\r"]) | st.binary(max_size=20)
answers = (st.sampled_from([b"%1POWR=", b"%1POWR=OK", b"PJLINK ERRA", b"%1INPT="]) | st.binary(max_size=8)).flatmap(
    lambda head: st.tuples(st.just(head), st.sampled_from([b"", b"OK", b"0", b"1", b"2", b"3", *(e.encode() for e in ERRORS)])
                           | st.binary(max_size=300), st.sampled_from([b"\r", b"", b"\r\r", b"\n"])))


@fuzz(1000)
@given(greetings, answers, st.sampled_from(["POWR ?", "POWR 1", "POWR 0"]), st.none() | st.text(max_size=32))
def test_pjlink_protocol_shaped_replies(greeting, answer, body, password):
    check_pjlink_reply(greeting + b"".join(answer), body, password)


@fuzz(500)
@given(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200), st.sampled_from(["POWR ?", "POWR 1"]),
       st.none() | st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=32))
def test_pjlink_good_answer_gives_its_parameter(param, body, password):
    greeting = b"PJLINK 1 498e4a67\r" if password else b"PJLINK 0\r"
    peer = _ProjectorBytes(greeting + f"%1{body.split()[0]}={param}\r".encode())
    from firmware.devices.projector.pjlink import PJLinkError, exchange
    try:
        got = exchange(peer, body, password)
    except PJLinkError as exc:
        assert param in ERRORS and param in str(exc)
    else:
        assert got == param and param not in ERRORS
    prefix = hashlib.md5(("498e4a67" + password).encode()).hexdigest() if password else ""
    assert peer.sent == f"{prefix}%1{body}\r".encode()
