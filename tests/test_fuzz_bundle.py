"""Fuzzing the update-bundle manifest parser with hypothesis: `open_bundle` may raise BundleError and
nothing else (firmware/appliance/bundle.py), whatever bundle.json holds -- even signed by a trusted
key, so the parser behind the signature check is reached -- and whatever an attacker puts in the
unsigned bundle.sig. CI runs a few hundred examples each; HUMUS_FUZZ_EXAMPLES=100000 the long run.
"""
from __future__ import annotations

import hashlib
import json
import os

from hypothesis import HealthCheck, given, settings, strategies as st

from firmware.fuzz import check_manifest_bytes, check_signature_bytes

N = int(os.environ.get("HUMUS_FUZZ_EXAMPLES", "0"))


def fuzz(ci: int):
    return settings(max_examples=N or ci, deadline=None, database=None if N else settings().database,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12)
json_like = st.recursive(scalars, lambda c: st.lists(c, max_size=4) |
                         st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=24)
PAYLOAD = b"print('hello from the update')\n"
SHA = hashlib.sha256(PAYLOAD).hexdigest()
GOOD = {"format": "humus-bundle/1", "version": "2.0.0", "kind": "app", "created": "2026-11-25T00:00:00Z",
        "files": {"app/firmware/x.py": {"sha256": SHA, "size": len(PAYLOAD), "mode": 0o644}}}


def dumps(obj) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


def test_the_good_manifest_opens():
    from firmware.fuzz import BundleRig
    rig = BundleRig()
    b = rig.open(dumps(GOOD), payload={"app/firmware/x.py": PAYLOAD})
    assert b.version == "2.0.0"


@fuzz(300)
@given(st.binary(max_size=300))
def test_signed_manifest_any_bytes(data):
    check_manifest_bytes(data)


@fuzz(300)
@given(json_like)
def test_signed_manifest_any_json(obj):
    check_manifest_bytes(dumps(obj))


field_values = (json_like | st.sampled_from(["humus-bundle/1", "2.0.0", "1.2.0-rc1", "app", "model", "both",
                                              SHA, len(PAYLOAD), 0o644, 0o4755, -1, 2**63, True]))
paths = st.sampled_from(["app/firmware/x.py", "app/x", "models/m.onnx", "app", "/etc/passwd",
                         "app/../x", "app//x", "app/./x", "bundle.json", "app/\x00x", "app\\x", ""]) \
    | st.text(max_size=20)
entries = st.fixed_dictionaries({}, optional={"sha256": field_values, "size": field_values,
                                              "mode": field_values})


@fuzz(400)
@given(st.dictionaries(st.sampled_from(list(GOOD)), field_values, max_size=5),
       st.dictionaries(paths, entries | field_values, max_size=3), st.booleans())
def test_signed_manifest_shaped_like_a_good_one(changes, files, keep_files):
    """A valid manifest with fields replaced by wrong types, odd paths and bad entries."""
    manifest = {**GOOD, **changes}
    if not keep_files:
        manifest["files"] = files
    check_manifest_bytes(dumps(manifest), payload={"app/firmware/x.py": PAYLOAD})


sig_like = st.fixed_dictionaries({}, optional={"format": field_values | st.just("humus-sig/1"),
                                               "alg": field_values | st.just("ed25519"),
                                               "key_id": field_values, "signer": field_values,
                                               "signature": field_values | st.just("AAAA")})


@fuzz(300)
@given(st.binary(max_size=300) | json_like.map(dumps) | sig_like.map(dumps))
def test_unsigned_signature_file_anything(data):
    check_signature_bytes(data)


def test_deeply_nested_json_is_a_bundle_error():
    deep = b"[" * 100_000 + b"]" * 100_000
    check_manifest_bytes(deep)
    check_signature_bytes(deep)
    check_manifest_bytes(b'{"format": "humus-bundle/1", "version": "\xff"}')   # not UTF-8
    check_manifest_bytes(b'{"format": "humus-bundle/1", "version": ' + b"1" * 5000 + b"}")  # int limit


def test_signature_with_a_key_id_that_is_not_a_string():
    for kid in ([], {}, 1, None):
        check_signature_bytes(dumps({"format": "humus-sig/1", "alg": "ed25519", "key_id": kid,
                                     "signer": "x", "signature": "AAAA"}))
