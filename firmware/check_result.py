"""The one result type of `humus doctor`, for the appliance checks and the live device checks alike."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    """One row of the doctor's report. `ok=None`: skipped / not applicable here."""

    name: str
    ok: bool | None
    detail: str
    fix_hint: str = ""
