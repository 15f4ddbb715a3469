"""The soak's rig: the real box on a fake clock, its config, the model behind a fault switch, the
emulators (with --pty) and the status file written as the runtime writes it."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from firmware.soak.faults import FaultyEngine, FullDisk
from firmware.soak.schedule import SHOW, truth_at, visitor_script


class Rig:
    """The box and everything around it: config, model proxy, emulators, status file, full disk."""

    def __init__(self, workdir: Path, model_dir: Path, seed: int, visitors: int, pty: bool,
                 fps: float, width: int, height: int) -> None:
        from firmware.box.conductor import Box
        from firmware.clock import FakeClock
        from firmware.config.load import parse_config
        from firmware.generate.engines import open_engine
        from firmware.generate.manifest import load_model_dir

        self.pty = pty
        self.script = visitor_script(random.Random(seed), visitors)
        self._st = np.array([p[0] for p in self.script])
        self._sd = np.array([p[1] for p in self.script])
        self.radar = self.widget = None
        data = {"display": {"type": "headless", "width": width, "height": height, "fps": fps},
                "camera": {"type": "sim", "width": 96, "height": 72, "fps": 15.0},
                "model": {"dir": str(model_dir), "engine": "onnxruntime", "threads": 1,
                          "engine_cache": str(workdir / "engines")},
                "show": dict(SHOW), "status": {"path": str(workdir / "status.json"),
                                               "state_dir": str(workdir)}}
        if pty:
            from firmware.devices.emulators.radar import LD2410Emulator
            from firmware.devices.emulators.widget import EnttecEmulator
            self.radar = LD2410Emulator(workdir / "humus-radar", distance_cm=None, seed=seed)
            self.widget = EnttecEmulator(workdir / "humus-dmx")
            data["presence"] = {"type": "ld2410", "port": self.radar.port.path, "stale_after_s": 2.0}
            data["dmx"] = {"type": "enttec-pro", "port": self.widget.port.path}
        else:
            data["presence"] = {"type": "sim", "script": self.script, "loop": False}
        self.config = parse_config(data, "<soak>")
        self.model = load_model_dir(model_dir)
        self.engine = FaultyEngine(open_engine(self.model, "student", "onnxruntime", threads=1))
        self.clock = FakeClock(1000.0)
        # Decay footage for the idle (the box's "no model: footage only" fallback): a slow pulse.
        footage = [np.full((72, 96, 3), (40 + 12 * i, 30 + 8 * i, 20), np.uint8) for i in range(6)]
        self.box = Box(self.config, self.clock, threaded=False, engine=self.engine, model=self.model,
                       footage_frames=footage)
        if not pty:  # the sim transport records for tests; a soak keeps only a little of it
            self.box.devices.dmx.transport.max_frames = 2048
        self.disk = FullDisk().__enter__()
        self.status, self.writer = self._status_hook(workdir / "status.json")

    def _status_hook(self, path: Path):
        """What the runtime does every frame (runner.appliance_hooks: the same publisher), with the
        writer on show time so an accelerated soak writes (and meets a full disk) as often as a box does."""
        from firmware.appliance.statusfile import StatusWriter
        from firmware.status_publisher import StatusPublisher
        clock = self.clock
        writer = StatusWriter(path, clock=lambda: 1.7e9 + clock.now(), min_interval=1.0)
        return StatusPublisher(writer), writer

    def truth(self, t: float) -> float:
        return truth_at(self._st, self._sd, t - 1000.0)

    def drive_devices(self, now: float) -> None:
        if self.pty:
            truth = self.truth(now)
            self.radar.distance_cm = round(truth * 100) if truth < 8.0 else None
            self.radar.step(now)
            self.widget.step(now)

    def close(self) -> None:
        try:
            self.box.close()
        finally:
            self.disk.__exit__()
            if self.pty:
                self.widget.step(self.clock.now())   # the safe look the box sent last
                self.radar.close()
                self.widget.close()
