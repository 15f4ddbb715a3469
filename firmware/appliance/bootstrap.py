"""install.sh's Python half: the first release and the venv entry points (stdlib only).

  python3 -m firmware.appliance.bootstrap --root DIR --src CHECKOUT [--dry-run]

- If `opt/humus/current` is not a valid release, install the checkout's app (and its
  models/, if any) as release <version>+local and activate it. An existing valid release
  is kept: after the first install, code reaches the box only through signed bundles.
- Write the venv's `humus` / `humus-release` launchers and a .pth file that puts
  /opt/humus/current/app on sys.path, so swapping `current` swaps the code on restart.
  These point at on-box paths (/opt/humus/...) even under --root: the tree is for the box.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from . import bundle as bundlemod
from . import fsops as fs
from . import releases as rel
from .atomic import write_atomic
from .bundle_schema import BundleError, check_version
from .release_layout import RELEASE_FILE, Layout, ReleaseError, current_version, verify_release

BOX_VENV = "/opt/humus/venv"
BOX_APP = "/opt/humus/current/app"
LAUNCHERS = {"humus": "firmware.cli", "humus-release": "firmware.appliance.release_cli"}


def checkout_version(src: Path) -> str:
    text = (src / "firmware/__init__.py").read_text()
    m = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.M)
    if not m:
        raise SystemExit(f"bootstrap: no __version__ in {src / 'firmware/__init__.py'}")
    return check_version(m.group(1).split("+")[0] + "+local")


def ensure_release(layout: Layout, src: Path, dry_run: bool, say) -> None:
    cur = current_version(layout)
    if cur is not None and not verify_release(layout.release_dir(cur), hashes=False):
        say(f"release {cur} is current: kept (update it with `humus update BUNDLE`)")
        return
    version = checkout_version(src)
    kind, files = bundlemod.collect_sources(src)
    if dry_run:
        say(f"would install {src} as release {version} ({kind}, {len(files)} files) and make it current")
        return
    with rel.locked(layout):
        rel.sweep(layout)
        if not (layout.release_dir(version) / RELEASE_FILE).is_file():
            rel.install_local(layout, files, version, kind)
        rel.activate(layout, version)
    say(f"installed {src} as release {version} ({kind}, {len(files)} files); current -> {version}")


def ensure_file(path: Path, content: str, mode: int, dry_run: bool, say) -> None:
    if path.is_file() and path.read_text() == content and (path.stat().st_mode & 0o777) == mode:
        say(f"{path}: unchanged")
        return
    if dry_run:
        say(f"would write {path}")
        return
    fs.makedirs(path.parent, durable=True)     # the launcher, synced, must not vanish with its folder
    write_atomic(path, content, mode=mode)
    say(f"wrote {path}")


def ensure_entry_points(venv: Path, site_packages: Path, dry_run: bool, say) -> None:
    for name, module in LAUNCHERS.items():
        script = (f"#!{BOX_VENV}/bin/python\n"
                  f"# humus launcher written by install.sh: runs the code of the current release.\n"
                  f"import sys\nfrom {module} import main\nsys.exit(main())\n")
        ensure_file(venv / "bin" / name, script, 0o755, dry_run, say)
    ensure_file(site_packages / "humus-current.pth", BOX_APP + "\n", 0o644, dry_run, say)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bootstrap")
    p.add_argument("--root", default="/")
    p.add_argument("--src", required=True)
    p.add_argument("--site-packages", help="the venv's site-packages (as seen from here)")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    layout = Layout.at(args.root)
    say = lambda s: print(f"    {s}")  # noqa: E731  (indented under install.sh's step line)
    try:
        ensure_release(layout, Path(args.src), args.dry_run, say)
    except (BundleError, ReleaseError) as exc:
        print(f"bootstrap: {exc}", file=sys.stderr)
        return 1
    if args.site_packages:
        ensure_entry_points(layout.base / "venv", Path(args.site_packages), args.dry_run, say)
    return 0


if __name__ == "__main__":
    sys.exit(main())
