"""Read and check a model directory (models/<name>/): manifest.json + ONNX files + reference pair.

The manifest says everything the box must not guess (see models/MANIFEST.md). A model that fails any
check is refused with an error naming the file and key, so a broken model never replaces a working one.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from firmware.generate.stages import UpsamplerInfo

FORMAT = "humus-model/1"
SAMPLERS = ("consistency", "heun", "euler")


class ModelError(Exception):
    """A model directory that cannot be used. The message names the file and key."""


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    path: Path
    sha256: str
    batch: int
    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]
    sampler: str
    steps: dict[int, tuple[float, ...]]     # step count -> sigmas, highest first (0 implied at the end)
    default_steps: int
    reference: dict | None

    def sigmas(self, steps: int | None = None) -> tuple[float, ...]:
        k = self.default_steps if steps is None else steps
        if k not in self.steps:
            raise ModelError(f"{self.path.parent / 'manifest.json'}: networks.{self.name}.steps has no "
                             f"entry for {k} steps (has {sorted(self.steps)})")
        return self.steps[k]


@dataclass(frozen=True)
class ModelInfo:
    dir: Path
    name: str
    resolution: tuple[int, int]     # H, W
    channels: int
    value_range: tuple[float, float]
    sigma_data: float
    sigma_max: float
    decay_default: float
    networks: dict[str, NetworkInfo]
    raw: dict = field(repr=False, compare=False)
    # The cascade's second stage (stages.py). A broken stage does not refuse the model: the box
    # shows the base image and reports the error; studio tools refuse it (stage_errors).
    upsampler: "UpsamplerInfo | None" = None
    stage_errors: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()  # conditioning.subject.names: index i = subject i ("" = none)

    @property
    def output_resolution(self) -> tuple[int, int]:
        """What one finished image measures: the upsampler's output, else the generator's."""
        if self.upsampler is not None:
            return tuple(self.upsampler.output_shape[2:])
        return self.resolution

    def network(self, name: str) -> NetworkInfo:
        if name not in self.networks:
            raise ModelError(f"{self.dir / 'manifest.json'}: no network '{name}' "
                             f"(has {sorted(self.networks)})")
        return self.networks[name]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _get(d: dict, key: str, where: str, kind=None):
    if not isinstance(d, dict) or key not in d:
        raise ModelError(f"{where}: missing key '{key}'")
    v = d[key]
    if kind is not None and not isinstance(v, kind):
        raise ModelError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, "
                         f"got {type(v).__name__}")
    return v


def _shape(v, where: str) -> tuple[int, ...]:
    if not isinstance(v, list) or not all(isinstance(i, int) and i > 0 for i in v):
        raise ModelError(f"{where}: expected a list of positive integers (a static shape), got {v!r}")
    return tuple(v)


def _network(name: str, d: dict, model_dir: Path, mf: str, check_hash: bool) -> NetworkInfo:
    where = f"{mf}: networks.{name}"
    path = model_dir / _get(d, "file", where, str)
    if not path.is_file():
        raise ModelError(f"{where}.file: {path} does not exist")
    digest = _get(d, "sha256", where, str)
    if check_hash:
        actual = sha256_file(path)
        if actual != digest:
            raise ModelError(f"{where}.sha256: {path.name} has sha256 {actual}, manifest says {digest} "
                             f"(file corrupt or replaced)")
    sampler = _get(d, "sampler", where, str)
    if sampler not in SAMPLERS:
        raise ModelError(f"{where}.sampler: unknown sampler '{sampler}' (known: {', '.join(SAMPLERS)})")
    steps_raw = _get(d, "steps", where, dict)
    steps: dict[int, tuple[float, ...]] = {}
    for k, sig in steps_raw.items():
        try:
            n = int(k)
        except ValueError:
            raise ModelError(f"{where}.steps: key '{k}' is not a step count") from None
        if (not isinstance(sig, list) or len(sig) != n or
                not all(isinstance(s, (int, float)) and s > 0 for s in sig) or
                any(a <= b for a, b in zip(sig, sig[1:]))):
            raise ModelError(f"{where}.steps.{k}: expected {n} positive, strictly decreasing sigmas, "
                             f"got {sig!r}")
        steps[n] = tuple(float(s) for s in sig)
    default = _get(d, "default_steps", where, int)
    if default not in steps:
        raise ModelError(f"{where}.default_steps: {default} has no entry in steps")
    inputs = {k: _shape(v, f"{where}.inputs.{k}") for k, v in _get(d, "inputs", where, dict).items()}
    outputs = {k: _shape(v, f"{where}.outputs.{k}") for k, v in _get(d, "outputs", where, dict).items()}
    for key in ("x", "sigma", "decay"):
        if key not in inputs:
            raise ModelError(f"{where}.inputs: missing input '{key}'")
    if "denoised" not in outputs:
        raise ModelError(f"{where}.outputs: missing output 'denoised'")
    return NetworkInfo(name=name, path=path, sha256=digest, batch=int(d.get("batch", inputs["x"][0])),
                       inputs=inputs, outputs=outputs, sampler=sampler, steps=steps,
                       default_steps=default, reference=d.get("reference"))


def load_model_dir(model_dir: str | Path, check_hash: bool = True) -> ModelInfo:
    """Parse and check a model directory. Raises ModelError naming the file and key."""
    model_dir = Path(model_dir)
    mf_path = model_dir / "manifest.json"
    mf = str(mf_path)
    try:
        raw = json.loads(mf_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{mf}: no manifest (is {model_dir} a model directory?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{mf}: not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{mf}: top level must be an object")
    fmt = _get(raw, "format", mf, str)
    if fmt != FORMAT:
        raise ModelError(f"{mf}: format '{fmt}' is not supported (this box reads '{FORMAT}')")
    res = _shape(_get(raw, "resolution", mf, list), f"{mf}: resolution")
    if len(res) != 2:
        raise ModelError(f"{mf}: resolution must be [height, width]")
    precond = _get(raw, "precond", mf, dict)
    nets = {name: _network(name, d, model_dir, mf, check_hash)
            for name, d in _get(raw, "networks", mf, dict).items()}
    if not nets:
        raise ModelError(f"{mf}: networks is empty")
    channels = int(_get(raw, "channels", mf, int))
    for n in nets.values():
        if n.inputs["x"][1:] != (channels, *res):
            raise ModelError(f"{mf}: networks.{n.name}.inputs.x {n.inputs['x']} does not match "
                             f"channels/resolution {(channels, *res)}")
    decay = raw.get("conditioning", {}).get("decay", {})
    upsampler, stage_errors = _stages(raw, model_dir, mf, channels, res)
    subjects = _subjects(raw.get("conditioning", {}), nets, mf)
    return ModelInfo(dir=model_dir, name=str(raw.get("name", model_dir.name)), resolution=res,
                     channels=channels, value_range=tuple(raw.get("value_range", (-1.0, 1.0))),
                     sigma_data=float(precond.get("sigma_data", 0.5)),
                     sigma_max=float(precond.get("sigma_max", 80.0)),
                     decay_default=float(decay.get("default", 0.5)), networks=nets, raw=raw,
                     upsampler=upsampler, stage_errors=stage_errors, subjects=subjects)


def _subjects(cond, nets: dict[str, NetworkInfo], mf: str) -> tuple[str, ...]:
    """Subject names in index order; every network takes a `subject` input exactly when there are some."""
    raw = cond.get("subject") if isinstance(cond, dict) else None
    names: tuple[str, ...] = ()
    if raw is not None:
        got = raw.get("names") if isinstance(raw, dict) else None
        if (not isinstance(got, list) or not 1 <= len(got) <= 256
                or not all(isinstance(n, str) and 0 < len(n) <= 64 for n in got) or len(set(got)) != len(got)):
            raise ModelError(f"{mf}: conditioning.subject.names: expected 1-256 distinct names of 1-64 characters")
        names = tuple(got)
    for n in nets.values():
        takes = "subject" in n.inputs
        if takes != bool(names):
            raise ModelError(f"{mf}: networks.{n.name}.inputs: " + ("has 'subject' but conditioning.subject "
                             "names none" if takes else "lacks 'subject' although conditioning.subject names subjects"))
        if takes and n.inputs["subject"] != (n.batch,):
            raise ModelError(f"{mf}: networks.{n.name}.inputs.subject: expected [{n.batch}]")
    return names


def _stages(raw: dict, model_dir: Path, mf: str, channels: int, res: tuple[int, int]):
    from firmware.generate.stages import StageError, parse_upsampler
    stages = raw.get("stages", {})
    if not isinstance(stages, dict):
        return None, (f"{mf}: stages: expected an object",)
    unknown = sorted(set(stages) - {"upsampler"})
    if unknown:
        return None, (f"{mf}: stages: unknown stage(s) {unknown} (this box knows 'upsampler')",)
    if "upsampler" not in stages:
        return None, ()
    try:
        return parse_upsampler(stages["upsampler"], model_dir, mf, channels, res), ()
    except StageError as exc:
        return None, (str(exc),)
