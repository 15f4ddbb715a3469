"""The field-tech subcommands of `humus`: update, rollback, releases, status, doctor, logs.

`register(subparsers)` adds them to the `humus` argparse CLI; each sets func(args) -> exit code.
Exit codes: 0 fine, 1 refused or unhealthy (nothing changed by a refused update),
2 a malformed argument (argparse names it; nothing touched), 3 update installed but unhealthy
(or interrupted during its health wait) and rolled back, 141 stdout closed early (`| head`).

Arguments are validated here, at the edge, by argparse types: --root must be an existing
folder (a typo must not create a fresh opt/humus tree), versions must be of the documented
ASCII form, numbers finite and in range.

`--root DIR` works on a directory tree instead of the box ("/"): the service is
then not restarted unless `--restart` is given, so an update can be rehearsed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import doctor as doctormod
from . import releases as rel
from . import updater
from .bundle_schema import DEFAULT_MAX_BYTES, BundleError
from .health import StatusHealth
from .release_layout import (Layout, ReleaseError, current_version, installed_versions, previous_version, read_release,
                             verify_release)
from .service import SAFE_SERVICE, SERVICE, Systemctl
from .argtypes import cli_version, existing_dir, number
from .state import read_state
from .status_view import render_status
from .statusfile import read_status
from firmware.check_result import CheckResult, as_json, render


def _common(p, status_file: bool = False) -> None:
    p.add_argument("--root", default="/", type=existing_dir,
                   help="operate on this directory tree instead of the box (default /)")
    if status_file:
        p.add_argument("--status-file", help="default: ROOT/run/humus/status.json")


def _restart_flags(p) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--restart", dest="restart", action="store_true", default=None,
                   help="restart humus.service afterwards (default on the box, off with --root)")
    g.add_argument("--no-restart", dest="restart", action="store_false")


def _wants_restart(args) -> bool:
    return args.restart if args.restart is not None else Path(args.root).resolve() == Path("/")


def _status_path(args) -> Path:
    return Path(args.status_file) if getattr(args, "status_file", None) else Layout.at(args.root).status_file


def _err(msg: str) -> None:
    _say(f"humus: {msg}", sys.stderr)


def _say(msg: str, stream=None) -> None:
    """print() that survives a terminal gone with the SSH session (EIO): the update goes on."""
    try:
        print(msg, file=stream or sys.stdout, flush=True)
    except OSError:
        pass


def _humus_root(layout: Layout) -> None:
    """Refuse to write into a folder that is not a humus tree (a --root typo)."""
    if not (layout.root / "etc/humus").is_dir() and not layout.base.is_dir():
        raise ReleaseError(f"{layout.root} has neither etc/humus nor opt/humus: not a humus root "
                           f"(a typo in --root?)")


# --- update / rollback / releases -------------------------------------------------------------

def cmd_update(args) -> int:
    layout = Layout.at(args.root)
    restart = health = None
    if _wants_restart(args):
        ctl = Systemctl()
        restart = ctl.restart
        health = StatusHealth(_status_path(args), timeout=args.health_timeout, settle=args.settle,
                              is_active=ctl.is_active)
    try:
        _humus_root(layout)
        report = updater.update(layout, args.file, force=args.force, max_bytes=args.max_bytes, restart=restart,
                                health=health, keep=args.keep, say=_say)
    except (BundleError, ReleaseError) as exc:
        _err(f"update refused, nothing changed: {exc}")
        return 1
    except updater.UpdateFailed as exc:
        _err(str(exc))
        return 3
    except PermissionError as exc:
        _err(f"update refused: {exc} (run it as root: sudo humus update ...)")
        return 1
    except KeyboardInterrupt:   # before the restart: nothing activated (staging already removed)
        _err("update interrupted before the restart; current release unchanged")
        return 130
    if not report.restarted:
        _say(f"updated to {report.version}; service not restarted"
              + (" (--root rehearsal; add --restart to restart)" if not _wants_restart(args) else ""))
    return 0


def cmd_rollback(args) -> int:
    layout = Layout.at(args.root)
    restart = Systemctl().restart if _wants_restart(args) else None
    try:
        _humus_root(layout)
        updater.rollback(layout, to=args.to, restart=restart, say=_say)
    except (ReleaseError, BundleError) as exc:
        _err(f"rollback refused: {exc}")
        return 1
    except PermissionError as exc:
        _err(f"rollback refused: {exc} (run it as root: sudo humus rollback)")
        return 1
    return 0


def cmd_recover(args) -> int:
    """At boot (humus.service ExecStartPre): roll back a release an interrupted update left unverified."""
    layout = Layout.at(args.root)
    restart = Systemctl().restart if args.restart else None
    back = updater.recover(layout, restart=restart, say=_say)
    if back is None:
        _say("nothing to recover")
    return 0


def cmd_releases(args) -> int:
    layout = Layout.at(args.root)
    cur, prev = current_version(layout), previous_version(layout)
    state = read_state(layout)
    failed, healthy, pending = state["failed"], state["healthy"], state.get("pending", {}).get("version")
    rows = []
    for v in reversed(installed_versions(layout)):
        try:
            rec = read_release(layout.release_dir(v))
        except ReleaseError as exc:
            rec = {"error": str(exc)}
        problems = verify_release(layout.release_dir(v), hashes=args.verify)
        rows.append({"version": v, "current": v == cur, "previous": v == prev, "kind": rec.get("kind"),
                     "created": rec.get("created"), "signer": rec.get("bundle", {}).get("signer"),
                     "bytes": sum(f["size"] for f in rec.get("files", {}).values()),
                     "failed": failed.get(v, {}).get("reason"), "problems": problems,
                     "health": ("failed" if v in failed else "unverified" if v == pending
                                else "healthy" if v in healthy else None)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no releases under {layout.releases}")
        return 1
    for r in rows:
        mark = "*" if r["current"] else ("<" if r["previous"] else " ")
        notes = ([f"FAILED: {r['failed']}"] if r["failed"] else []) + [f"DAMAGED: {p}" for p in r["problems"][:1]]
        if r["health"] == "unverified":
            notes.append("UNVERIFIED: an update was interrupted before it proved healthy (`humus recover`)")
        elif r["health"] == "healthy":
            notes.append("healthy")
        print(f"{mark} {r['version']:<14} {r['kind'] or '?':<6} {r['created'] or '?':<21} "
              f"{r['bytes'] / 2**20:8.1f} MiB  {r['signer'] or '?'}" + ("  " + "; ".join(notes) if notes else ""))
    print("* current   < previous (humus rollback goes there)")
    return 0


# --- status / doctor / logs -------------------------------------------------------------------

def cmd_status(args) -> int:
    layout = Layout.at(args.root)
    try:
        status = read_status(_status_path(args))
    except ValueError as exc:
        _err(str(exc))
        return 1
    service = None
    if Path(args.root).resolve() == Path("/") and shutil.which(Systemctl().binary):
        service = Systemctl().is_active()
        if Systemctl(service=SAFE_SERVICE).is_active() == "active":
            service = f"{service} (SAFE MODE is active)"
    text, healthy = render_status(status, time.time(), current_version(layout), previous_version(layout), service)
    if args.json:
        print(json.dumps({"status": status, "healthy": healthy, "service": service,
                          "current": current_version(layout)}, indent=2))
    else:
        print(text)
    return 0 if healthy else 1


def cmd_doctor(args) -> int:
    if args.detect:
        return _doctor_detect(args)
    on_box = Path(args.root).resolve() == Path("/")
    ctx = doctormod.Context(root=Path(args.root), config_path=Path(args.config) if args.config else None, on_box=on_box)
    # Live device checks open the serial ports and the camera, which the running show holds.
    live = on_box and (args.live or ctx.systemctl.is_active() != "active")
    results = doctormod.run_checks(ctx, doctormod.CHECKS + (doctormod.live_device_checks() if live else []))
    if on_box and not live:
        results.append(CheckResult("devices (live)", None, "skipped while the show runs (it holds the "
                                   "ports); stop it (sudo systemctl stop humus) or use --live"))
    print(json.dumps(as_json(results), indent=2) if args.json else render(results))
    return 1 if any(r.ok is False for r in results) else 0


def _doctor_detect(args) -> int:
    """Probe every port and camera now and print the config lines that pin what was found."""
    from firmware.config.errors import ConfigError
    from firmware.config.load import load_config
    from firmware.devices.detect import scanner_for
    from firmware.devices.hotplug import pin_lines
    path = Path(args.config) if args.config else Path(args.root) / "etc/humus/humus.toml"
    try:
        config = load_config(path if path.is_file() or args.config else None, search=False)
    except ConfigError as exc:
        _err(str(exc))
        return 2
    detection = scanner_for(config, roles={"camera", "presence", "dmx"}).scan()
    print("# found by humus doctor --detect; paste into /etc/humus/humus.toml to pin it")
    print(pin_lines(detection, config), end="")
    return 0


def cmd_logs(args) -> int:
    journalctl = os.environ.get("HUMUS_JOURNALCTL", "journalctl")
    cmd = [journalctl, "-u", SERVICE, "-u", SAFE_SERVICE, "-o", "short-iso", "--no-pager", "-n", str(args.lines)]
    if Path(args.root).resolve() != Path("/"):
        cmd.insert(1, f"--root={args.root}")
    if args.follow:
        cmd.append("--follow")
    if args.boot is not None:
        cmd += ["-b", str(args.boot)]
    if args.since:
        cmd += ["--since", args.since]
    if shutil.which(journalctl) is None:
        _err(f"{journalctl} not found; on the box logs are in the journal: {' '.join(cmd)}")
        return 1
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("update", help="install a signed bundle, restart, roll back if unhealthy")
    p.add_argument("file")
    _common(p, status_file=True)
    _restart_flags(p)
    p.add_argument("--force", action="store_true", help="allow a downgrade / replace a same-version release")
    p.add_argument("--health-timeout", type=number(float, 1, 3600), default=180.0,
                   help="seconds to become healthy (default 180)")
    p.add_argument("--settle", type=number(float, 0, 3600), default=10.0,
                   help="seconds it must stay healthy (default 10)")
    p.add_argument("--keep", type=number(int, 1, 100), default=rel.DEFAULT_KEEP, help="releases to keep (default 3)")
    p.add_argument("--max-bytes", type=number(int, 1, 64 * 1024**3), default=DEFAULT_MAX_BYTES,
                   help="bundle size limit")
    p.set_defaults(func=cmd_update)

    p = subparsers.add_parser("rollback", help="go back to the previous release")
    _common(p)
    _restart_flags(p)
    p.add_argument("--to", type=cli_version, help="a specific installed version")
    p.set_defaults(func=cmd_rollback)

    p = subparsers.add_parser("recover", help="roll back a release an interrupted update left unverified "
                              "(run at boot by humus.service)")
    _common(p)
    p.add_argument("--restart", action="store_true", help="restart humus.service after rolling back")
    p.set_defaults(func=cmd_recover)

    p = subparsers.add_parser("releases", help="list installed releases")
    _common(p)
    p.add_argument("--verify", action="store_true", help="re-hash every file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_releases)

    p = subparsers.add_parser("status", help="what the box is doing now")
    _common(p, status_file=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("doctor", help="check devices, engine, config; say what to fix")
    _common(p)
    p.add_argument("--config", help="default: ROOT/etc/humus/humus.toml")
    p.add_argument("--live", action="store_true", help="open each device even while the show runs")
    p.add_argument("--detect", action="store_true", help="probe serial ports and cameras now and print "
                   "the config lines that pin what was found (stop the show first: it holds the ports)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = subparsers.add_parser("logs", help="the show's journal (humus + safe mode)")
    _common(p)
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-n", "--lines", type=number(int, 1, 10**7), default=200)
    p.add_argument("-b", "--boot", nargs="?", const=0, type=number(int, -10**6, 10**6), help="this boot (or -b -1: the one before)")
    p.add_argument("--since", help='e.g. "1 hour ago"')
    p.set_defaults(func=cmd_logs)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (python -m firmware.appliance.commands) until firmware.cli wires register()."""
    import argparse

    parser = argparse.ArgumentParser(prog="humus")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run_quietly_on_closed_pipe(args.func, args)


def run_quietly_on_closed_pipe(func, args) -> int:
    """`humus status --json | head`: a reader that stops early is not an error worth a traceback."""
    try:
        code = int(func(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)   # so the interpreter's own final flush is quiet too
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
