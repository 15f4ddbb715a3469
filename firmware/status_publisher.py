"""The box's status, published once per frame to the status file `humus status` reads: the device
health, the show state, the frame rate, the engine and model, the venue figures and every new
fault. One publisher for `humus run`, `humus soak` and `humus bench`, so the soak meets the file the
field sees and the bench pays what the field pays for it."""
from __future__ import annotations

from firmware.show.machine import State


class StatusPublisher:
    def __init__(self, writer) -> None:
        self.writer = writer             # a firmware.appliance.statusfile.StatusWriter
        self._faults_reported = 0

    def __call__(self, box) -> None:
        writer, cue = self.writer, box.cue
        health = box.devices_health()
        recent = box.frame_times[-60:]
        venue = box.venue.status()
        if box.auto is not None:
            venue["detected"] = box.auto.status()
        writer.update(**venue)
        writer.update(state="running" if all(d["ok"] for d in health.values()) else "degraded",
                      show=(State.CLOSED if not box.venue_now.open else cue.state) if cue else None,
                      fps=round(len(recent) / max(1e-6, sum(recent)), 1) if recent else 0.0,
                      engine=box.engine.describe() if box.engine else None, devices=health,
                      model={"name": box.model.name, "network": box.net.name} if box.model else None)
        for _, text in box.trace.faults[self._faults_reported:]:
            writer.fault(text)
        self._faults_reported = len(box.trace.faults)
        writer.flush()
