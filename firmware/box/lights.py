"""The lights' room: one frame of the lights from what the frame showed (the pure rules in
show/lights.py), the OSC master and blackout, and the universe handed to the DMX sender; at the end,
the safe look."""
from __future__ import annotations

import logging

from firmware.show.lights import LightsState, build_universe, frame_lights, safe_universe

log = logging.getLogger("humus.box")


class LightsRoom:
    def __init__(self, config, devices, *, threaded_dmx: bool) -> None:
        self.config, self.devices, self.threaded_dmx = config, devices, threaded_dmx
        self.closed_look = config.schedule.closed_look if config.schedule else None
        self.state = LightsState()

    def frame(self, shown, since_s: float, noise_level: float, osc) -> None:
        """`shown`: the frame's show state, or CLOSED; since_s: how long that state has lasted."""
        self.state, level = frame_lights(self.config.lights, self.closed_look, self.state, shown,
                                         since_s, noise_level)
        dmx = self.devices.dmx   # looked up each frame: a hot-plug may have swapped it
        dmx.set_universe(build_universe(self.config.lights.fixtures, level, dmx.channels,
                                        master=osc.intensity, blackout=osc.blackout))
        if not self.threaded_dmx:
            dmx.catch_up()

    def close(self) -> None:
        """The safe look (or blackout, as [dmx] safe_look says), sent before the sender stops."""
        dmx = self.devices.dmx
        try:
            dmx.send_final(safe_universe(self.config.lights, self.config.dmx.safe_look, dmx.channels))
        except Exception as exc:  # shutting down: report, never raise
            log.warning("could not send the safe look: %s", exc)
