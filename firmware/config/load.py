"""Reading the config: one TOML file (--config, else /etc/humus/humus.toml, else the built-in
defaults), at most MAX_CONFIG_BYTES, validated once into a `Config`; relative paths in it are relative
to the file. `dump_config` prints the merged result (`humus check-config`)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from firmware.config.devices import CameraFile
from firmware.config.errors import ConfigError, describe
from firmware.config.schema import Config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 on older JetPacks
    import tomli as tomllib

DEFAULT_PATHS = (Path("/etc/humus/humus.toml"),)
MAX_CONFIG_BYTES = 1 << 20     # a config is a few KiB; `check-config /dev/zero` must not eat the memory


def parse_config(data: dict, source: str = "<built-in defaults>") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {describe(e, data, Config)}" for e in exc.errors()]
        raise ConfigError("invalid config\n  " + "\n  ".join(lines)) from None


def config_warnings(config: Config) -> list[str]:
    """What loads but is likely not meant: `humus check-config` and `humus doctor` say it, nothing
    refuses it (the exit status stays that of a good config)."""
    from firmware.render.camera_picture import bounded_camera
    camera = bounded_camera(config.camera, config.display)[1]
    return (config.osc.warnings() if config.osc is not None else []) + ([camera] if camera else [])


def find_config(explicit: str | Path | None) -> Path | None:
    """--config wins, then /etc/humus/humus.toml, then the built-in defaults (None)."""
    if explicit is not None:
        return Path(explicit)
    for path in DEFAULT_PATHS:
        if path.is_file():
            return path
    return None


def load_config(path: str | Path | None = None, *, search: bool = True) -> Config:
    """Load and validate once. `path=None` searches the default places (or uses defaults)."""
    found = find_config(path) if search else (Path(path) if path else None)
    if found is None:
        return Config()
    try:
        with open(found, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{found}: over {MAX_CONFIG_BYTES} bytes; not a humus config")
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{found}: no such file") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:   # RecursionError: [[[[... nested
        raise ConfigError(f"{found}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{found}: cannot read: {exc}") from None
    config = parse_config(data, str(found))
    return _resolve_relative_paths(config, found.parent)


def load_config_or_exit(path: str | Path | None) -> Config:
    """The commands' way in (run, bench, safe): a config that does not load ends the command with
    its message and exit status 2, never a traceback."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"humus: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _resolve_relative_paths(config: Config, base: Path) -> Config:
    """Relative paths in a config file are relative to that file, not to wherever the box started."""
    def fix(p):
        return p if p is None or p.is_absolute() else (base / p)
    show = config.show.model_copy(update={"footage": fix(config.show.footage)})
    model = config.model.model_copy(update={"dir": fix(config.model.dir)})
    update = {"show": show, "model": model}
    if isinstance(config.camera, CameraFile):
        update["camera"] = config.camera.model_copy(update={"path": fix(config.camera.path)})
    return config.model_copy(update=update)


def dump_config(config: Config) -> str:
    """The merged config as TOML-ish text (what `humus check-config` prints)."""
    out: list[str] = []
    data = config.model_dump(mode="json")
    for section, body in data.items():
        if body is None:   # an optional section left out ([schedule], [osc])
            out.append(f"# [{section}] not set\n")
            continue
        scalars = {k: v for k, v in body.items() if not isinstance(v, (dict, list)) or
                   (isinstance(v, list) and all(not isinstance(i, dict) for i in v))}
        out.append(f"[{section}]")
        for k, v in scalars.items():
            out.append(f"{k} = {_toml_value(v)}")
        for k, v in body.items():
            if k in scalars:
                continue
            if isinstance(v, list):
                for item in v:
                    out.append(f"\n[[{section}.{k}]]")
                    out.extend(f"{ik} = {_toml_value(iv)}" for ik, iv in item.items())
            elif isinstance(v, dict) and not all(isinstance(i, dict) for i in v.values()):
                out.append(f"\n[{section}.{k}]")   # one nested table, e.g. schedule.closed_look
                out.extend(f"{ik} = {_toml_value(iv)}" for ik, iv in v.items())
            elif isinstance(v, dict):
                for name, item in v.items():
                    out.append(f"\n[{section}.{k}.{name}]")
                    out.extend(f"{ik} = {_toml_value(iv)}" for ik, iv in item.items())
        out.append("")
    return "\n".join(out)


def _toml_value(v: Any) -> str:
    if v is None:
        return '""  # unset'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(i) for i in v) + "]"
    return repr(v)
