"""Safe mode: what the box shows when the show itself keeps crashing (systemd OnFailure=).

It depends on as little as possible: no model, no camera, no presence sensor. The lights go to the
configured calm look (or blackout) at the normal DMX rate, the projector shows a still image (a warm,
dark gradient made here, so no file can be missing), and systemd is told we are alive.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("humus.safe")


def still_image(width: int, height: int) -> np.ndarray:
    """A calm, dark earth-coloured gradient: reads as intentional on a gallery wall, never a desktop."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    glow = np.exp(-(x * x) * 1.5 - ((y - 0.6) ** 2) * 4.0)
    base = np.array([46, 32, 22], np.float32)
    img = base[None, None, :] * (0.4 + 0.6 * glow[..., None])
    return np.clip(img, 0, 255).astype(np.uint8)


def run_safe(config, duration_s: float | None = None, clock=None, stopper=None) -> int:
    from firmware.appliance.sdnotify import Notifier
    from firmware.clock import RealClock
    from firmware.devices.display.sim import HeadlessDisplay
    from firmware.devices.display.table import open_display
    from firmware.devices.dmx.open import open_dmx
    from firmware.runner import Stopper
    from firmware.show.lights import safe_universe

    clock = clock or RealClock()
    stopper = stopper or Stopper().install()
    notifier = Notifier()
    try:
        display = open_display(config.display, clock)
    except Exception as exc:  # even without a projector, the lights still go calm
        log.warning("safe mode: no display (%s)", exc)
        display = HeadlessDisplay(config.display, clock)
    if config.dmx.type == "auto":   # the lights must go calm on whatever widget is plugged in
        try:
            from firmware.devices.hotplug import resolve_config
            config, _ = resolve_config(config, only=("dmx",))
        except Exception as exc:   # safe mode must come up whatever the scan does
            log.warning("safe mode: DMX detection failed (%s); no lights", exc)
            from firmware.config.devices import DmxNone
            config = config.model_copy(update={"dmx": DmxNone(type="none")})
    dmx = open_dmx(config.dmx, clock)
    universe = safe_universe(config.lights, config.dmx.safe_look, dmx.channels)
    dmx.set_universe(universe)
    dmx.start()
    still = still_image(config.display.width, config.display.height)
    notifier.ready("safe mode: calm lights, still image")
    start = clock.now()
    try:
        while not stopper.event.is_set():
            display.present(still)  # re-present: a projector switched on later picks it up
            notifier.watchdog()
            if duration_s is not None and clock.now() - start >= duration_s:
                break
            stopper.event.wait(0.5)
    finally:
        dmx.send_final(universe)
        dmx.close()
        display.close()
    return 0
