"""`humus update` end to end: verify, install, swap, restart, health check, roll back, prune."""
from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import bundle as bundlemod
from . import releases as rel
from .bundle_keys import load_trusted_keys
from .bundle_schema import DEFAULT_MAX_BYTES, BundleError
from .health import HealthCheck, HealthResult
from .release_layout import Layout, ReleaseError, current_version
from .state import mark_failed, mark_healthy, mark_pending, read_state


class UpdateFailed(Exception):
    """The new release was installed but failed its health check; the previous one is back."""


class Interrupted(Exception):
    """A signal (SIGHUP from a dropped SSH session, SIGTERM) arrived during the health wait."""


@contextmanager
def _interruptible():
    """SIGHUP, SIGTERM and SIGINT raise Interrupted (once) so the wait ends in a rollback, not a dead
    updater with `current` on an unverified release. A second signal is ignored: it must not cut the
    rollback itself short. A signal the updater was started with ignored stays ignored: that is how
    `nohup humus update ...` asks to outlive the SSH session (SIGHUP), and how a shell runs a
    background job (SIGINT)."""
    armed = [True]

    def handler(signum, frame):
        if armed[0]:
            armed[0] = False
            raise Interrupted("SIGINT (Ctrl-C)" if signum == signal.SIGINT else signal.Signals(signum).name)
    old = {s: signal.signal(s, handler) for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
           if signal.getsignal(s) != signal.SIG_IGN}
    try:
        yield armed
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@dataclass
class UpdateReport:
    version: str
    previous: str | None = None
    already_installed: bool = False
    restarted: bool = False
    health: str | None = None
    pruned: list[str] = field(default_factory=list)
    swept: list[str] = field(default_factory=list)


def update(layout: Layout, bundle_path: str | Path, *, force: bool = False,
           max_bytes: int = DEFAULT_MAX_BYTES, restart: Callable[[], None] | None = None,
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
        _recover(layout, restart, say)
        trusted = load_trusted_keys(layout.keys_dir)
        verified = bundlemod.open_bundle(bundle_path, trusted, max_bytes=max_bytes)
        say(f"verified {Path(bundle_path).name}: {verified.kind} {verified.version}, "
            f"{len(verified.manifest['files'])} files, signed by {verified.key.name} ({verified.key.key_id})")
        rel.crashpoint("verified")
        result = rel.install(layout, verified, force=force)
        report = UpdateReport(verified.version, swept=swept, already_installed=result.already_installed)
        say(f"release {result.version} {'already installed' if result.already_installed else 'installed'}"
            + (f" (taking {', '.join(f'{k} from {v}' for k, v in result.inherited.items())})"
               if result.inherited else ""))
        cur = current_version(layout)
        if restart is not None and cur != verified.version and (cur is not None or not result.already_installed):
            # Recorded before `current` moves: a SIGKILL from here until the health verdict
            # leaves this note for the next `humus update` or boot (`humus recover`) to roll back.
            mark_pending(layout, verified.version, cur)
        report.previous = rel.activate(layout, verified.version)
        say(f"current -> {verified.version}" + (f" (previous: {report.previous})" if report.previous else ""))
        changed = report.previous is not None or not result.already_installed
        if restart is not None and changed:
            with _interruptible() as armed:
                verdict = _restart_and_wait(verified.version, restart, health, report, say)
                armed[0] = False       # from here on, finish what we started (roll back or keep)
                _conclude(layout, verified.version, verdict, report, restart, say)
        report.pruned = rel.prune(layout, keep=keep)
        if report.pruned:
            say(f"pruned old releases: {', '.join(report.pruned)}")
        return report


def _conclude(layout: Layout, version: str, verdict: HealthResult, report: UpdateReport, restart, say) -> None:
    """Record the health outcome; roll back (and raise UpdateFailed) if the release is not healthy."""
    report.health = verdict.reason
    if verdict.ok:
        mark_healthy(layout, version, verdict.reason)
        say(f"healthy: {verdict.reason}")
        return
    back = report.previous
    if back is not None:
        # Back first, then the verdict: a power cut between the two leaves `back` current and the
        # pending note, which the next boot's `humus recover` turns into the verdict. The other
        # order left the failed release current with no note: kept at every boot after the cut.
        rel.activate(layout, back)
    mark_failed(layout, version, verdict.reason)
    if back is not None:
        try:
            restart()
        except Exception as exc:
            say(f"restarting {back} failed too: {exc}")
        rel.crashpoint("rolled-back")
    raise UpdateFailed(f"release {version} failed its health check ({verdict.reason}); "
                       + (f"rolled back to {back}" if back else "no previous release to roll back to"))


def _restart_and_wait(version: str, restart, health, report: UpdateReport, say) -> HealthResult:
    since = time.time()
    try:
        try:
            restart()
        except Exception as exc:   # systemctl refused: treat like an unhealthy release
            return HealthResult(False, f"restart failed: {exc}")
        report.restarted = True
        rel.crashpoint("restarted")
        if health is None:
            return HealthResult(True, "restarted (no health check)")
        say("waiting for the new release to report healthy ...")
        return health(version, since)
    except Interrupted as exc:   # SIGINT too: _interruptible holds it for the whole wait
        return HealthResult(False, f"update interrupted by {exc} before release {version} proved healthy")


def _recover(layout: Layout, restart, say) -> str | None:
    """Roll back a release left unverified by an updater that died during its health wait
    (SIGKILL, power cut). Caller holds the lock, so no live update is waiting on it."""
    pending = read_state(layout).get("pending")
    if not pending:
        return None
    version, back = pending["version"], pending.get("previous")
    reason = "the update was killed (SIGKILL or power cut) before this release proved healthy"
    if current_version(layout) != version or not isinstance(back, str):
        mark_failed(layout, version, reason)
        say(f"release {version} was left unverified by an interrupted update; marked failed")
        return None
    try:
        # Back first, then the verdict (which clears the note): a power cut between the two leaves
        # the note for the next boot to finish, never the unverified release current without it.
        rel.activate(layout, back)
    except (ReleaseError, BundleError) as exc:
        mark_failed(layout, version, reason)
        say(f"release {version} was left unverified, but {back} cannot be re-activated ({exc}); kept {version}")
        return None
    mark_failed(layout, version, reason)
    say(f"release {version} was left unverified by an interrupted update: rolled back to {back}")
    if restart is not None:
        try:
            restart()
        except Exception as exc:
            say(f"restarting {back} failed: {exc}")
    return back


def recover(layout: Layout, restart: Callable[[], None] | None = None,
            say: Callable[[str], None] = lambda s: None) -> str | None:
    """`humus recover` (run at boot, before the show starts): roll back an unverified release.
    Returns the version rolled back to, or None. Does nothing while an update holds the lock
    (that update's own restart also runs this) or where nothing is installed."""
    if not layout.base.is_dir():
        return None
    try:
        with rel.locked(layout):
            return _recover(layout, restart, say)
    except ReleaseError as exc:
        say(f"nothing recovered: {exc}")
        return None


def rollback(layout: Layout, to: str | None = None, restart: Callable[[], None] | None = None,
             say: Callable[[str], None] = lambda s: None) -> tuple[str | None, str]:
    """Re-activate the previous (or a named) release. Returns (from, to)."""
    with rel.locked(layout):
        target = rel.rollback_target(layout, to)
        old = rel.activate(layout, target)
        say(f"current -> {target}" + (f" (was {old})" if old else " (already current)"))
        if restart is not None and old is not None:
            restart()
        return old, target
