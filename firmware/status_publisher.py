"""The box's status, published once per frame to the status file `humus status` reads: the device
health, the show state, the frame rate, the engine and model, the venue figures and every new
fault. One publisher for `humus run`, `humus soak` and `humus bench`, so the soak meets the file the
field sees and the bench pays what the field pays for it."""
from __future__ import annotations


class StatusPublisher:
    def __init__(self, writer) -> None:
        self.writer = writer             # a firmware.appliance.statusfile.StatusWriter
        self._faults_reported = 0

    def __call__(self, box) -> None:
        status = box.status()
        writer = self.writer
        writer.update(**status.venue)
        writer.update(state=status.state, show=status.show, fps=status.fps, engine=status.engine,
                      devices=status.devices_json(), model=status.model)
        for text in status.faults_after(self._faults_reported):
            writer.fault(text)
        self._faults_reported = status.faults_total
        writer.flush()
