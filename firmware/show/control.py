"""Show control inputs (OSC today; anything that speaks addresses and typed arguments): a pure
function from (inputs, message) to the new inputs, or None for a message to ignore and count.

    /humus/visitor i     1 = an external presence (someone is there), 0 = none (the sensor decides)
    /humus/trigger       start a sequence now (a bare message, or one non-zero number: a button)
    /humus/subject s     what the model should grow; kept here as the seam for model subjects
    /humus/decay f       0..1, the decay condition for generated matter
    /humus/intensity f   0..1, a master for the lights
    /humus/blackout i    1 = lights out, 0 = back
    /humus/open i        1 open / 0 closed, overriding the schedule until its next change (the
                         expiry needs the schedule, so firmware/venue.py handles that part)

Types are strict: an `i` must be an int (OSC bools are not ints), an `f` a finite float (an int is
accepted: many controllers send 1 for 1.0), an `s` a string; numbers out of range are bad messages.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

MAX_SUBJECT = 200


@dataclass(frozen=True)
class ShowInputs:
    visitor: bool = False            # external presence
    triggers: int = 0                # triggers received; the box starts one sequence per new one
    subject: str | None = None       # for the model's subject (another issue adds the model side)
    decay: float | None = None       # None = the config's [show] decay
    intensity: float = 1.0           # light master
    blackout: bool = False
    open_override: bool | None = None


def _int01(args) -> int | None:
    if len(args) == 1 and type(args[0]) is int and args[0] in (0, 1):
        return args[0]
    return None


def _unit_float(args) -> float | None:
    if len(args) == 1 and type(args[0]) in (int, float) and math.isfinite(args[0]) and 0 <= args[0] <= 1:
        return float(args[0])
    return None


def apply_message(inputs: ShowInputs, address: str, args: tuple) -> ShowInputs | None:
    """The inputs after one message, or None: unknown address or wrong arguments (ignored, counted)."""
    if address == "/humus/trigger":
        if not args:
            return replace(inputs, triggers=inputs.triggers + 1)
        if len(args) == 1 and type(args[0]) in (int, float) and math.isfinite(args[0]):
            return replace(inputs, triggers=inputs.triggers + (args[0] != 0))   # 0: button released
        return None
    if address in ("/humus/visitor", "/humus/blackout", "/humus/open"):
        v = _int01(args)
        if v is None:
            return None
        key = {"/humus/visitor": "visitor", "/humus/blackout": "blackout", "/humus/open": "open_override"}[address]
        return replace(inputs, **{key: bool(v)})
    if address in ("/humus/decay", "/humus/intensity"):
        v = _unit_float(args)
        if v is None:
            return None
        return replace(inputs, **{address.rsplit("/", 1)[1]: v})
    if address == "/humus/subject":
        if len(args) == 1 and type(args[0]) is str and 0 < len(args[0]) <= MAX_SUBJECT and args[0].isprintable():
            return replace(inputs, subject=args[0])
        return None
    return None
