"""Fuzzing the serial sensor parsers (LD2410 radar, TFmini LiDAR) with hypothesis.

Only the documented outcomes: `Parser.feed` never raises, `decode` raises only FrameError. And the
parsers are right, not just quiet: a valid frame between random line noise is found, decoded to what
was encoded; a frame with a corrupted byte is rejected. CI runs a few hundred examples per property;
the long run: HUMUS_FUZZ_EXAMPLES=100000 pytest tests/test_fuzz_*.py --hypothesis-show-statistics
(or, coverage-guided, `python -m firmware.fuzz ld2410 -runs=100000` with atheris).
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings, strategies as st

from firmware.devices.protocols import ld2410, tfmini
from firmware.fuzz import fuzz_ld2410, fuzz_tfmini

N = int(os.environ.get("HUMUS_FUZZ_EXAMPLES", "0"))


def fuzz(ci: int):
    return settings(max_examples=N or ci, deadline=None, database=None if N else settings().database,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


noise = st.binary(max_size=200)


# ------------------------------------------------------------------------------------ LD2410
reports = st.builds(
    lambda eng, target, mcm, men, scm, sen, dcm, gm, gs, light: ld2410.Report(
        eng, target, mcm, men, scm, sen, dcm, tuple(gm) if eng else (), tuple(gs) if eng else (),
        light if eng else None, (1 if light is not None else None) if eng else None),
    st.booleans(), st.integers(0, 3), st.integers(0, 65535), st.integers(0, 100), st.integers(0, 65535),
    st.integers(0, 100), st.integers(0, 65535), st.lists(st.integers(0, 100), min_size=1, max_size=9),
    st.lists(st.integers(0, 100), min_size=1, max_size=9), st.none() | st.integers(0, 255))



def feed_in_chunks(parser, stream: bytes, chunk: int) -> list:
    """What a serial port delivers: the stream in reads of `chunk` bytes, every frame parsed so far."""
    got = []
    for i in range(0, len(stream), chunk):
        got += parser.feed(stream[i:i + chunk])
    return got

@fuzz(2000)
@given(st.binary(max_size=400))
def test_ld2410_random_bytes(data):
    fuzz_ld2410(data)


@fuzz(1000)
@given(st.lists(st.sampled_from([b"\xf4\xf3\xf2\xf1", b"\xfd\xfc\xfb\xfa", b"\xf8\xf7\xf6\xf5",
                                 b"\x04\x03\x02\x01", b"\x0d\x00", b"\x02\xaa", b"\x55\x00", b"\x40\x00"])
                | st.binary(max_size=8), max_size=40))
def test_ld2410_protocol_shaped_bytes(parts):
    """Headers, lengths and tails in random order reach the deep branches random bytes rarely do."""
    fuzz_ld2410(b"".join(parts))


@fuzz(1000)
@given(reports, noise, noise, st.integers(1, 64))
def test_ld2410_frame_between_noise_is_found(report, before, after, chunk):
    frame = ld2410.encode_report(report)
    assert ld2410.decode(frame) == report
    stream = before + frame + after
    got = feed_in_chunks(ld2410.Parser(), stream, chunk)
    assert report in got


# Bytes that make a report a report: header, length, type, head, 55 00 and the tail. The LD2410 has
# no checksum, so a flipped data byte (a distance) is a valid, different report -- not testable.
def _structural(frame: bytes) -> list[int]:
    return [*range(0, 8), len(frame) - 6, len(frame) - 5, *range(len(frame) - 4, len(frame))]


@fuzz(1000)
@given(reports, st.data())
def test_ld2410_corrupted_frame_is_rejected(report, data):
    frame = bytearray(ld2410.encode_report(report))
    i = data.draw(st.sampled_from(_structural(frame)))
    frame[i] ^= data.draw(st.integers(1, 255))
    p = ld2410.Parser()
    assert p.feed(bytes(frame)) == []


# ------------------------------------------------------------------------------------ TFmini
measurements = st.builds(tfmini.Measurement, st.integers(0, 65535), st.integers(0, 65535),
                         st.integers(0, 65535))


@fuzz(2000)
@given(st.binary(max_size=400))
def test_tfmini_random_bytes(data):
    fuzz_tfmini(data)


@fuzz(1000)
@given(st.lists(st.sampled_from([b"\x59", b"\x59\x59", b"\x00", b"\xff"]) | st.binary(max_size=9),
                max_size=60))
def test_tfmini_protocol_shaped_bytes(parts):
    fuzz_tfmini(b"".join(parts))


@fuzz(1000)
@given(measurements, noise, noise, st.integers(1, 32))
def test_tfmini_frame_between_noise_is_found(m, before, after, chunk):
    # Noise may not contain 0x59: with a 1-byte checksum, noise that starts with 59 59 passes it
    # 1 time in 256 and swallows the real frame -- the protocol's limit, not the parser's.
    before, after = (bytes(b for b in x if b != 0x59) for x in (before, after))
    frame = tfmini.encode(m)
    assert tfmini.decode(frame) == m
    stream = before + frame + after
    got = feed_in_chunks(tfmini.Parser(), stream, chunk)
    assert got == [m]


@fuzz(1000)
@given(measurements, st.integers(0, 8), st.integers(1, 255))
def test_tfmini_corrupted_frame_is_rejected(m, i, flip):
    frame = bytearray(tfmini.encode(m))
    frame[i] ^= flip              # any single byte: the checksum covers all of them
    p = tfmini.Parser()
    assert p.feed(bytes(frame)) == []
