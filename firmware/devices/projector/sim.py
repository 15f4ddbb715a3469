"""The projector with no hardware behind it: records what it was told."""
from __future__ import annotations

import time


class SimProjector:
    """Records every power command (time, on) for rehearsals and tests; `fail` makes it not answer."""

    name = "projector[sim]"

    def __init__(self, cfg=None) -> None:
        self.on: bool | None = None
        self.commands: list[tuple[float, bool]] = []
        self.fail = False

    def power(self, on: bool) -> None:
        if self.fail:
            raise OSError("sim projector does not answer")
        self.on = on
        self.commands.append((time.monotonic(), on))
