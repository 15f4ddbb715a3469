"""Golden bytes for every frame type, written out from the public protocol documents.

Each literal below was written by hand from the document named in its comment, not produced by our
encoders; the encoders must reproduce them and the decoders must read them back.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from firmware.devices.protocols import FrameError, artnet, enttec, ld2410, sacn, tfmini

H = bytes.fromhex

# ---------------------------------------------------------------- Enttec DMX USB Pro API spec 1.44
# Message format: 7E | label | data length LSB | MSB | data | E7.
# Label 6 "Output Only Send DMX Packet Request": start code 00 + 24 slots -> length 25 = 0x0019.
ENTTEC_DMX_24 = H("7e 06 19 00 00"
                  "ff 80 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 7f"
                  "e7")
# 512 slots: length 513 = 0x0201 (LSB 01, MSB 02).
ENTTEC_DMX_512_HEAD = H("7e 06 01 02 00")
# Label 4 "Set Widget Parameters Request": user size 00 00, break 9 (x10.67 us = 96 us), MAB 1, 40 Hz.
ENTTEC_SET_PARAMS = H("7e 04 05 00 00 00 09 01 28 e7")
# Label 3 "Get Widget Parameters Request": user configuration size 00 00.
ENTTEC_GET_PARAMS = H("7e 03 02 00 00 00 e7")
# Label 10 "Get Widget Serial Number Request": no data.
ENTTEC_GET_SERIAL = H("7e 0a 00 00 e7")
# Label 10 reply: 4 bytes BCD, LSB first: serial 12345678.
ENTTEC_SERIAL_REPLY = H("7e 0a 04 00 78 56 34 12 e7")
# Label 3 reply: firmware LSB 0x44, MSB 0x01, break 9, MAB 1, rate 40, no user data.
ENTTEC_PARAMS_REPLY = H("7e 03 05 00 44 01 09 01 28 e7")


def test_enttec_golden_encode():
    slots = bytes([0xFF, 0x80, 0x01] + [0] * 20 + [0x7F])
    assert enttec.encode_dmx(slots) == ENTTEC_DMX_24
    frame = enttec.encode_dmx(bytes(range(256)) * 2)
    assert frame[:5] == ENTTEC_DMX_512_HEAD and frame[-1] == 0xE7 and len(frame) == 518
    assert enttec.encode_set_params(break_us=96, mab_us=10.67, rate_hz=40) == ENTTEC_SET_PARAMS
    assert enttec.encode_get_params() == ENTTEC_GET_PARAMS
    assert enttec.encode_get_serial() == ENTTEC_GET_SERIAL


def test_enttec_golden_decode():
    assert enttec.decode_serial(enttec.decode(ENTTEC_SERIAL_REPLY).data) == "12345678"
    p = enttec.decode_params(enttec.decode(ENTTEC_PARAMS_REPLY).data)
    assert (p.firmware, p.rate_hz) == (0x0144, 40)
    assert p.break_us == pytest.approx(96.03) and p.mab_us == pytest.approx(10.67)
    assert enttec.decode(ENTTEC_DMX_24) == enttec.Message(6, ENTTEC_DMX_24[4:-1])


def test_enttec_short_universe_is_padded_to_24_slots():
    assert enttec.encode_dmx(b"\x01\x02")[:7] == H("7e 06 19 00 00 01 02")


@pytest.mark.parametrize("frame, offset, words", [
    (H("7e 0a 04 00 78 56 34 12 e6"), 8, "end byte"),
    (H("7f 0a 00 00 e7"), 0, "start byte"),
    (H("7e 0a 05 00 78 56 34 12 e7"), 2, "length"),
])
def test_enttec_errors_name_the_offset(frame, offset, words):
    with pytest.raises(FrameError, match=words) as err:
        enttec.decode(frame)
    assert err.value.offset == offset


def test_enttec_bad_bcd_names_the_byte():
    with pytest.raises(FrameError, match="BCD") as err:
        enttec.decode_serial(H("78 56 3a 12"))
    assert err.value.offset == 2


def test_enttec_parser_resyncs_after_garbage_and_bad_footer():
    p = enttec.Parser()
    broken = ENTTEC_SERIAL_REPLY[:-1] + b"\x00"       # footer lost
    out = p.feed(b"\x00\x11" + broken + ENTTEC_PARAMS_REPLY[:3])
    out += p.feed(ENTTEC_PARAMS_REPLY[3:] + ENTTEC_SERIAL_REPLY)
    assert [m.label for m in out] == [3, 10]
    assert p.rejected == 1 and "end byte" in str(p.last_error)


# --------------------------------------------------------------- HLK-LD2410 serial protocol V1.02
# Basic report: the example frame of the protocol document (section 2.3), also used as a test trace
# by the aio-ld2410 project: type 02, head AA, target 02, moving 0x0051 cm energy 0, static 0 cm
# energy 0x3B, detection 0, tail 55 00.
LD_BASIC = H("f4 f3 f2 f1 0d 00 02 aa 02 51 00 00 00 00 3b 00 00 55 00 f8 f7 f6 f5")
# Engineering report captured from an LD2410C (fw 2.04) and published by aio-ld2410: len 0x23, type 01,
# max gates 8/8, 9 moving + 9 static gate energies, light 0x60, OUT pin 1.
LD_ENGINEERING = H("f4 f3 f2 f1 23 00 01 aa 03 1e 00 3c 00 00 39 00 00 08 08"
                   "3c 22 05 03 03 04 03 06 05 00 00 39 10 13 06 06 08 04 60 01 55 00 f8 f7 f6 f5")
# Commands, section 2.2: enable configuration (0x00FF, value 0x0001), end configuration (0x00FE),
# enable engineering mode (0x0062).
LD_ENABLE_CONFIG = H("fd fc fb fa 04 00 ff 00 01 00 04 03 02 01")
LD_END_CONFIG = H("fd fc fb fa 02 00 fe 00 04 03 02 01")
LD_ENGINEERING_ON = H("fd fc fb fa 02 00 62 00 04 03 02 01")
# ACK to enable configuration: word 0x01FF, status 0, protocol version 1, buffer size 0x40.
LD_ENABLE_ACK = H("fd fc fb fa 08 00 ff 01 00 00 01 00 40 00 04 03 02 01")


def test_ld2410_golden_basic():
    r = ld2410.decode(LD_BASIC)
    assert (r.engineering, r.target, r.moving_cm, r.moving_energy, r.static_cm, r.static_energy,
            r.detect_cm) == (False, 2, 0x51, 0, 0, 0x3B, 0)
    assert ld2410.encode_report(r) == LD_BASIC


def test_ld2410_golden_engineering():
    r = ld2410.decode(LD_ENGINEERING)
    assert r.engineering and r.target == 3 and (r.moving_cm, r.moving_energy) == (30, 60)
    assert r.moving_gates == (0x3C, 0x22, 5, 3, 3, 4, 3, 6, 5)
    assert r.static_gates == (0, 0, 0x39, 0x10, 0x13, 6, 6, 8, 4)
    assert (r.light, r.out_pin) == (0x60, 1)
    assert ld2410.encode_report(r) == LD_ENGINEERING
    assert r.distance_m(min_energy=10) == 0.30          # static distance 0 is not a target


def test_ld2410_golden_commands_and_ack():
    assert ld2410.encode_command(ld2410.CMD_ENABLE_CONFIG, b"\x01\x00") == LD_ENABLE_CONFIG
    assert ld2410.encode_command(ld2410.CMD_END_CONFIG) == LD_END_CONFIG
    assert ld2410.enable_engineering() == [LD_ENABLE_CONFIG, LD_ENGINEERING_ON, LD_END_CONFIG]
    ack = ld2410.decode(LD_ENABLE_ACK)
    assert ack == ld2410.Ack(command=0x00FF, status=0, value=H("01 00 40 00"))


def test_ld2410_distance_choice():
    both = ld2410.Report(False, 3, moving_cm=250, moving_energy=50, static_cm=120, static_energy=5,
                         detect_cm=120)
    assert both.distance_m(min_energy=0) == 1.20
    assert both.distance_m(min_energy=10) == 2.50      # the weak static echo is ignored
    assert ld2410.Report(False, 0, 100, 90, 100, 90, 100).distance_m() is None


@pytest.mark.parametrize("frame, offset, words", [
    (LD_BASIC[:-1] + b"\xf4", 19, "footer"),
    (LD_BASIC[:4] + b"\x0e" + LD_BASIC[5:], 4, "length"),
    (LD_BASIC[:7] + b"\xab" + LD_BASIC[8:], 7, "head 0xab"),
    (LD_BASIC[:6] + b"\x07" + LD_BASIC[7:], 6, "report type"),
    (LD_BASIC[:17] + b"\x56\x00" + LD_BASIC[19:], 17, "tail"),
    (LD_BASIC[:8] + b"\x04" + LD_BASIC[9:], 8, "target state"),
])
def test_ld2410_errors_name_the_offset(frame, offset, words):
    with pytest.raises(FrameError, match=words) as err:
        ld2410.decode(frame)
    assert err.value.offset == offset


def test_ld2410_parser_resyncs_on_dropped_bytes_and_bad_frames():
    p = ld2410.Parser()
    dropped = LD_BASIC[:9] + LD_BASIC[11:]          # a USB adapter lost two bytes mid-frame
    bad_footer = LD_BASIC[:-2] + b"\x00\x00"
    stream = b"\x55\xf4\xf3" + dropped + LD_ENGINEERING + bad_footer + LD_ENABLE_ACK + LD_BASIC
    out = p.feed(stream)
    assert [type(m).__name__ for m in out] == ["Report", "Ack", "Report"]
    assert out[0].engineering and not out[2].engineering
    assert p.rejected >= 2


def test_ld2410_parser_rejects_absurd_length_without_waiting_for_it():
    p = ld2410.Parser()
    assert p.feed(H("f4 f3 f2 f1 ff 7f") + LD_BASIC) == [ld2410.decode(LD_BASIC)]
    assert "exceeds" in str(p.last_error)


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_ld2410_parser_is_chunking_invariant(cuts):
    stream = LD_BASIC + LD_ENGINEERING + LD_ENABLE_ACK + LD_BASIC
    p, out, last = ld2410.Parser(), [], 0
    for c in sorted(set(min(c, len(stream)) for c in cuts)) + [len(stream)]:
        out += p.feed(stream[last:c])
        last = c
    assert len(out) == 4 and p.rejected == 0


# ----------------------------------------------------------- Benewake TFmini / TFmini-S manual
# 59 59 | Dist_L Dist_H | Strength_L Strength_H | Temp_L Temp_H | Checksum (low byte of the sum).
# 200 cm, strength 1000, temp raw 0x0900 (= 32 C on the TFmini-S: 2304/8 - 256); sum 0x26E -> 6E.
TF_200CM = H("59 59 c8 00 e8 03 00 09 6e")
# 5 cm, strength 20 (too weak to trust), temp 0: sum 0x59+0x59+0x05+0x14 = 0xCB.
TF_WEAK = H("59 59 05 00 14 00 00 00 cb")


def test_tfmini_golden():
    m = tfmini.decode(TF_200CM)
    assert (m.distance_cm, m.strength, m.temp_raw) == (200, 1000, 0x0900)
    assert m.distance_m() == 2.0
    assert tfmini.encode(m) == TF_200CM
    weak = tfmini.decode(TF_WEAK)
    assert weak.distance_cm == 5 and weak.distance_m(min_strength=100) is None
    assert tfmini.Measurement(300, 65535, 0).distance_m() is None   # saturated


def test_tfmini_checksum_error_names_byte_8():
    with pytest.raises(FrameError, match="checksum 0x6f") as err:
        tfmini.decode(TF_200CM[:8] + b"\x6f")
    assert err.value.offset == 8


def test_tfmini_parser_resyncs():
    p = tfmini.Parser()
    out = p.feed(b"\x59" + TF_200CM[:8] + b"\x00" + TF_200CM[3:] + TF_WEAK + TF_200CM[:4])
    out += p.feed(TF_200CM[4:])
    assert [m.distance_cm for m in out] == [5, 200]
    assert p.rejected >= 1


# ----------------------------------------------------------------- Art-Net 4 specification, ArtDmx
# ID "Art-Net\0", OpCode 0x5000 little-endian (00 50), ProtVer 14 (00 0e), Sequence 0x2a, Physical 0,
# SubUni 0x12, Net 0x03 (port-address 0x0312), Length 4 (big-endian 00 04), data.
ARTDMX = H("41 72 74 2d 4e 65 74 00 00 50 00 0e 2a 00 12 03 00 04 ff 00 80 01")


def test_artnet_golden():
    assert artnet.encode_dmx(0x0312, H("ff 00 80 01"), sequence=0x2A) == ARTDMX
    d = artnet.decode_dmx(ARTDMX)
    assert (d.port_address, d.sequence, d.physical, d.data) == (0x0312, 0x2A, 0, H("ff 00 80 01"))


def test_artnet_odd_length_padded_and_sequence_skips_zero():
    pkt = artnet.encode_dmx(0, b"\x01\x02\x03")
    assert pkt[16:18] == H("00 04") and pkt[18:] == H("01 02 03 00")
    assert artnet.next_sequence(255) == 1 and artnet.next_sequence(1) == 2


@pytest.mark.parametrize("pkt, offset", [
    (b"Art-Nez\x00" + ARTDMX[8:], 0), (ARTDMX[:8] + H("00 20") + ARTDMX[10:], 8),
    (ARTDMX[:16] + H("00 05") + ARTDMX[18:], 16), (ARTDMX[:-1], 16),
])
def test_artnet_errors_name_the_offset(pkt, offset):
    with pytest.raises(FrameError) as err:
        artnet.decode_dmx(pkt)
    assert err.value.offset == offset


# --------------------------------------------------- ANSI E1.31-2018, table 4-1 (E1.31 Data Packet)
SACN_CID = H("a1 b2 c3 d4 e5 f6 47 08 89 9a ab bc cd de ef f0")
SACN_HEADER_512 = H(
    "00 10"                                  # preamble size
    "00 00"                                  # post-amble size
    "41 53 43 2d 45 31 2e 31 37 00 00 00"    # ACN packet identifier "ASC-E1.17\0\0\0"
    "72 6e"                                  # root flags+length: 0x7000 | 622
    "00 00 00 04"                            # VECTOR_ROOT_E131_DATA
    "a1 b2 c3 d4 e5 f6 47 08 89 9a ab bc cd de ef f0"   # CID
    "72 58"                                  # framing flags+length: 0x7000 | 600
    "00 00 00 02"                            # VECTOR_E131_DATA_PACKET
    "68 75 6d 75 73" + "00" * 59 +           # source name "humus", NUL padded to 64
    "64"                                     # priority 100
    "00 00"                                  # synchronization address
    "07"                                     # sequence number
    "00"                                     # options
    "00 01"                                  # universe 1
    "72 0b"                                  # DMP flags+length: 0x7000 | 523
    "02"                                     # VECTOR_DMP_SET_PROPERTY
    "a1"                                     # address type & data type
    "00 00"                                  # first property address
    "00 01"                                  # address increment
    "02 01"                                  # property value count: 1 + 512
    "00")                                    # DMX512-A START code


def test_sacn_golden():
    data = bytes(range(256)) * 2
    pkt = sacn.encode_data(SACN_CID, "humus", universe=1, data=data, sequence=7, priority=100)
    assert len(pkt) == 638 and pkt[:126] == SACN_HEADER_512 and pkt[126:] == data
    d = sacn.decode_data(SACN_HEADER_512 + data)
    assert (d.cid, d.source_name, d.priority, d.sequence, d.universe, d.options, d.data) == \
        (SACN_CID, "humus", 100, 7, 1, 0, data)


def test_sacn_multicast_and_stable_cid():
    assert sacn.multicast_group(1) == "239.255.0.1"
    assert sacn.multicast_group(0x1234) == "239.255.18.52"
    assert sacn.cid_for("abc\n") == sacn.cid_for("abc") != sacn.cid_for("abd")
    assert len(sacn.cid_for("x")) == 16


@pytest.mark.parametrize("offset, patch", [(0, b"\x00\x11"), (16, b"\x72\x6f"), (40, b"\x00\x00\x00\x03"),
                                           (118, b"\xa2"), (123, b"\x02\x02")])
def test_sacn_errors_name_the_offset(offset, patch):
    pkt = bytearray(SACN_HEADER_512 + bytes(512))
    pkt[offset:offset + len(patch)] = patch
    with pytest.raises(FrameError) as err:
        sacn.decode_data(bytes(pkt))
    assert err.value.offset == offset


# ------------------------------------------------------------------- parsers against line noise
PARSERS = [
    (ld2410.Parser, [LD_BASIC, LD_ENGINEERING, LD_ENABLE_ACK], {0xF4, 0xFD}),
    (tfmini.Parser, [TF_200CM, TF_WEAK], {0x59}),
    (enttec.Parser, [ENTTEC_SERIAL_REPLY, ENTTEC_PARAMS_REPLY, ENTTEC_DMX_24], {0x7E}),
]


@pytest.mark.parametrize("make, frames, header_bytes", PARSERS)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_parsers_never_raise_and_find_every_frame_between_noise(make, frames, header_bytes, data):
    noise = st.binary(max_size=40).map(lambda b: bytes(x for x in b if x not in header_bytes))
    picks = data.draw(st.lists(st.sampled_from(frames), min_size=1, max_size=6))
    stream = b"".join(data.draw(noise) + f for f in picks) + data.draw(noise)
    p = make()
    assert len(p.feed(stream)) == len(picks)
    make().feed(data.draw(st.binary(max_size=300)))   # pure garbage: no exception
