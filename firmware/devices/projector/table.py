"""The projector backend table: config `type` -> constructor (`none` is no entry: no control)."""
from __future__ import annotations

from firmware.devices.backend_table import BackendTable, lazy
from firmware.devices.projector.sim import SimProjector

BACKENDS: BackendTable = BackendTable("projector", {
    "sim": SimProjector,
    "pjlink": lazy("firmware.devices.projector.pjlink", "PJLinkProjector", with_clock=False),
    "cec": lazy("firmware.devices.projector.cec", "CecProjector", with_clock=False),
})
