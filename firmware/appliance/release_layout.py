"""Where releases live under a root, and reading them: which version is current or previous, what
is installed, whether a release directory is intact, and which release this code runs from.
Only reads; installing, activating and pruning are in releases.py."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from firmware.digest import sha256_file
from .bundle_schema import BundleError, check_version, version_key

RELEASE_FILE = "release.json"
BASE = "opt/humus"             # below the root: the releases and what points at them


class ReleaseError(Exception):
    pass


def _below_root(path: str) -> property:
    """A place that is always `path` below the layout's root (a --root rehearsal moves them all)."""
    return property(lambda layout: layout.root / path, doc=f"<root>/{path}")


@dataclass(frozen=True)
class Layout:
    """Where the appliance keeps things under `root`: one line per place."""

    root: Path

    keys_dir = _below_root("etc/humus/keys")
    base = _below_root(BASE)
    releases = _below_root(f"{BASE}/releases")
    current = _below_root(f"{BASE}/current")        # symlink to the release that runs
    previous = _below_root(f"{BASE}/previous")      # symlink to the one `humus rollback` returns to
    state_file = _below_root(f"{BASE}/state.json")
    status_file = _below_root("run/humus/status.json")

    @classmethod
    def at(cls, root: str | os.PathLike = "/") -> "Layout":
        return cls(Path(root))

    def release_dir(self, version: str) -> Path:
        return self.releases / check_version(version)


# --- reading ---------------------------------------------------------------------------------

def _link_version(link: Path) -> str | None:
    try:
        target = os.readlink(link)
    except (FileNotFoundError, OSError):
        return None
    name = Path(target).name
    return name if (link.parent / target).is_dir() else None


def current_version(layout: Layout) -> str | None:
    return _link_version(layout.current)


def previous_version(layout: Layout) -> str | None:
    return _link_version(layout.previous)


def read_release(path: str | os.PathLike) -> dict:
    p = Path(path) / RELEASE_FILE
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReleaseError(f"{p}: unreadable release record ({exc})") from exc


def installed_versions(layout: Layout) -> list[str]:
    """Finished releases (directories with a release.json), oldest version first."""
    out = []
    if layout.releases.is_dir():
        for d in layout.releases.iterdir():
            try:
                check_version(d.name)
            except BundleError:
                continue
            if (d / RELEASE_FILE).is_file():
                out.append(d.name)
    return sorted(out, key=version_key)


def verify_release(path: str | os.PathLike, hashes: bool = True) -> list[str]:
    """Problems with a release directory; [] when every listed file is there and intact."""
    path = Path(path)
    try:
        rec = read_release(path)
    except ReleaseError as exc:
        return [str(exc)]
    problems = []
    for name, entry in sorted(rec.get("files", {}).items()):
        f = path / name
        try:
            st = f.stat()
        except OSError:
            problems.append(f"{f}: missing")
            continue
        if st.st_size != entry["size"]:
            problems.append(f"{f}: {st.st_size} bytes, expected {entry['size']}")
        elif hashes and sha256_file(f) != entry["sha256"]:
            problems.append(f"{f}: sha256 mismatch")
    if not rec.get("files"):
        problems.append(f"{path / RELEASE_FILE}: lists no files")
    return problems


def running_release(start: str | os.PathLike | None = None) -> str | None:
    """Version of the release this code runs from (for the status file), or None in a checkout."""
    p = Path(start or __file__).resolve()
    for parent in p.parents:
        rec = parent / RELEASE_FILE
        if rec.is_file() and parent.parent.name == "releases":
            try:
                return json.loads(rec.read_text())["version"]
            except (OSError, ValueError, KeyError):
                return None
    return None
