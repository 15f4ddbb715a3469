"""What `humus doctor` is made of, whoever contributes the checks: the one result type, the loop that
runs checks so that none can crash the doctor, and how the rows are shown.

firmware/appliance/doctor.py contributes the appliance checks (release, keys, service, ...),
firmware/devices/doctor.py the live device checks; both run through `run_guarded`, and
`humus doctor` (appliance/commands.py) prints what they return with `render`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

CRASH_HINT = "report this as a firmware bug"


@dataclass(frozen=True)
class CheckResult:
    """One row of the doctor's report. `ok=None`: skipped / not applicable here. `warning`: what
    passes but is likely not meant (shown, never a failure: the exit status does not change)."""

    name: str
    ok: bool | None
    detail: str
    fix_hint: str = ""
    warning: str = ""


Check = Callable[[Any], "CheckResult | list[CheckResult]"]


def run_guarded(checks: Iterable[Check], subject: Any) -> list[CheckResult]:
    """Every check on `subject` (the appliance context, or the device config), in order. A check
    returns one row or a list; one that raises becomes a failed row, so it cannot hide the others."""
    rows: list[CheckResult] = []
    for check in checks:
        try:
            res = check(subject)
        except Exception as exc:
            res = CheckResult(check.__name__.removeprefix("check_"), False, f"check crashed: {exc!r}", CRASH_HINT)
        rows.extend(res if isinstance(res, list) else [res])
    return rows


def render(results: list[CheckResult]) -> str:
    """The report as a technician reads it: a mark and a line per row, the fix under each failure."""
    lines = []
    for r in results:
        mark = "warn" if r.ok is True and r.warning else {True: "ok  ", False: "FAIL", None: "skip"}[r.ok]
        lines.append(f"[{mark}] {r.name:<16} {r.detail}")
        if r.warning:
            lines.append(f"       warning: {r.warning}")
        if r.ok is False and r.fix_hint:
            lines.append(f"       fix: {r.fix_hint}")
    failed = sum(r.ok is False for r in results)
    warned = sum(bool(r.warning) for r in results)
    lines.append((f"{failed} problem(s)" if failed else "all checks passed")
                 + (f", {warned} warning(s)" if warned else ""))
    return "\n".join(lines)


def as_json(results: list[CheckResult]) -> list[dict]:
    return [asdict(r) for r in results]
