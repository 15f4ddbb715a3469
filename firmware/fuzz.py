"""Fuzz targets for everything that parses bytes from outside: the LD2410 and TFmini stream parsers,
the config loader (TOML text and parsed dicts) and the update-bundle manifest.

Each target takes raw bytes and lets only the documented error types out:
  ld2410, tfmini   `Parser.feed` never raises (noise is normal on a serial line); `decode` raises
                   only FrameError (firmware/devices/protocols/__init__.py)
  config-toml      `load_config(path)` raises only ConfigError (firmware/config/load.py)
  config-dict      `parse_config(obj)` raises only ConfigError, whatever JSON-like object it gets
  manifest         `open_bundle` of a bundle carrying these bytes as its signed bundle.json, or as
                   its (unsigned) bundle.sig, raises only BundleError (firmware/appliance/bundle.py)
  model-manifest   `load_model_dir` of a model directory whose manifest.json is these bytes raises
                   only ModelError (firmware/generate/manifest_schema.py)
  status           `read_status` of these bytes raises only StatusError; what it returns renders
                   (`humus status`) and is judged (health) without raising
  osc              a datagram from an allowed sender through the OSC inlet and the box's dispatch
                   (firmware/osc.py, firmware/venue.py): nothing raises, and every datagram is
                   malformed or its messages are each queued or dropped, then applied or counted bad
  pjlink           these bytes as a projector's greeting and answer (projector/pjlink.py `exchange`):
                   only PJLinkError, and an answer returned is one line of at most 256 characters
Anything else escaping is a bug and propagates, with the input, to the fuzzer.

The hypothesis tests (tests/test_fuzz_*.py) call these targets with generated inputs; with atheris
installed the same targets run coverage-guided:
    python -m firmware.fuzz ld2410 -runs=100000        (any libFuzzer flags after the target)
"""
from __future__ import annotations

import atexit
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from firmware.devices.protocols import FrameError, ld2410, tfmini


def _chunks(data: bytes) -> list[bytes]:
    """Split the input as a serial port might deliver it: the first byte picks the chunk size."""
    if not data:
        return []
    size = 1 + data[0] % 17
    body = data[1:]
    return [body[i:i + size] for i in range(0, len(body), size)]


def fuzz_ld2410(data: bytes) -> None:
    p = ld2410.Parser()
    for chunk in _chunks(data):
        for msg in p.feed(chunk):
            assert isinstance(msg, (ld2410.Report, ld2410.Ack)), msg
            if isinstance(msg, ld2410.Report):
                assert 0 <= msg.target <= 3
                d = msg.distance_m()
                assert d is None or 0 < d <= 655.35
    for decode in (ld2410.decode, ld2410.decode_report_payload, ld2410.decode_ack_payload):
        try:
            decode(data)
        except FrameError:
            pass


def fuzz_tfmini(data: bytes) -> None:
    p = tfmini.Parser()
    for chunk in _chunks(data):
        for msg in p.feed(chunk):
            assert isinstance(msg, tfmini.Measurement), msg
            assert msg.distance_m() is None or msg.distance_m() > 0
    try:
        tfmini.decode(data)
    except FrameError:
        pass


_TMP = Path(tempfile.gettempdir()) / f"humus-fuzz-{os.getpid()}"
atexit.register(shutil.rmtree, _TMP, True)


def fuzz_config_toml(data: bytes) -> None:
    from firmware.config.errors import ConfigError
    from firmware.config.load import load_config
    from firmware.config.schema import Config
    _TMP.mkdir(exist_ok=True)
    path = _TMP / "humus.toml"
    path.write_bytes(data)
    try:
        assert isinstance(load_config(path), Config)
    except ConfigError:
        pass


def check_config_dict(obj) -> None:
    from firmware.config.errors import ConfigError
    from firmware.config.load import parse_config
    from firmware.config.schema import Config
    try:
        assert isinstance(parse_config(obj, "<fuzz>"), Config)
    except ConfigError:
        pass


def fuzz_config_dict(data: bytes) -> None:
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return          # not JSON: nothing to hand the parser (config-toml covers raw text)
    check_config_dict(obj)


class BundleRig:
    """A signing key the fuzzing box trusts, and a scratch file for one bundle at a time."""

    def __init__(self) -> None:
        from firmware.appliance import bundle
        from firmware.appliance.bundle_keys import generate_keypair, load_signing_key, load_trusted_keys
        self.b = bundle
        _TMP.mkdir(exist_ok=True)
        private, public = generate_keypair("fuzz")
        (_TMP / "fuzz.key").write_text(private)
        (_TMP / "keys").mkdir(exist_ok=True)
        (_TMP / "keys" / "fuzz.pub").write_text(public)
        self.key, _ = load_signing_key(_TMP / "fuzz.key")
        self.trusted = load_trusted_keys(_TMP / "keys")
        self.path = _TMP / "fuzz.bundle"

    def signature(self, manifest: bytes) -> bytes:
        import base64
        from firmware.appliance.bundle_keys import key_id
        from firmware.appliance.bundle_schema import SIG_FORMAT
        sig = {"format": SIG_FORMAT, "alg": "ed25519", "key_id": key_id(bytes(self.key.verify_key)),
               "signer": "fuzz", "signature": base64.b64encode(self.key.sign(manifest).signature).decode()}
        return json.dumps(sig).encode()

    def open(self, manifest: bytes, sig: bytes | None = None, payload: dict[str, bytes] | None = None):
        """open_bundle on a tar of bundle.json (+ its signature unless `sig` is given) + payload."""
        from firmware.appliance.bundle_schema import MANIFEST_NAME, SIGNATURE_NAME
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            members = [(MANIFEST_NAME, manifest),
                       (SIGNATURE_NAME, self.signature(manifest) if sig is None else sig)]
            members += sorted((payload or {}).items())
            for name, data in members:
                ti = tarfile.TarInfo(name)
                ti.size, ti.mode = len(data), 0o644
                tar.addfile(ti, io.BytesIO(data))
        self.path.write_bytes(buf.getvalue())
        return self.b.open_bundle(self.path, self.trusted)


_RIG: BundleRig | None = None


def check_manifest_bytes(manifest: bytes, payload: dict[str, bytes] | None = None) -> None:
    """A bundle whose *signed* bundle.json is `manifest`: only BundleError may come out."""
    global _RIG
    from firmware.appliance.bundle_schema import BundleError
    _RIG = _RIG or BundleRig()
    try:
        _RIG.open(manifest, payload=payload)
    except BundleError:
        pass


def check_signature_bytes(sig: bytes) -> None:
    """A bundle whose (unsigned, attacker-controlled) bundle.sig is `sig`."""
    global _RIG
    from firmware.appliance.bundle_schema import BundleError
    _RIG = _RIG or BundleRig()
    try:
        _RIG.open(b'{"format": "humus-bundle/1"}', sig=sig)
        raise AssertionError("a bundle with a forged signature was accepted")
    except BundleError:
        pass


def fuzz_manifest(data: bytes) -> None:
    if data[:1] == b"S":
        check_signature_bytes(data[1:])
    else:
        check_manifest_bytes(data)


def fuzz_model_manifest(data: bytes) -> None:
    from firmware.generate.manifest import ModelError, load_model_dir
    d = _TMP / "model"
    d.mkdir(parents=True, exist_ok=True)
    (d / "manifest.json").write_bytes(data)
    try:
        load_model_dir(d, check_hash=False)
    except ModelError:
        pass


def fuzz_status(data: bytes) -> None:
    from firmware.appliance.status_view import render_status
    from firmware.appliance.health import judge
    from firmware.appliance.statusfile import StatusError, read_status
    _TMP.mkdir(exist_ok=True)
    path = _TMP / "status.json"
    path.write_bytes(data)
    try:
        status = read_status(path)
    except StatusError:
        return
    render_status(status, 1.7e9, "1.0.0", None)
    judge(status, "1.0.0", 0.0, 1.7e9)


class OscRig:
    """The box's OSC path without a socket: the link's Inlet (admits loopback only), its queue,
    counters and rate limit, and a Venue that applies what the link queued, once a frame."""

    def __init__(self, max_rate_hz: float = 10_000.0) -> None:
        from firmware.clock import FakeClock
        from firmware.config.load import parse_config
        from firmware.venue import Venue
        self.venue = Venue(parse_config({"osc": {"max_rate_hz": max_rate_hz}}, "<fuzz>"), FakeClock())
        self.link = self.venue.osc

    def counts(self) -> tuple[int, ...]:
        i, link = self.link.inlet, self.link
        return i.refused, i.malformed, i.messages, link.received, link.dropped, link.bad

    def datagram(self, data: bytes, host: str = "127.0.0.1") -> list[tuple[str, tuple]]:
        """One datagram as the server thread hands it on (refused, malformed or its messages), then
        one frame's dispatch. Returns the messages the frame applied or counted bad, in order."""
        inlet, before = self.link.inlet, self.counts()
        if inlet.admit(host, 9):
            assert inlet.call_handlers_for_packet(data, (host, 9)) == []
        refused, malformed, messages = (x - y for x, y in zip(self.counts()[:3], before))
        assert refused == (0 if self.link.senders.permits(host) else 1)
        assert malformed in (0, 1) and not (malformed and messages) and not (refused and messages + malformed)
        return self._frame(before, messages)

    def dispatch(self, address: str, args: tuple) -> list[tuple[str, tuple]]:
        """One message handed to the link as the inlet hands it on (any address, any arguments),
        then one frame's dispatch."""
        before = self.counts()
        self.link._on_message(address, *args)
        return self._frame(before, 1)

    def _frame(self, before: tuple[int, ...], n: int) -> list[tuple[str, tuple]]:
        from firmware.show.control import apply_message
        link = self.link
        got = list(link.inbox.queue)                  # what this frame's update drains
        assert link.received - before[3] == n         # every message parsed reached the link,
        assert link.dropped - before[4] + len(got) == n   # was dropped by the rate limit or queued,
        self.venue.update()
        assert link.inbox.empty()
        # and what was queued was applied or counted bad (whether a message is bad does not depend
        # on the inputs it is applied to)
        assert link.bad - before[5] == sum(apply_message(self.venue.inputs, a, args) is None for _, a, args in got)
        return [(a, args) for _, a, args in got]


_OSC: OscRig | None = None


def check_osc_datagram(data: bytes, host: str = "127.0.0.1") -> None:
    global _OSC
    _OSC = _OSC or OscRig()
    _OSC.datagram(data, host)


def fuzz_osc(data: bytes) -> None:
    # the first byte picks the sender: allowed (loopback) or not (refused before a byte is parsed)
    check_osc_datagram(data[1:], "127.0.0.1" if not data or data[0] % 4 else "192.0.2.7")


class _ProjectorBytes:
    """A connection whose peer says `data` (in reads of one byte, as pjlink reads) then closes."""

    def __init__(self, data: bytes) -> None:
        self.data, self.sent = data, b""

    def recv(self, n: int) -> bytes:
        out, self.data = self.data[:n], self.data[n:]
        return out

    def sendall(self, data: bytes) -> None:
        self.sent += data


def check_pjlink_reply(data: bytes, body: str = "POWR ?", password: str | None = None) -> str | None:
    """`exchange` against these bytes: the parameter, or None for a PJLinkError (the only error)."""
    from firmware.devices.projector.pjlink import PJLinkError, exchange
    try:
        param = exchange(_ProjectorBytes(data), body, password)
    except PJLinkError:
        return None
    assert isinstance(param, str) and "\r" not in param and len(param) <= 256, param
    return param


def fuzz_pjlink(data: bytes) -> None:
    # the first byte picks the command and whether a password is set
    pick = data[0] if data else 0
    check_pjlink_reply(data[1:], ("POWR ?", "POWR 1", "POWR 0")[pick % 3], "secret" if pick & 4 else None)


TARGETS = {"ld2410": fuzz_ld2410, "tfmini": fuzz_tfmini, "config-toml": fuzz_config_toml,
           "config-dict": fuzz_config_dict, "manifest": fuzz_manifest, "model-manifest": fuzz_model_manifest,
           "status": fuzz_status, "osc": fuzz_osc, "pjlink": fuzz_pjlink}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in TARGETS:
        print(f"usage: python -m firmware.fuzz {{{','.join(TARGETS)}}} [libFuzzer flags, e.g. -runs=100000]",
              file=sys.stderr)
        return 2
    try:
        import atheris
    except ImportError:
        print("atheris is not installed (pip install atheris); the hypothesis tests run the same "
              "targets: HUMUS_FUZZ_EXAMPLES=100000 pytest tests/test_fuzz_*.py", file=sys.stderr)
        return 2
    target = TARGETS[argv[0]]
    import firmware.appliance.bundle  # noqa: F401  (loaded first, so that they get instrumented)
    import firmware.config.load  # noqa: F401
    import firmware.generate.manifest_schema  # noqa: F401
    import firmware.osc  # noqa: F401
    atheris.instrument_all()          # coverage feedback from every loaded Python function
    atheris.Setup([sys.argv[0], *argv[1:]], target)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
