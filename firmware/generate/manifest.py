"""Read and check a model directory (models/<name>/): manifest.json + ONNX files + reference pair.

The manifest says everything the box must not guess (see models/MANIFEST.md). A model that fails any
check is refused with an error naming the file and key, so a broken model never replaces a working one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from firmware.digest import resolve_inside, sha256_file

if TYPE_CHECKING:
    from firmware.generate.stages import UpsamplerInfo

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
    fresh: float = 1.0       # consistency re-noising's share of fresh noise (sampler.sample)

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
    subjects: tuple[str, ...] = ()  # conditioning.subject.names, in index order
    # subject index -> the decay values it was trained on (decay_distribution), sorted: conditions.snap_decay
    decay_support: dict[int, tuple[float, ...]] = field(default_factory=dict)

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


def load_model_dir(model_dir: str | Path, check_hash: bool = True) -> ModelInfo:
    """Parse and check a model directory. Raises ModelError naming the file and key."""
    from .manifest_schema import read_manifest
    model_dir = Path(model_dir)
    mf_path = model_dir / "manifest.json"
    m = read_manifest(mf_path, ModelError)
    mf = str(mf_path)
    nets = {name: _network(name, n, model_dir, mf, check_hash) for name, n in m.networks.items()}
    for n in nets.values():
        if n.inputs["x"][1:] != (m.channels, *m.resolution):
            raise ModelError(f"{mf}: networks.{n.name}.inputs.x {list(n.inputs['x'])} does not match "
                             f"channels/resolution {[m.channels, *m.resolution]}")
    decay = m.conditioning.decay
    subjects = tuple(m.conditioning.subject.names) if m.conditioning.subject is not None else ()
    for n in nets.values():
        if ("subject" in n.inputs) != bool(subjects):
            raise ModelError(f"{mf}: networks.{n.name}.inputs: " + (
                "has 'subject' but conditioning.subject names none" if subjects == () else
                "lacks 'subject' although conditioning.subject names subjects"))
    raw = m.model_dump()
    upsampler, stage_errors = _stages(raw, model_dir, mf, m.channels, tuple(m.resolution))
    return ModelInfo(dir=model_dir, name=m.name or model_dir.name, resolution=tuple(m.resolution),
                     channels=m.channels, value_range=tuple(m.value_range),
                     sigma_data=m.precond.sigma_data, sigma_max=m.precond.sigma_max,
                     decay_default=decay.default, networks=nets, raw=raw,
                     upsampler=upsampler, stage_errors=stage_errors, subjects=subjects,
                     decay_support=_decay_support(m.decay_distribution, subjects))


def _decay_support(dist, subjects: tuple[str, ...]) -> dict[int, tuple[float, ...]]:
    """Each named subject's training decay values, from the manifest's quantiles (none: no snapping)."""
    if dist is None:
        return {}
    return {i: tuple(sorted(set(src.decay_quantiles))) for i, s in enumerate(subjects)
            if (src := dist.by_source.get(s)) is not None and src.decay_quantiles}


def _stages(raw: dict, model_dir: Path, mf: str, channels: int, res: tuple[int, int]):
    """The optional cascade stage, checked by stages.py; its problems are reported, not raised."""
    from firmware.generate.stages import StageError, parse_upsampler
    stages = raw.get("stages")
    if stages is None:
        return None, ()
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


def inside(model_dir: Path, name: str, where: str) -> Path:
    """`name` from the manifest as a regular file inside `model_dir` (symlinks resolved), or ModelError:
    a manifest must not make the box load `../other/student.onnx` or `/etc/...`."""
    path = resolve_inside(model_dir, name)
    if path is None:
        raise ModelError(f"{where}: {name!r} is outside the model directory {model_dir}")
    if not path.is_file():
        raise ModelError(f"{where}: {model_dir / name} does not exist (or is not a file)")
    return path


def _network(name: str, n, model_dir: Path, mf: str, check_hash: bool) -> NetworkInfo:
    where = f"{mf}: networks.{name}"
    path = inside(model_dir, n.file, f"{where}.file")
    if check_hash:
        actual = sha256_file(path)
        if actual != n.sha256:
            raise ModelError(f"{where}.sha256: {path.name} has sha256 {actual}, manifest says {n.sha256} "
                             f"(file corrupt or replaced)")
    reference = None
    if n.reference is not None:
        ref_path = model_dir / n.reference.output
        if ref_path.exists() or ref_path.is_symlink():
            inside(model_dir, n.reference.output, f"{where}.reference.output")
        reference = n.reference.model_dump()
    return NetworkInfo(name=name, path=model_dir / n.file, sha256=n.sha256, batch=n.inputs["x"][0],
                       inputs={k: tuple(v) for k, v in n.inputs.items()},
                       outputs={k: tuple(v) for k, v in n.outputs.items()}, sampler=n.sampler,
                       steps={int(k): tuple(v) for k, v in n.steps.items()},
                       default_steps=n.default_steps, reference=reference, fresh=n.fresh_noise)
