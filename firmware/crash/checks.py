"""Boot a disk a power cut left, the way the box boots, and say what is wrong with it.

The boot is the real one: `humus recover` (humus.service's ExecStartPre, through the CLI), then what
`humus run` reads before the show: the config, the current release's model, the engine from the
cache (SimTensorRT: the real cache code), the status file. Then the checks:

  release   a release is current, every file matches release.json's sha256, its bundle.json is the
            one its key signed, it proved healthy (state.json) and is not marked failed, no update is
            still pending, and no bytecode is torn (Python would crash importing it).
  durable   what the box had announced before the cut (a verdict, a rollback, a built engine) holds.
  model / config / engine / status   each loads; nothing half written is read.
  retry     (updates) the same update run again ends as it would have without the cut.

`boots_verified` is the first group alone: the goal is that every state boots a verified release.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import marshal
from dataclasses import dataclass, field
from pathlib import Path

from firmware.appliance import bundle as bundlemod
from firmware.appliance import bootstrap, commands
from firmware.appliance.bundle_keys import load_trusted_keys
from firmware.appliance.bundle_schema import MANIFEST_NAME, SIGNATURE_NAME, BundleError
from firmware.appliance.release_layout import Layout, ReleaseError, current_version, read_release, verify_release
from firmware.appliance.state import read_state
from firmware.appliance.statusfile import read_status

from .scenarios import Expect, on_root
from .simengine import SimTensorRT


@dataclass
class Verdict:
    boots_verified: bool
    problems: list[str] = field(default_factory=list)


def boot_and_check(root: Path, expect: Expect, retry=None) -> Verdict:
    code, said = _humus("recover", "--root", str(root))
    release = [] if code == 0 else [f"humus recover: {said}"]
    layout = Layout.at(root)
    cur = current_version(layout)
    if cur is not None or expect.release_required:
        release += release_problems(layout)
    release += launcher_problems(layout, expect.launchers)
    durable = [] if expect.version is None or cur == expect.version else \
        [f"durable: the box had announced {expect.version}, but {cur} is current after the boot"]
    try:
        rest = runtime_problems(root, expect) if cur is not None or expect.release_required else []
    except Exception as exc:          # the show's start must not crash on any disk a cut leaves
        rest = [f"humus run's start crashed: {type(exc).__name__}: {exc}"]
    # the tech's readers meet the same disk: an error message is fine, a traceback is not
    for argv in (("status", "--json"), ("releases", "--json", "--verify")):
        code, said = _humus(*argv, "--root", str(root))
        if code not in (0, 1):
            rest.append(f"humus {argv[0]}: {said}")
    if retry is not None:
        try:
            rest += retry(root)
        except Exception as exc:
            rest.append(f"retried update crashed: {type(exc).__name__}: {exc}")
    return Verdict(not release, release + durable + rest)


def _humus(*argv: str) -> tuple[int, str]:
    """A `humus` command in this process, its output kept; a crash is exit code -1."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            return commands.main(list(argv)), out.getvalue().strip()[-300:]
    except Exception as exc:
        return -1, f"crashed: {type(exc).__name__}: {exc}"


def release_problems(layout: Layout) -> list[str]:
    cur = current_version(layout)
    if cur is None:
        return ["release: no current release (opt/humus/current missing or dangling)"]
    d = layout.release_dir(cur)
    out = [f"release {cur}: {p}" for p in verify_release(d, hashes=True)[:3]]
    out += [f"release {cur}: {p}" for p in torn_bytecode(d / "app")]
    try:
        record = read_release(d)
        if record.get("version") != cur:
            out.append(f"release {cur}: release.json says version {record.get('version')!r}")
        if record["bundle"]["digest"] is None:
            return out          # install.sh's first release: root installed it, no signature, no health check
        manifest = (d / MANIFEST_NAME).read_bytes()
        bundlemod.check_signature(manifest, (d / SIGNATURE_NAME).read_bytes(),
                                  load_trusted_keys(layout.keys_dir), d)
        if hashlib.sha256(manifest).hexdigest() != record["bundle"]["digest"]:
            out.append(f"release {cur}: bundle.json is not the bundle release.json records")
    except (OSError, KeyError, TypeError, ReleaseError, BundleError) as exc:
        out.append(f"release {cur}: {exc}")
    try:
        if layout.state_file.exists():
            json.loads(layout.state_file.read_bytes())
    except (OSError, ValueError) as exc:
        out.append(f"state.json unreadable ({exc}): the pending note and verdicts are lost")
    state = read_state(layout)
    if cur in state["failed"]:
        out.append(f"release {cur} is current but marked failed ({state['failed'][cur]['reason'][:80]})")
    elif cur not in state["healthy"]:
        out.append(f"release {cur} is current but never proved healthy")
    if state.get("pending"):
        out.append(f"an update of {state['pending']['version']} is still pending after humus recover")
    return out


def launcher_problems(layout: Layout, required: bool) -> list[str]:
    """humus.service starts /opt/humus/venv/bin/humus: install.sh's launchers are whole or absent
    (and there, once the install said it was done)."""
    launchers = sorted((layout.base / "venv/bin").glob("humus*"))
    out = [] if len(launchers) == len(bootstrap.LAUNCHERS) or not required else \
        [f"launchers: {len(launchers)} of {len(bootstrap.LAUNCHERS)} after the install said it was done"]
    for launcher in launchers:
        text = launcher.read_bytes()
        try:
            compile(text, str(launcher), "exec")
            whole = text.rstrip().endswith(b"sys.exit(main())")
        except (SyntaxError, ValueError):
            whole = False
        if not whole:
            out.append(f"launcher {launcher.name}: half written ({len(text)} bytes): the service cannot start")
    for pth in (layout.base / "venv").rglob("humus-current.pth"):
        if pth.read_text(errors="replace") != bootstrap.BOX_APP + "\n":
            out.append(f"{pth.name}: half written: the launchers would not find the app")
    return out


def torn_bytecode(app: Path) -> list[str]:
    """Bytecode Python would load and crash on: a valid header (magic, flags) before a body that
    does not unmarshal. (A short or foreign header is ignored by the import: it recompiles.)"""
    out = []
    for pyc in sorted(app.rglob("*.pyc")):
        data = pyc.read_bytes()
        if len(data) < 16 or data[:4] != importlib.util.MAGIC_NUMBER or data[4:8] != b"\0\0\0\0":
            continue
        try:
            marshal.loads(data[16:])
        except (EOFError, ValueError, TypeError) as exc:
            out.append(f"{pyc.relative_to(app)}: torn bytecode ({exc}): the import would crash")
    return out


def runtime_problems(root: Path, expect: Expect) -> list[str]:
    """What `humus run` reads before the show: config, model, engine cache, status file."""
    from firmware.config.errors import ConfigError
    from firmware.config.load import load_config
    from firmware.generate.manifest import ModelError, load_model_dir
    from firmware.appliance.statusfile import StatusError
    try:
        config = load_config(root / "etc/humus/humus.toml", search=False)
    except ConfigError as exc:
        return [f"config: {exc}"]
    out = []
    try:
        model = load_model_dir(on_root(root, config.model.dir))
    except ModelError as exc:
        out.append(f"model: {exc}")
    else:
        engine = SimTensorRT(model.network(config.model.network), on_root(root, config.model.engine_cache))
        out += engine.problems(expect.engine_cached)
    try:
        read_status(on_root(root, config.status.path))
    except StatusError as exc:      # its documented error: but an atomic write never leaves one
        out.append(f"status file: {exc}")
    except Exception as exc:
        out.append(f"status file: read_status raised {type(exc).__name__}, not StatusError: {exc}")
    return out
