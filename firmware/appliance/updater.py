"""`humus update` end to end: verify, install, swap, restart, health check, roll back, prune."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import bundle as bundlemod
from . import releases as rel
from .health import HealthCheck, HealthResult


class UpdateFailed(Exception):
    """The new release was installed but failed its health check; the previous one is back."""


@dataclass
class UpdateReport:
    version: str
    previous: str | None = None
    already_installed: bool = False
    restarted: bool = False
    health: str | None = None
    pruned: list[str] = field(default_factory=list)
    swept: list[str] = field(default_factory=list)


def update(layout: rel.Layout, bundle_path: str | Path, *, force: bool = False,
           max_bytes: int = bundlemod.DEFAULT_MAX_BYTES, restart: Callable[[], None] | None = None,
           health: HealthCheck | None = None, keep: int = rel.DEFAULT_KEEP,
           say: Callable[[str], None] = lambda s: None) -> UpdateReport:
    """Install and activate a bundle. Nothing on the box changes unless the bundle verifies.

    With `restart`, the service is restarted and, with `health`, must prove healthy;
    otherwise the previous release is re-activated and restarted and UpdateFailed raised.
    """
    with rel.locked(layout):
        swept = rel.sweep(layout)
        if swept:
            say(f"removed leftovers of an interrupted update: {', '.join(swept)}")
        trusted = bundlemod.load_trusted_keys(layout.keys_dir)
        verified = bundlemod.open_bundle(bundle_path, trusted, max_bytes=max_bytes)
        say(f"verified {Path(bundle_path).name}: {verified.kind} {verified.version}, "
            f"{len(verified.manifest['files'])} files, signed by {verified.key.name} ({verified.key.key_id})")
        rel.crashpoint("verified")
        result = rel.install(layout, verified, force=force)
        report = UpdateReport(verified.version, swept=swept, already_installed=result.already_installed)
        say(f"release {result.version} {'already installed' if result.already_installed else 'installed'}"
            + (f" (taking {', '.join(f'{k} from {v}' for k, v in result.inherited.items())})"
               if result.inherited else ""))
        report.previous = rel.activate(layout, verified.version)
        say(f"current -> {verified.version}" + (f" (previous: {report.previous})" if report.previous else ""))
        changed = report.previous is not None or not result.already_installed
        if restart is not None and changed:
            since = time.time()
            try:
                restart()
            except Exception as exc:   # systemctl refused: treat like an unhealthy release
                verdict = HealthResult(False, f"restart failed: {exc}")
            else:
                report.restarted = True
                rel.crashpoint("restarted")
                if health is not None:
                    say("waiting for the new release to report healthy ...")
                    verdict = health(verified.version, since)
                else:
                    verdict = HealthResult(True, "restarted (no health check)")
            report.health = verdict.reason
            if not verdict.ok:
                rel.mark_failed(layout, verified.version, verdict.reason)
                back = report.previous
                if back is not None:
                    rel.activate(layout, back)
                    try:
                        restart()
                    except Exception as exc:
                        say(f"restarting {back} failed too: {exc}")
                    rel.crashpoint("rolled-back")
                raise UpdateFailed(f"release {verified.version} failed its health check ({verdict.reason}); "
                                   + (f"rolled back to {back}" if back else "no previous release to roll back to"))
            rel.mark_healthy(layout, verified.version, verdict.reason)
            say(f"healthy: {verdict.reason}")
        report.pruned = rel.prune(layout, keep=keep)
        if report.pruned:
            say(f"pruned old releases: {', '.join(report.pruned)}")
        return report


def rollback(layout: rel.Layout, to: str | None = None, restart: Callable[[], None] | None = None,
             say: Callable[[str], None] = lambda s: None) -> tuple[str | None, str]:
    """Re-activate the previous (or a named) release. Returns (from, to)."""
    with rel.locked(layout):
        target = rel.rollback_target(layout, to)
        old = rel.activate(layout, target)
        say(f"current -> {target}" + (f" (was {old})" if old else " (already current)"))
        if restart is not None and old is not None:
            restart()
        return old, target
