"""What the box does to its disk, recorded: each scenario prepares a box tree (`--root` layout), then
runs the real code with every write going through the recorder.

  install      install.sh's first release from a checkout (bootstrap: install_local, the launchers)
  update       `humus update` of a signed bundle through its health check, pruning the oldest release
  auto-rollback  an app-only bundle (models taken by hard link) whose release reports a fault: rolled back
  rollback     `humus rollback` to the previous release
  recover      the boot after an update was cut during its health wait: `humus recover` rolls back
  first-boot   a new model's first start: the engine and timing cache built and cached, the status file
  show         a normal show: the engine from the cache, the status file once a second

A scenario also says what the box had announced and when ("healthy", "rolled back", an engine that
was built): a power cut after such a moment must not undo it. And, for updates, what the next
attempt after a cut must achieve.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from firmware.appliance import bundle as bundlemod
from firmware.appliance import bootstrap, commands, fsops, updater
from firmware.appliance import releases as rel
from firmware.appliance.bundle_keys import generate_keypair
from firmware.appliance.bundle_schema import BundleError
from firmware.appliance.health import StatusHealth
from firmware.appliance.release_layout import Layout, ReleaseError, current_version, read_release
from firmware.appliance.statusfile import StatusWriter

from .disk import Tree, read_tree
from .record import Op, Recorder
from .simengine import SimTensorRT, write_model

CONFIG = """\
# The box's config as install.sh leaves it (the paths are the box's own; a check reads them under the root).
[camera]
type = "sim"
width = 96
height = 72
fps = 10.0

[display]
type = "headless"
width = 96
height = 64
fps = 10.0

[model]
dir = "/opt/humus/current/models/default"
engine = "tensorrt"
engine_cache = "/var/lib/humus/engines"

[status]
path = "/run/humus/status.json"
"""


@dataclass(frozen=True)
class Expect:
    """What a boot after a cut must find, once the box has announced it."""
    version: str | None = None       # the release that must be current
    engine_cached: bool = False      # the current model's engine comes from the cache, not a rebuild
    release_required: bool = True    # False: before a first install is done, no release is fine
    launchers: bool = False          # install.sh's launchers must be there (the install said it was done)


@dataclass
class Run:
    """A recorded scenario."""
    name: str
    about: str
    root: Path
    initial: Tree
    ops: list[Op]
    final: Tree
    milestones: list[tuple[int, Expect]] = field(default_factory=list)   # from this many ops on
    retry: Callable[[Path], list[str]] | None = None    # the next attempt, on a booted crash disk
    before: Expect = Expect()                            # until the first milestone

    def expect_at(self, k: int) -> Expect:
        """The expectation for a cut after the first `k` operations."""
        out = self.before
        for at, e in self.milestones:
            if k >= at:
                out = e
        return out


def on_root(root: Path, path) -> Path:
    """A path the box's config names (/opt/...), inside the tree `root`."""
    p = Path(path)
    return root / p.relative_to("/") if p.is_absolute() else root / p


class Bench:
    """The studio (a key, bundles) and fresh box trees in `workdir`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        private, public = generate_keypair("studio")
        self.key = self.workdir / "studio.key"
        self.key.write_text(private)
        self.pub = public
        self._bundles: dict[tuple, Path] = {}

    def bundle(self, version: str, app: bool = True, model: str | None = "decay-v1") -> Path:
        """A signed bundle: the app (a tiny `firmware` package saying its version) and/or a model."""
        key = (version, app, model)
        if key not in self._bundles:
            src = self.workdir / f"src-{version}-{int(app)}-{model}"
            if app:
                (src / "app/firmware").mkdir(parents=True)
                (src / "app/firmware/__init__.py").write_text(f'__version__ = "{version}"\n')
                (src / "app/firmware/show.py").write_text(
                    "".join(f"def step_{i}(x):\n    return x * {i} + {len(version)}\n\n" for i in range(40)))
            if model:
                write_model(src / "models/default", model)
            out = self.workdir / f"{version}-{int(app)}-{model}.bundle"
            bundlemod.build_bundle(src, self.key, version, out, created=1.7e9)
            self._bundles[key] = out
        return self._bundles[key]

    def new_root(self, name: str) -> Path:
        """A box tree as install.sh leaves it, before any release: keys, config, /var/lib/humus."""
        root = self.workdir / name
        (root / "etc/humus/keys").mkdir(parents=True)
        (root / "etc/humus/keys/studio.pub").write_text(self.pub)
        (root / "etc/humus/humus.toml").write_text(CONFIG)
        (root / "var/lib/humus").mkdir(parents=True)
        return root

    @staticmethod
    def service(root: Path, bad: tuple[str, ...] = ()) -> Callable[[], None]:
        """`systemctl restart humus` in process: the started release writes its status file
        (a fault for the versions in `bad`), as the show would."""
        layout = Layout.at(root)

        def restart() -> None:
            version = read_release(layout.current.resolve())["version"]
            w = StatusWriter(layout.status_file, min_interval=0.0)
            w.update(state="fault" if version in bad else "running", release=version, fps=12.0,
                     engine="tensorrt")
            if version in bad:
                w.fault("model produced NaN")
            w.flush(force=True)
        return restart

    def update(self, root: Path, bundle: Path, bad: tuple[str, ...] = (), keep: int = rel.DEFAULT_KEEP,
               say: Callable[[str], None] = lambda s: None) -> updater.UpdateReport:
        """`humus update --restart` with the real health check (no settle time)."""
        layout = Layout.at(root)
        health = StatusHealth(layout.status_file, timeout=5.0, settle=0.0, poll=0.01)
        return updater.update(layout, bundle, restart=self.service(root, bad), health=health, keep=keep,
                              say=say)

    def retry(self, bundle: Path, want: str, bad: tuple[str, ...] = ()) -> Callable[[Path], list[str]]:
        """After the cut and the boot, the tech runs the same update again: it must end as it would
        have without the cut (release `want` current), and leave no debris."""
        def attempt(root: Path) -> list[str]:
            layout = Layout.at(root)
            try:
                self.update(root, bundle, bad)
            except updater.UpdateFailed as exc:
                if not bad:
                    return [f"retried update: {exc}"]
            except (BundleError, ReleaseError, OSError) as exc:
                return [f"retried update refused: {exc}"]
            out = [] if current_version(layout) == want else \
                [f"retried update: current is {current_version(layout)}, not {want}"]
            debris = [p.name for p in layout.base.iterdir() if p.name.startswith((".staging-", ".trash-"))
                      or p.name.endswith(".tmp")]
            return out + ([f"retried update left debris: {', '.join(sorted(debris))}"] if debris else [])
        return attempt


def record(name: str, about: str, root: Path, act: Callable[[Callable[[Expect], None]], None],
           retry=None, before: Expect = Expect()) -> Run:
    """Run `act(announce)` with every write below `root` recorded."""
    initial = read_tree(root)
    recorder = Recorder(root)
    run = Run(name, about, root, initial, recorder.ops, {}, retry=retry, before=before)
    with fsops.use(recorder):
        act(lambda expect: run.milestones.append((len(recorder.ops), expect)))
    run.final = read_tree(root)
    return run


# --- the scenarios -------------------------------------------------------------------------------

def install(bench: Bench) -> Run:
    root = bench.new_root("install")
    src = bench.workdir / "checkout"                     # what install.sh runs from
    (src / "firmware").mkdir(parents=True)
    (src / "firmware/__init__.py").write_text('__version__ = "1.0.0"\n')
    (src / "firmware/show.py").write_text("def step(x):\n    return x\n")
    write_model(src / "models/default", "decay-v1")
    site = root / "opt/humus/venv/lib/python3/site-packages"       # bootstrap makes what is missing

    def act(announce):
        with contextlib.redirect_stdout(io.StringIO()):
            code = bootstrap.main(["--root", str(root), "--src", str(src), "--site-packages", str(site)])
        assert code == 0, "bootstrap failed"
        announce(Expect("1.0.0+local", launchers=True))
    return record("install", "install.sh's first release from a checkout, and the venv's launchers",
                  root, act, before=Expect(release_required=False))


def update(bench: Bench) -> Run:
    root = bench.new_root("update")
    bench.update(root, bench.bundle("0.9.0"))
    bench.update(root, bench.bundle("1.0.0"))
    new = bench.bundle("2.0.0", model="decay-v2")

    def act(announce):
        bench.update(root, new, keep=2, say=lambda s: s.startswith("healthy") and announce(Expect("2.0.0")))
    return record("update", "humus update 1.0.0 -> 2.0.0 (app + new model), health check, prune 0.9.0",
                  root, act, retry=bench.retry(new, "2.0.0"))


def auto_rollback(bench: Bench) -> Run:
    root = bench.new_root("auto-rollback")
    bench.update(root, bench.bundle("1.0.0"))
    new = bench.bundle("2.0.0", model=None)

    def act(announce):
        try:
            bench.update(root, new, bad=("2.0.0",))
        except updater.UpdateFailed:
            announce(Expect("1.0.0"))
            return
        raise AssertionError("the unhealthy release was kept")
    return record("auto-rollback", "humus update to an app-only 2.0.0 that reports a fault: rolled back to 1.0.0",
                  root, act, retry=bench.retry(new, "1.0.0", bad=("2.0.0",)))


def rollback(bench: Bench) -> Run:
    root = bench.new_root("rollback")
    bench.update(root, bench.bundle("1.0.0"))
    bench.update(root, bench.bundle("2.0.0", model="decay-v2"))
    layout = Layout.at(root)

    def act(announce):
        updater.rollback(layout, restart=bench.service(root),
                         say=lambda s: s.startswith("current ->") and announce(Expect("1.0.0")))
    return record("rollback", "humus rollback 2.0.0 -> 1.0.0", root, act)


class _Cut(Exception):
    """The updater's end where a power cut would have stopped it (nothing runs after it)."""


def recover(bench: Bench) -> Run:
    root = bench.new_root("recover")
    bench.update(root, bench.bundle("1.0.0"))
    layout = Layout.at(root)

    def cut(version, since):
        raise _Cut()
    with contextlib.suppress(_Cut):      # cut during the health wait: current 2.0.0, pending note
        updater.update(layout, bench.bundle("2.0.0"), restart=bench.service(root), health=cut)

    def act(announce):
        with contextlib.redirect_stdout(io.StringIO()):
            code = commands.main(["recover", "--root", str(root)])
        assert code == 0 and current_version(layout) == "1.0.0", "recover did not roll back"
        announce(Expect("1.0.0"))
    return record("recover", "the boot after a cut during the health wait: humus recover rolls 2.0.0 back",
                  root, act)


def _start_show(root: Path, seconds: float, announce) -> None:
    """`humus run` on the box's config: status 'starting', the engine (from the cache or built),
    then the show frame by frame with the status file written as the runtime writes it."""
    from firmware.box.conductor import Box
    from firmware.clock import FakeClock
    from firmware.config.load import load_config
    from firmware.generate.manifest import load_model_dir
    from firmware.status_publisher import StatusPublisher

    config = load_config(root / "etc/humus/humus.toml", search=False)
    clock = FakeClock(1000.0)
    writer = StatusWriter(on_root(root, config.status.path), clock=lambda: 1.7e9 + clock.now())
    writer.flush(force=True)
    model = load_model_dir(on_root(root, config.model.dir))
    engine = SimTensorRT(model.network("student"), on_root(root, config.model.engine_cache))
    announce(Expect(current_version(Layout.at(root)), engine_cached=True))
    footage = [np.full((64, 96, 3), 40 + 20 * i, np.uint8) for i in range(3)]
    box = Box(config, clock, threaded=False, engine=engine, model=model, footage_frames=footage)
    publish = StatusPublisher(writer)
    try:
        period = 1.0 / config.display.fps
        for _ in range(int(seconds * config.display.fps)):
            box.step()
            publish(box)
            clock.advance(period)
    finally:
        box.close()


def first_boot(bench: Bench) -> Run:
    root = bench.new_root("first-boot")
    bench.update(root, bench.bundle("1.0.0"))
    bench.update(root, bench.bundle("2.0.0", model="decay-v2"))
    return record("first-boot", "the first start of a new model: engine + timing cache built and cached, "
                  "status file", root, lambda announce: _start_show(root, 2.0, announce))


def show(bench: Bench) -> Run:
    root = bench.new_root("show")
    bench.update(root, bench.bundle("1.0.0"))
    _start_show(root, 0.1, lambda e: None)                 # an earlier boot cached the engine
    (root / "run/humus/status.json").unlink()              # /run is a tmpfs: gone at the power cut
    return record("show", "a normal show: engine from the cache, 6 s of frames, the status file each second",
                  root, lambda announce: _start_show(root, 6.0, announce))


SCENARIOS = {"install": install, "update": update, "auto-rollback": auto_rollback, "rollback": rollback, "recover": recover,
             "first-boot": first_boot, "show": show}

