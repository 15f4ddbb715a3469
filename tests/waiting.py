"""Polling for things that happen on another thread (a device's reader, an emulator, the box's loop)."""
from __future__ import annotations

import time


def wait_for(cond, timeout: float = 5.0, step: float = 0.01) -> bool:
    """True as soon as cond() holds; False when it still does not after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())
