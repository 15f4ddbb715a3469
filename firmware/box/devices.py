"""The box's devices: camera, presence sensor, DMX sender and display, opened from the config, with
`type = "auto"` roles detected and hot-plugged (devices/hotplug.py). A device that cannot be opened
is a fault and a stand-in that does nothing; the show never stops for one."""
from __future__ import annotations

import logging

from firmware.devices.camera.sim import NoCamera
from firmware.devices.camera.table import open_camera
from firmware.devices.display.table import open_display
from firmware.devices.dmx.open import open_dmx
from firmware.devices.presence.table import open_presence
from firmware.render.camera_picture import bounded_camera

log = logging.getLogger("humus.box")


class BoxDevices:
    """Owns the four devices and the hot-plug watcher. `config` is the box's config with its auto
    sections made concrete (what was found, or `none`), updated on each swap."""

    def __init__(self, config, clock, fault, *, threaded: bool, threaded_dmx: bool) -> None:
        self.fault, self.clock, self.threaded_dmx = fault, clock, threaded_dmx
        self.auto = None
        # type = "auto": detect before opening anything, then open what was found like any config
        from firmware.devices.hotplug import AutoDevices, auto_roles
        if auto_roles(config):
            self.auto = AutoDevices(config)
            config = self.auto.resolved(config)
            if threaded:
                self.auto.start()
        self.config = config
        self._camera_warned: set[str] = set()
        self.display = open_display(config.display, clock)
        self.camera = self._open_camera(config.camera)
        self.presence = open_presence(config.presence, clock)
        self.dmx = self._open_dmx(config.dmx)

    def _open_camera(self, section):
        """The camera at no more than the show can use (render/camera_picture.py), scaled at the
        source; what was cut is said once, not at every hot-plug."""
        section, warning = bounded_camera(section, self.config.display)
        if warning and warning not in self._camera_warned:
            self._camera_warned.add(warning)
            log.warning("%s", warning)
        try:
            return open_camera(section, self.clock)
        except Exception as exc:  # any backend failure: run on without the device
            self.fault(f"camera: cannot open ({exc}); running without it")
            return NoCamera(None, self.clock)

    def _open_dmx(self, section):
        dmx = open_dmx(section, self.clock, isolate=self.threaded_dmx)
        if self.threaded_dmx:
            dmx.start()
        return dmx

    def follow_plugs(self) -> None:
        """Swap in what the hot-plug watcher found since the last frame."""
        if self.auto is not None:
            for role, section in self.auto.changes():
                self.swap(role, section)

    def swap(self, role: str, section) -> None:
        """Hot-plug: open the device found for `role` and drop the one in use (none, or gone)."""
        old = getattr(self, role)
        opener = {"camera": self._open_camera, "dmx": self._open_dmx,
                  "presence": lambda s: open_presence(s, self.clock)}[role]
        setattr(self, role, opener(section))
        self.config = self.config.model_copy(update={role: section})
        try:
            old.close()
        except Exception as exc:   # the old device may be half gone already
            log.warning("closing %s: %s", old.name, exc)

    def by_role(self) -> dict:
        return {"camera": self.camera, "presence": self.presence, "dmx": self.dmx, "display": self.display}

    def close(self) -> None:
        """Close the watcher, then each device; none of it raises (shutting down: report only)."""
        if self.auto is not None:
            self.auto.close()
        for dev in (self.camera, self.presence, self.dmx, self.display):
            try:
                dev.close()
            except Exception as exc:
                log.warning("closing %s: %s", dev.name, exc)
