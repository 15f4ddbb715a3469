"""Fuzzing the config loader with hypothesis: `parse_config(obj)` and `load_config(path)` may raise
ConfigError and nothing else, whatever the TOML text or the nested dict (firmware/config/load.py).

Inputs: arbitrary nested dicts; dicts shaped like a config (real sections, real keys, backend tags,
values near the bounds) so the validators deep inside run; arbitrary text; the shipped example
config with random edits; and TOML rendered from the config-shaped dicts. CI runs a few hundred
examples each; HUMUS_FUZZ_EXAMPLES=100000 runs the long version.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

import firmware
from firmware.config import devices, schema, section, venue
from firmware.config.errors import type_tags
from firmware.fuzz import check_config_dict, fuzz_config_toml

N = int(os.environ.get("HUMUS_FUZZ_EXAMPLES", "0"))
EXAMPLE = (Path(firmware.__file__).parent / "data" / "humus.example.toml").read_text()


def fuzz(ci: int):
    return settings(max_examples=N or ci, deadline=None, database=None if N else settings().database,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


scalars = (st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats()
           | st.text(max_size=12))
json_like = st.recursive(scalars, lambda c: st.lists(c, max_size=4) |
                         st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=24)

SECTIONS = list(schema.Config.model_fields)
KEYS = sorted({k for module in (schema, devices, venue) for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, section.Section) for k in v.model_fields})
TAGS = sorted(type_tags(schema.Config))   # every backend tag, read from the models
CHANNELS = ["dimmer", "dimmer16", "red", "green", "blue", "white", "amber", "strobe", "red16", "green16",
            "blue16", "fixed", "uv"]
STATES = ["idle", "approach", "immersion", "emergence", "hold", "release", "safe", "party"]

numbers = (st.integers(-3, 70000) | st.floats(-1.0, 1e5) | st.sampled_from([0, 1, 512, 513, 0.0, -0.0, 1e308])
           | st.floats())
values = (numbers | st.booleans() | st.text(max_size=12) | st.sampled_from(TAGS)
          | st.lists(numbers, max_size=3) | st.lists(st.lists(numbers, max_size=3), max_size=4))
fixture = st.fixed_dictionaries({"name": st.text(max_size=6), "address": numbers,
                                 "channels": st.lists(st.sampled_from(CHANNELS), max_size=6)},
                                optional={"fixed_value": numbers, "extra": values})
look = st.fixed_dictionaries({"intensity": numbers, "color": st.lists(numbers, max_size=4)},
                             optional={"noise_follow": numbers, "strobe": numbers})
section = st.dictionaries(st.sampled_from(KEYS + ["type"]) | st.text(max_size=6), values, max_size=8)
lights = st.fixed_dictionaries({}, optional={"fixtures": st.lists(fixture, max_size=5),
                                             "looks": st.dictionaries(st.sampled_from(STATES), look, max_size=8),
                                             "fade_s": numbers})
config_like = st.dictionaries(st.sampled_from(SECTIONS) | st.text(max_size=6),
                              section | lights, max_size=6)


@fuzz(800)
@given(json_like)
def test_parse_config_any_object(obj):
    check_config_dict(obj)
    check_config_dict({"show": obj, "lights": obj, "presence": obj})


@fuzz(600)
@given(config_like)
def test_parse_config_config_shaped(data):
    check_config_dict(data)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)                        # nan, inf are TOML too
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    return '""'


def to_toml(data: dict) -> str:
    out = []
    for name, body in data.items():
        out.append(f"[{json.dumps(name)}]")
        out += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in body.items()]
    return "\n".join(out) + "\n"


@fuzz(400)
@given(config_like)
def test_load_config_rendered_toml(data):
    fuzz_config_toml(to_toml(data).encode())


@fuzz(400)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_load_config_any_text(text):
    fuzz_config_toml(text.encode("utf-8", "surrogatepass"))


@fuzz(400)
@given(st.binary(max_size=300))
def test_load_config_any_bytes(data):
    fuzz_config_toml(data)


edit = st.tuples(st.integers(0, len(EXAMPLE)), st.integers(0, 6),
                 st.text(alphabet='[]{}="\'.,#\n -_0123456789abcdefxyz', max_size=6))


@fuzz(400)
@given(st.lists(edit, min_size=1, max_size=6))
def test_load_config_edited_example(edits):
    text = EXAMPLE
    for pos, cut, insert in edits:
        text = text[:pos] + insert + text[pos + cut:]
    fuzz_config_toml(text.encode())


def test_example_config_loads_and_deep_nesting_is_a_config_error():
    fuzz_config_toml(EXAMPLE.encode())
    fuzz_config_toml(b"a = " + b"[" * 50_000 + b"]" * 50_000)   # a parser's recursion limit
    check_config_dict({"show": {"hold_s": [[[[[[]]]]]]}})
