"""argparse types for the field-tech commands: every argument is checked once, here, at the edge.

A bad value is an argparse error (exit 2, the option named, nothing touched), never a traceback
deeper in or, for --root, a fresh opt/humus tree made in a mistyped folder.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

MAX_ARG_LEN = 4096


def existing_dir(text: str) -> str:
    if len(text) > MAX_ARG_LEN or "\0" in text:
        raise argparse.ArgumentTypeError("path too long or holds a NUL byte")
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not an existing folder (a typo?)")
    return text


def cli_version(text: str) -> str:
    from .bundle_schema import BundleError, check_version
    try:
        return check_version(text)
    except BundleError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def number(kind: type, lo: float, hi: float):
    """A finite int or float in [lo, hi]; 'nan', 'inf', '1e400' and '1_0' are refused."""
    def parse(text: str):
        if len(text) > 40 or "_" in text:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a plain number")
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value) or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text!r} is not between {lo:g} and {hi:g}")
        return value
    parse.__name__ = kind.__name__   # argparse names the type in its messages
    return parse
