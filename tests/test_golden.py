"""Golden tests: what the outside relies on, frozen before issue 22 moves firmware/box.py and the
package layout, so the move can be shown to change none of it.

  golden/status_keys.json    every key of the status file `humus run` writes (3 s on simulated devices,
                             every optional section on), nested, with the JSON type of its value: not
                             the value, times, pids and counts change
  golden/config_schema.json  every config key as a dotted TOML path (a device's backends as
                             camera[type=v4l2].device), with its type, bounds and default, the backend a
                             section without `type` gets, and the rules every table follows
  golden/cli/*.txt           `--help` of every command and subcommand of humus, humus-release and
                             humus-export; exit status, stdout and stderr of cheap invocations

After a deliberate change, rewrite them and read the diff:

    HUMUS_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_golden.py && git diff tests/golden

Without HUMUS_UPDATE_GOLDEN=1 a mismatch fails with a unified diff naming the golden file.

The commands run through the functions pyproject.toml's [project.scripts] names, in this process
(`humus run` for the status file in one of its own); argparse's SystemExit is their exit status, and
log records of WARNING and above are part of stderr. Nothing here imports a module by where the
package keeps it (the config schema is found by name, defined_in_firmware), so the move needs no
change to this file: a failure after it is a change the outside would see. Output is made machine-independent
by explicit substitutions only: the temporary folder (<TMP>), the checkout (<REPO>), the package
version (<VERSION>), the age of a stale status file (<AGO>), and, per invocation in mask_volatile,
wall-clock times echoed from a fresh status file, a fresh key's id and doctor's engine row (which
onnxruntime is installed). Fault times print in UTC (TZ=UTC). Help text is compared with
argparse's layout taken out (argparse_neutral), so another Python's wrapping is not a change.
"""
from __future__ import annotations

import difflib
import importlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import time
import types
import typing
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 on older JetPacks
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("HUMUS_UPDATE_GOLDEN") == "1"


# ------------------------------------------------------------------------------------------ goldens
def check_golden(name: str, text: str, same=lambda s: s) -> None:
    """Compare `text` with golden/`name` (through `same` on both sides), or write it when updating."""
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    if not path.is_file():
        pytest.fail(f"{path} is missing: create it with HUMUS_UPDATE_GOLDEN=1", pytrace=False)
    want = path.read_text()
    if same(want) != same(text):
        diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True),
                                            f"tests/golden/{name}", "what the code does now"))
        pytest.fail(f"tests/golden/{name} no longer matches (HUMUS_UPDATE_GOLDEN=1 rewrites it if the "
                    f"change is meant):\n{diff}", pytrace=False)


def dump(data) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


# ------------------------------------------------------------------------------------- running a CLI
def script_target(script: str) -> tuple[str, str]:
    """(module, function) pyproject.toml's [project.scripts] names for `script`: what the console script runs."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts[script].split(":")
    return module, func


def entry_point(script: str):
    module, func = script_target(script)
    return getattr(importlib.import_module(module), func)


class _Lines(logging.Handler):
    """Log records as the user would see them on stderr, less the timestamp."""

    def __init__(self, stream):
        super().__init__(logging.WARNING)
        self.stream = stream

    def emit(self, record):
        self.stream.write(f"log: {record.levelname} {record.name}: {record.getMessage()}\n")


def invoke(script: str, argv: list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `script argv`, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handler, level = _Lines(err), root.level
    # A handler already on the root makes the CLI's logging.basicConfig a no-op, in or out of pytest.
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = entry_point(script)(argv)
            except SystemExit as exc:   # argparse: --help, --version, a bad argument
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if isinstance(exc.code, str):
                    err.write(exc.code + "\n")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return code, out.getvalue(), err.getvalue()


def normalise(text: str, tmp: Path) -> str:
    from firmware import __version__
    for real, token in ((str(tmp.resolve()), "<TMP>"), (str(tmp), "<TMP>"), (str(REPO), "<REPO>")):
        text = text.replace(real, token)
    text = re.sub(rf"\b{re.escape(__version__)}\b", "<VERSION>", text)
    return re.sub(r"last update \S+ ago", "last update <AGO> ago", text)


def transcript(script: str, argv: list[str], code: int, out: str, err: str) -> str:
    return (f"$ {' '.join([script, *argv])}\nexit {code}\n--- stdout\n{out}"
            + ("" if not out or out.endswith("\n") else "\n") + f"--- stderr\n{err}")


def argparse_neutral(text: str) -> str:
    """argparse's output with what differs between Pythons taken out: 3.13 writes `-n, --lines LINES`
    where older ones write `-n LINES, --lines LINES`, newer ones list an invalid choice's choices
    without quotes, and each version wraps columns its own way."""
    text = re.sub(r"(?<![\w-])(-\w) (\S+), (--[\w-]+) \2(?=[\s,]|$)", r"\1, \3 \2", text)
    text = re.sub(r"\(choose from [^)]*\)", lambda m: m.group(0).replace("'", ""), text)
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------- the world
@dataclass
class World:
    """A temporary folder holding everything the invocations are pointed at."""
    tmp: Path
    files: dict[str, Path] = field(default_factory=dict)

    def fill(self, argv: list[str]) -> list[str]:
        """{tmp} and {good}, {broken}, ... (the files below) in an argv, made real."""
        return [a.format(tmp=self.tmp, **self.files) for a in argv]


GOOD_TOML = """\
[show]
layout = "full"
[osc]
listen = "0.0.0.0:9000"
send = ["127.0.0.1:9001"]
[schedule]
timezone = "Europe/Berlin"
open = ["tue-sun 10:00-18:00"]
"""
# two mistakes: a value out of range and a misspelt key (the error suggests the right one)
BROKEN_TOML = '[dmx]\ntype = "artnet"\nuniverse = -1\n[show]\ntriger_m = 2.0\n'


def status_file(updated_at: float, dmx_ok: bool = True) -> dict:
    """A status file such as a box at a venue writes, every section filled, values fixed."""
    return {"state": "running", "started_at": updated_at - 3725.0, "updated_at": updated_at, "uptime_s": 3725.0,
            "show": "hold", "fps": 29.97, "engine": "onnxruntime (CPUExecutionProvider)",
            "devices": {"camera": {"ok": True, "detail": "frames"},
                        "dmx": {"ok": dmx_ok, "detail": "sending" if dmx_ok else "unplugged"}},
            "model": {"name": "decay", "network": "student"}, "release": "1.4.0",
            "faults": [{"t": 1_700_000_000.0, "text": "dmx: unplugged"}, "camera: stalled"], "pid": 4242,
            "schedule": {"open": True, "overridden": False, "by_policy": False,
                         "next_change": "2026-12-04T18:00:00+01:00"},
            "clock": {"synced": False, "detail": "no NTP", "source": "timesync[system]", "unsynced_s": 90.0,
                      "policy": "open"},
            "projector": {"wanted": True, "confirmed": None, "ok": True, "detail": "warming up"},
            "detected": {"presence": "ld2410 /dev/ttyUSB0", "warnings": ["2 cameras found; using the first"]},
            "osc": {"listen": "0.0.0.0:9000", "send": ["127.0.0.1:9001"], "received": 12, "bad": 1, "dropped": 0,
                    "refused": 3, "last_refused": "10.0.0.9:5000", "sent": 40, "send_errors": 0}}


@pytest.fixture
def world(tmp_path, tiny_model) -> World:
    """A fresh folder per invocation: one may write into the root (an update's staging) and the next
    must not see it."""
    w = World(tmp_path)

    def put(key, rel, content: str):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        w.files[key] = p

    (tmp_path / "root/etc/humus/keys").mkdir(parents=True)     # a humus root with nothing installed
    (tmp_path / "notaroot").mkdir()
    put("good", "good.toml", GOOD_TOML)
    put("broken", "broken.toml", BROKEN_TOML)
    put("runcfg", "run.toml", f'[model]\ndir = "{tiny_model}"\nengine = "onnxruntime"\n')
    put("garbage", "garbage.bundle", "not a bundle at all\n")
    put("stale", "stale/status.json", json.dumps(status_file(1_600_000_000.0, dmx_ok=False)))
    put("notjson", "notjson/status.json", "{half a status")
    put("badkey", "badkey/status.json", json.dumps({"state": 7, "updated_at": 1.0}))
    w.files["fresh"] = tmp_path / "fresh/status.json"      # written just before it is read: it must be fresh
    return w


def trust_a_key(world: World) -> None:
    """A studio key in the root, so that a bundle is read at all (without one every bundle is refused)."""
    code, _, err = invoke("humus-release", ["keygen", str(world.tmp / "root/etc/humus/keys/studio")])
    assert code == 0, err


# ------------------------------------------------------------------------------------------ --help
def subcommands(script: str) -> list[str]:
    """The subcommands the script's parser has, asked of argparse itself (so a new one needs a golden)."""
    import argparse
    parser = sys.modules[entry_point(script).__module__].build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(subs[0].choices) if subs else []


HELP_OF = {"humus": ["bench", "calibrate", "check-config", "doctor", "logs", "recover", "releases", "rollback",
                     "run", "safe", "soak", "status", "update"],
           "humus-release": ["build", "keygen", "verify"],
           "humus-export": ["all", "decay-dist", "demo-clip", "detail-gain", "distill", "engine", "evaluate", "footage", "grids",
                            "onnx", "posthoc", "probe", "renoise", "sample", "state", "train", "tune", "upsampler", "upsampler-judge",
                            "warm-start"]}
HELP_CASES = [(script, sub) for script, subs in HELP_OF.items() for sub in [None, *subs]]


@pytest.mark.parametrize("script", sorted(HELP_OF))
def test_every_subcommand_has_a_help_golden(script):
    assert subcommands(script) == HELP_OF[script], "a subcommand came or went: update HELP_OF and the goldens"


@pytest.fixture
def columns(monkeypatch):
    """argparse wraps to the terminal; a fixed width keeps the stored help readable."""
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("PYTHON_COLORS", "0")  # Python 3.14 colours help on a terminal (or when forced)


@pytest.mark.parametrize("script,sub", HELP_CASES, ids=[f"{s}-{c or 'main'}" for s, c in HELP_CASES])
def test_help(script, sub, columns, tmp_path):
    argv = [sub, "--help"] if sub else ["--help"]
    code, out, err = invoke(script, argv)
    text = transcript(script, argv, code, normalise(out, tmp_path), normalise(err, tmp_path))
    check_golden(f"cli/help-{script}-{sub or 'main'}.txt", text, same=argparse_neutral)


# ------------------------------------------------------------------------------------- invocations
@dataclass(frozen=True)
class Case:
    name: str
    script: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    fresh_status: bool = False      # write a fresh status file first (its age must stay under 5 s)
    trusted_key: bool = False       # a studio key in the root first


CASES = [
    # the top level
    Case("no-command", "humus", ()),
    Case("version", "humus", ("--version",)),
    Case("unknown-command", "humus", ("frobnicate",)),
    # run: refusals, and a short offline rehearsal (stepped clock: the figures are exact)
    Case("run-bad-duration", "humus", ("run", "--duration", "-1")),
    Case("run-broken-config", "humus", ("run", "--sim", "--config", "{broken}")),
    Case("run-start-without-sim", "humus", ("run", "--config", "{good}", "--start", "2026-12-04T17:59")),
    Case("run-sim", "humus", ("run", "--sim", "--headless", "--config", "{runcfg}", "--duration", "1",
                              "--width", "64", "--height", "64", "--fps", "10")),
    # check-config
    Case("check-config-good", "humus", ("check-config", "{good}")),
    Case("check-config-broken", "humus", ("check-config", "{broken}")),
    Case("check-config-missing", "humus", ("check-config", "{tmp}/missing.toml")),
    # bench, safe, calibrate, soak: only their refusals are cheap (and do not touch signal handlers)
    Case("bench-bad-seconds", "humus", ("bench", "--seconds", "0")),
    Case("safe-broken-config", "humus", ("safe", "--config", "{broken}")),
    Case("calibrate-broken-config", "humus", ("calibrate", "--config", "{broken}")),
    Case("calibrate-bad-rate", "humus", ("calibrate", "--rate", "fast")),
    Case("soak-bad-cycles", "humus", ("soak", "--cycles", "many")),
    # update / rollback / recover / releases on an empty humus root
    Case("update-missing-bundle", "humus", ("update", "{tmp}/missing.bundle", "--root", "{tmp}/root")),
    Case("update-no-trusted-key", "humus", ("update", "{garbage}", "--root", "{tmp}/root")),
    Case("update-garbage-bundle", "humus", ("update", "{garbage}", "--root", "{tmp}/root"), trusted_key=True),
    Case("update-not-a-humus-root", "humus", ("update", "{garbage}", "--root", "{tmp}/notaroot")),
    Case("update-root-missing", "humus", ("update", "{garbage}", "--root", "{tmp}/nowhere")),
    Case("update-bad-keep", "humus", ("update", "{garbage}", "--root", "{tmp}/root", "--keep", "0")),
    Case("rollback-empty", "humus", ("rollback", "--root", "{tmp}/root")),
    Case("rollback-bad-version", "humus", ("rollback", "--root", "{tmp}/root", "--to", "../1.0")),
    Case("recover-empty", "humus", ("recover", "--root", "{tmp}/root")),
    Case("releases-empty", "humus", ("releases", "--root", "{tmp}/root")),
    Case("releases-empty-json", "humus", ("releases", "--root", "{tmp}/root", "--json")),
    # status
    Case("status-no-file", "humus", ("status", "--root", "{tmp}/root")),
    Case("status-fresh", "humus", ("status", "--root", "{tmp}/root", "--status-file", "{fresh}"),
         fresh_status=True),
    Case("status-fresh-json", "humus", ("status", "--root", "{tmp}/root", "--status-file", "{fresh}", "--json"),
         fresh_status=True),
    Case("status-stale", "humus", ("status", "--root", "{tmp}/root", "--status-file", "{stale}")),
    Case("status-not-json", "humus", ("status", "--root", "{tmp}/root", "--status-file", "{notjson}")),
    Case("status-bad-key", "humus", ("status", "--root", "{tmp}/root", "--status-file", "{badkey}")),
    # doctor and logs on the empty root (no systemd, journal or devices are asked in a --root rehearsal)
    Case("doctor-empty-json", "humus", ("doctor", "--root", "{tmp}/root", "--json")),
    Case("doctor-broken-config", "humus", ("doctor", "--root", "{tmp}/root", "--config", "{broken}")),
    Case("logs-no-journalctl", "humus", ("logs", "--root", "{tmp}/root", "-n", "5", "-b", "-1"),
         env=(("HUMUS_JOURNALCTL", "humus-golden-no-journalctl"),)),
    Case("logs-bad-lines", "humus", ("logs", "--root", "{tmp}/root", "-n", "0")),
    # humus-release and humus-export
    Case("release-no-command", "humus-release", ()),
    Case("release-keygen", "humus-release", ("keygen", "{tmp}/studio")),
    Case("release-keygen-exists", "humus-release", ("keygen", "{tmp}/root/etc/humus/keys/studio"), trusted_key=True),
    Case("release-verify-garbage", "humus-release", ("verify", "{garbage}", "--keys", "{tmp}/root/etc/humus/keys"),
         trusted_key=True),
    Case("release-build-bad-version", "humus-release", ("build", "{tmp}", "--key", "k.key", "--version", "v1",
                                                        "-o", "{tmp}/x.bundle")),
    Case("export-unknown-command", "humus-export", ("frobnicate",)),
]


@pytest.fixture
def utc(monkeypatch):
    """`humus status` prints fault times in local time: UTC here, whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_invocation(case, world, columns, utc, monkeypatch):
    for key, value in case.env:
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(world.tmp)              # `run --sim` writes its traces into the working folder
    if case.trusted_key:
        trust_a_key(world)
    if case.fresh_status:
        world.files["fresh"].parent.mkdir(exist_ok=True)
        world.files["fresh"].write_text(json.dumps(status_file(time.time())))
    argv = world.fill(list(case.argv))
    code, out, err = invoke(case.script, argv)
    text = transcript(case.script, argv, code, out, err)
    text = mask_volatile(case.name, normalise(text, world.tmp))
    # argparse's own output (a usage line, the help) is compared as the help goldens are; the rest exactly
    check_golden(f"cli/{case.name}.txt", text, same=argparse_neutral if "usage: " in text else lambda s: s)


def mask_volatile(name: str, text: str) -> str:
    """What an invocation prints that is this machine's, not the code's: replaced where it is printed."""
    if name.startswith("status-fresh-json"):   # the file's own wall-clock times, echoed back
        text = re.sub(r'"(updated_at|started_at)": [0-9.e+]+', r'"\1": <NOW>', text)
    if name.startswith("doctor"):              # the engine row: which onnxruntime (CPU or GPU) is installed
        text = re.sub(r"(?m)^\[....\] engine .*\n(       fix: .*\n)?", "[<ENGINE>] engine <this machine's>\n", text)
        text = re.sub(r'\{\s*"name": "engine",[^}]*\}', '"<ENGINE: this machine\'s>"', text)
    if name == "run-sim":                      # onnxruntime's provider: CPU here, CUDA on a studio machine
        text = re.sub(r"on onnxruntime \([^)]*\)", "on onnxruntime (<PROVIDER>)", text)
    if name.startswith("release-keygen"):      # a fresh key has a fresh id
        text = re.sub(r"key id \S+", "key id <KEYID>", text)
    return text


def test_no_stale_cli_goldens():
    """A golden no case writes any more would never be checked again."""
    want = {f"help-{s}-{c or 'main'}.txt" for s, c in HELP_CASES} | {f"{c.name}.txt" for c in CASES}
    have = {p.name for p in (GOLDEN / "cli").glob("*.txt")}
    if UPDATE:
        for name in have - want:
            (GOLDEN / "cli" / name).unlink()
        return
    assert have == want, f"unexpected {sorted(have - want)}, missing {sorted(want - have)}"


# ------------------------------------------------------------------------------------- status file
def json_shape(value):
    """Keys kept, values replaced by their JSON type; a list by the shapes of its items."""
    if isinstance(value, dict):
        return {k: json_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        shapes = []
        for item in value:
            if json_shape(item) not in shapes:
                shapes.append(json_shape(item))
        return ["list", *shapes]
    # bool before int: True is an int to Python, not to JSON
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (type(None), "null")):
        if isinstance(value, kind):
            return name
    raise TypeError(f"not JSON: {value!r}")


# Every optional part of the status file switched on: the venue sections, auto-detection (nothing to
# find in an empty /dev), and a subject the model lacks, which the box reports as a fault. Every
# device simulated, so `humus run` without --sim (the field's way, which writes the status file)
# runs anywhere.
STATUS_TOML = """\
[display]
type = "headless"
width = 64
height = 64
fps = 20.0
[camera]
type = "sim"
width = 64
height = 48
[presence]
type = "auto"
[devices]
serial_ports = ["{tmp}/dev/tty*"]
cameras = ["{tmp}/dev/video*"]
sysfs = "{tmp}/sys"
[show]
subjects = {{ moss = 1.0 }}
[model]
dir = "{model}"
engine = "onnxruntime"
engine_cache = "{tmp}/engines"
[schedule]
timezone = "Europe/Berlin"
open = ["mon-sun 00:00-23:59"]
[osc]
listen = "127.0.0.1:0"
send = ["127.0.0.1:9"]
[projector]
type = "sim"
retry_s = [0.01, 0.02]
[timesync]
type = "sim"
[status]
path = "{tmp}/run/humus/status.json"
"""


def run_console_script(script: str, argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """`script argv` in a process of its own, as the console script runs it: for a command that takes
    over the process (signal handlers, the interpreter's switch interval) and runs for real seconds."""
    module, func = script_target(script)
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}   # not systemd's
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    code = f"import sys; from {module} import {func}; sys.exit({func}(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def test_status_file_keys(tiny_model, tmp_path):
    """The file `humus run` writes, read back by `humus status --json` (which checks it strictly).
    Only keys and types are frozen: 3 s on the real clock give different values on every run."""
    cfg = tmp_path / "humus.toml"
    cfg.write_text(STATUS_TOML.format(tmp=tmp_path, model=tiny_model))
    (tmp_path / "root").mkdir()
    r = run_console_script("humus", ["run", "--config", str(cfg), "--duration", "3"], tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    code, out, err = invoke("humus", ["status", "--root", str(tmp_path / "root"), "--json",
                                      "--status-file", str(tmp_path / "run/humus/status.json")])
    assert code in (0, 1) and not err, err                # 1: unhealthy once the show has stopped
    shape = json_shape(json.loads(out)["status"])
    # The projector answers on a thread of its own: on a starved machine the last write (one a second)
    # may come before it has, and its answer is null until then.
    for key in ("wanted", "confirmed"):
        if shape["projector"][key] in ("bool", "null"):
            shape["projector"][key] = "bool | null"
    check_golden("status_keys.json", dump(shape))


# ------------------------------------------------------------------------------------------ config
NAMES = {int: "int", float: "float", str: "str", bool: "bool", type(None): "null", Path: "path"}


def bounds(metadata) -> list[str]:
    """ge=0, max_length=64, strict=False ... from pydantic's and annotated_types' markers; the tag and
    discriminator of a device section show in its path instead, a validator only as `validated`."""
    import dataclasses

    from pydantic import Discriminator, Tag
    from pydantic.fields import FieldInfo
    out = []
    for m in metadata:
        if isinstance(m, FieldInfo):
            out += bounds(m.metadata)
        elif isinstance(m, (Tag, Discriminator)):
            continue
        elif dataclasses.is_dataclass(m):
            items = [f"{f.name}={getattr(m, f.name)!r}" for f in dataclasses.fields(m)
                     if not callable(getattr(m, f.name))]
            out += items or ["validated"]
        else:
            out.append(type(m).__name__)
    return out


def describe(tp, path: str, nested: list) -> str:
    """`tp` as text; each table (model) inside it is queued in `nested` with its TOML path."""
    from pydantic import BaseModel
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        text = describe(args[0], path, nested)
        extra = bounds(tp.__metadata__)
        return f"{text} ({', '.join(extra)})" if extra else text
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        nested.append((path, tp))
        return "table"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(describe(a, path + tag_of(a), nested) + tag_of(a) for a in args)
    if origin is typing.Literal:
        return "literal[" + ", ".join(json.dumps(a) for a in args) + "]"
    if origin is list:
        return f"list[{describe(args[0], path + '[]', nested)}]"
    if origin is dict:
        return f"dict[{describe(args[0], path, [])}, {describe(args[1], path + '.<key>', nested)}]"
    if origin is tuple:
        return "tuple[" + ", ".join("..." if a is Ellipsis else describe(a, path, nested) for a in args) + "]"
    return NAMES.get(tp, repr(tp))


def tag_of(member) -> str:
    """A device section's backend by its `type`, as in camera[type=v4l2].device; '' for other tables."""
    model = typing.get_args(member)[0] if typing.get_origin(member) is typing.Annotated else member
    fields = getattr(model, "model_fields", {})
    if "type" in fields and typing.get_origin(fields["type"].annotation) is typing.Literal:
        return f"[type={typing.get_args(fields['type'].annotation)[0]}]"
    return ""


def config_keys(model, prefix: str = "") -> dict:
    """Every field of `model` and the tables inside it, by dotted TOML path."""
    from pydantic_core import to_jsonable_python
    keys, nested = {}, []
    for name, f in model.model_fields.items():
        path = prefix + name
        text = describe(f.annotation, path, nested)
        extra = bounds(f.metadata)        # the field's own: they bound the whole of `text`
        entry = {"type": f"{text} where {', '.join(extra)}" if extra else text}
        if f.is_required():
            entry["required"] = True
        else:
            entry["default"] = to_jsonable_python(f.get_default(call_default_factory=True))
        keys[path] = entry
    for path, sub in nested:
        keys.update(config_keys(sub, path + "."))
    return keys


def table_rules(model, seen=None) -> dict:
    """What every table does with keys it lacks, coercion, nan and long strings (pydantic's model_config)."""
    from pydantic import BaseModel
    seen = {} if seen is None else seen
    rules = {k: model.model_config.get(k) for k in ("extra", "strict", "allow_inf_nan", "str_max_length", "frozen")}
    seen.setdefault(json.dumps(rules, sort_keys=True), []).append(model.__name__)
    for f in model.model_fields.values():
        for tp in flatten(f.annotation):
            if isinstance(tp, type) and issubclass(tp, BaseModel) and tp.__name__ not in sum(seen.values(), []):
                table_rules(tp, seen)
    return seen


def flatten(tp):
    """Every type inside an annotation (Annotated, unions, containers), `tp` included."""
    yield tp
    for a in typing.get_args(tp):
        if not isinstance(a, (str, int, float, bool)) and a is not Ellipsis:
            yield from flatten(a)


def defined_in_firmware(name: str):
    """The one object called `name` that a loaded firmware module defines, wherever the package
    layout puts it (issue 22 moves modules; what they define must not change)."""
    found = {getattr(m, name) for mod, m in list(sys.modules.items())
             if mod.split(".")[0] == "firmware" and getattr(getattr(m, name, None), "__module__", None) == mod}
    assert len(found) == 1, f"{name}: {len(found)} definitions among the loaded firmware modules"
    return found.pop()


def test_config_keys(tmp_path):
    """The schema `humus check-config` validates against."""
    (tmp_path / "empty.toml").write_text("")
    assert invoke("humus", ["check-config", str(tmp_path / "empty.toml")])[0] == 0   # loads the config modules
    Config = defined_in_firmware("Config")
    keys = config_keys(Config)
    # which backend a device section without a `type` key gets
    for name, f in Config.model_fields.items():
        if "table[type=" in keys[name]["type"]:
            keys[f"{name}.type (when left out)"] = Config.model_validate({name: {}}).model_dump(mode="json")[name]["type"]
    rules = table_rules(Config)
    # one set of rules for every table, as now; if a table ever differs, the golden names the rule sets
    keys["(every table)"] = json.loads(next(iter(rules))) if len(rules) == 1 else {r: sorted(m) for r, m in rules.items()}
    check_golden("config_schema.json", dump(keys).replace(str(REPO), "<REPO>"))
