"""The schema of manifest.json (models/MANIFEST.md), checked once, strictly, at the edge.

No coercion (`"batch": "1"` is an error), finite numbers only, every size bounded so a manifest can
not make the box allocate more than MAX_ELEMENTS floats per network input, and the shapes must be the
contract's own: x [B, 3, H, W], sigma [B], decay [B], denoised the same shape as x. Informational
keys the contract lists (training, metrics, tools, ...) are accepted unchecked; any other key is
refused, naming it, so a typo (`sigma_dta`) is an error rather than a silent default.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FORMAT = "humus-model/1"
MAX_MANIFEST_BYTES = 4 << 20        # the shipped one is ~10 KiB; metrics may grow it, not to megabytes
MAX_ELEMENTS = 1 << 24              # floats in one network input (64 MiB): far above any model a box runs
MAX_STEPS = 1000
# The conditions a network may take, one float per image each (the box feeds them by name from
# generate.conditions.Conditions); a new condition is one more name here.
CONDITION_INPUTS = ("decay", "subject")


class _Strict(BaseModel):
    # python-re: the patterns are Python's, anchored with \A...\Z (Rust's regex spells \Z differently)
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True,
                              str_max_length=4096, regex_engine="python-re")


Dim = Annotated[int, Field(ge=1, le=4096)]
Shape = Annotated[list[Dim], Field(min_length=1, max_length=8)]
Sigma = Annotated[float, Field(gt=0, le=1e4)]
FileName = Annotated[str, Field(min_length=1, max_length=255)]
Hex64 = Annotated[str, Field(pattern=r"\A[0-9a-f]{64}\Z")]
StepKey = Annotated[str, Field(pattern=r"\A[1-9][0-9]{0,2}\Z")]      # "1" .. "999", ASCII digits only
Unit = Annotated[float, Field(ge=0, le=1)]
Info = Any                           # informational: not read by the box, bounded by MAX_MANIFEST_BYTES


class Reference(_Strict):
    output: FileName = "reference.npz"
    atol: float = Field(2e-2, gt=0, le=10)
    seed: Optional[int] = None
    sigma: Optional[float] = None
    decay: Optional[float] = None
    input_sha256: Optional[Hex64] = None


class Network(_Strict):
    file: FileName
    sha256: Hex64
    batch: Optional[int] = Field(None, ge=1, le=256)
    inputs: dict[str, Shape] = Field(max_length=8)
    outputs: dict[str, Shape] = Field(max_length=8)
    sampler: Literal["consistency", "heun", "euler"]
    steps: dict[StepKey, Annotated[list[Sigma], Field(min_length=1, max_length=MAX_STEPS)]] = Field(
        min_length=1, max_length=32)
    default_steps: int = Field(ge=1, le=MAX_STEPS)
    # Consistency sampling's share of fresh noise when it re-noises (sampler.py); 1 = Song et al.'s.
    fresh_noise: float = Field(1.0, ge=0.0, le=1.0)
    reference: Optional[Reference] = None
    parity_max_abs_diff: Optional[float] = None
    latency_ms_ort_cpu: Optional[float] = None

    @model_validator(mode="after")
    def _contract(self):
        for key in ("x", "sigma", "decay"):
            if key not in self.inputs:
                raise ValueError(f"inputs: missing input '{key}'")
        if "denoised" not in self.outputs:
            raise ValueError("outputs: missing output 'denoised'")
        x = self.inputs["x"]
        if len(x) != 4 or x[1] != 3:
            raise ValueError(f"inputs.x: {x} is not [batch, 3, height, width]")
        count = x[0] * x[1] * x[2] * x[3]
        if count > MAX_ELEMENTS:
            raise ValueError(f"inputs.x: {x} is {count} floats, over the limit of {MAX_ELEMENTS}")
        if self.outputs["denoised"] != x:
            raise ValueError(f"outputs.denoised: {self.outputs['denoised']} is not the shape of inputs.x {x}")
        unknown = sorted(set(self.inputs) - {"x", "sigma", *CONDITION_INPUTS})
        if unknown:
            raise ValueError(f"inputs: unknown input(s) {unknown}")
        for key in ("sigma", *CONDITION_INPUTS):
            if key in self.inputs and self.inputs[key] != [x[0]]:
                raise ValueError(f"inputs.{key}: {self.inputs[key]} is not [batch] = [{x[0]}]")
        if self.batch is not None and self.batch != x[0]:
            raise ValueError(f"batch: {self.batch} is not the batch of inputs.x ({x[0]})")
        for k, sig in self.steps.items():
            if len(sig) != int(k) or any(a <= b for a, b in zip(sig, sig[1:])):
                raise ValueError(f"steps.{k}: expected {k} positive, strictly decreasing sigmas, got {sig}")
        if str(self.default_steps) not in self.steps:
            raise ValueError(f"default_steps: {self.default_steps} has no entry in steps")
        if self.fresh_noise != 1.0 and self.sampler != "consistency":
            raise ValueError(f"fresh_noise: only a consistency sampler re-noises ({self.sampler} does not)")
        return self


class Precond(_Strict):
    kind: Literal["edm"] = "edm"
    sigma_data: float = Field(0.5, gt=0, le=100)
    sigma_min: float = Field(0.002, gt=0, le=1e4)
    sigma_max: float = Field(80.0, gt=0, le=1e4)
    in_graph: bool = True


class Decay(_Strict):
    range: Annotated[list[Unit], Field(min_length=2, max_length=2)] = [0.0, 1.0]
    default: Unit = 0.5
    used: bool = True
    meaning: str = ""


class Subject(_Strict):
    """The footage sources the model is conditioned on; input `subject` carries the index as a float."""
    names: Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(min_length=1, max_length=256)]
    images: Info = None
    decay: Info = None
    meaning: str = ""

    @model_validator(mode="after")
    def _distinct(self):
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"names: {self.names} are not distinct")
        return self


class Conditioning(_Strict):
    decay: Decay = Decay()
    subject: Optional[Subject] = None


# The cascade's stage. Checked apart from the manifest (stages.parse_upsampler): a broken stage is a
# fault the box shows the base image through, never a refused model.
REFERENCE_ATOL_MAX = 0.1
Shape4 = Annotated[list[Dim], Field(min_length=4, max_length=4)]    # static NCHW


class StageReference(_Strict):
    output: FileName
    atol: float = Field(2e-2, gt=0, le=REFERENCE_ATOL_MAX)


class StageInputs(_Strict):
    image: Shape4


class StageOutputs(_Strict):
    upsampled: Shape4


class UpsamplerStage(_Strict):
    file: FileName
    sha256: Hex64
    inputs: StageInputs
    outputs: StageOutputs
    reference: Optional[StageReference] = None
    method: Info = None
    params: Info = None
    latency_ms_ort_cpu: Info = None
    training: Info = None
    # The detail gain is inside the stage's graph; these say what it is and how it was chosen.
    detail_gain: Info = None
    detail_gain_search: Info = None


def parse_stage(raw: Any, where: tuple[str, ...], path: str, error: type[Exception]) -> UpsamplerStage:
    """A stage entry from an already parsed manifest; problems are `error` naming the file and key."""
    try:
        return UpsamplerStage.model_validate(raw, strict=True)
    except ValidationError as exc:
        errors = exc.errors()
        raise error("; ".join(f"{path}: {_describe({**e, 'loc': (*where, *e['loc'])})}" for e in errors[:3])) from None


class SourceDecay(_Strict):
    """One subject's decay values in training (export/decaydist.py). The box reads `decay_quantiles`:
    a network trained only on a subject's values (tomato grades k/9, banana stages k/3) may grow another
    subject between them."""
    decay_quantiles: Optional[Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(max_length=1001)]] = None
    images: Info = None
    decay_known: Info = None
    decay_mean: Info = None
    histogram: Info = None


class DecayDistribution(_Strict):
    by_source: dict[Annotated[str, Field(min_length=1, max_length=256)], SourceDecay] = Field({}, max_length=256)
    quantiles: Info = None
    split: Info = None
    how: Info = None


class Manifest(_Strict):
    format: Literal[FORMAT]
    name: Optional[str] = Field(None, min_length=1, max_length=64)
    created: Optional[str] = Field(None, max_length=64)
    resolution: Annotated[list[Annotated[int, Field(ge=8, le=1024)]], Field(min_length=2, max_length=2)]
    channels: Literal[3]
    value_range: Annotated[list[float], Field(min_length=2, max_length=2)] = [-1.0, 1.0]
    color: Literal["RGB"] = "RGB"
    layout: Literal["NCHW"] = "NCHW"
    precond: Precond
    conditioning: Conditioning = Conditioning()
    networks: dict[Annotated[str, Field(min_length=1, max_length=64)], Network] = Field(min_length=1, max_length=8)
    training: Info = None
    metrics: Info = None
    tools: Info = None
    credits: Info = None
    data_summary: Info = None
    decay_distribution: Optional[DecayDistribution] = None  # per-source decay quantiles: the box snaps to them
    stages: Info = None              # the cascade's stages, checked by stages.py (a broken one is a fault)

    @model_validator(mode="after")
    def _consistent(self):
        h, w = self.resolution
        if h != w:
            raise ValueError(f"resolution: {self.resolution} is not square (the compositor tiles squares)")
        lo, hi = self.value_range
        if not lo < hi:
            raise ValueError(f"value_range: {self.value_range} is not [low, high]")
        return self


def read_manifest(path: Path, error: type[Exception]) -> Manifest:
    """Read and validate manifest.json; every problem is `error` naming the file and key."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise error(f"{path}: no manifest (is {path.parent} a model directory?)") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise error(f"{path}: over {MAX_MANIFEST_BYTES} bytes; not a model manifest")
    return parse_manifest(raw, path, error)


def parse_manifest(raw: bytes | str, path: Path, error: type[Exception]) -> Manifest:
    """Validate manifest JSON text: what the box reads, and what humus-export checks before it writes
    one (so a writer and reader that drift apart fail at export, not on the box)."""
    try:
        # JSON mode: arrays are lists, NaN/Infinity tokens are refused by allow_inf_nan=False
        return Manifest.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            raise error(f"{path}: not valid JSON: {errors[0]['msg']}") from None
        lines = [f"{path}: {_describe(e)}" for e in errors[:5]]
        more = f"\n  (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise error("\n  ".join(lines) + more) from None


def _describe(err: dict) -> str:
    loc = [str(p) for p in err["loc"]]
    where = ".".join(loc) or "(top level)"
    if err["type"] == "missing":
        return f"{'.'.join(loc[:-1]) or '(top level)'}: missing key '{loc[-1]}'"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key (models/MANIFEST.md lists the keys)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "literal_error":
        msg = f"{str(err.get('input'))[:40]!r} is not allowed: {msg}"
    return f"{where}: {msg}"
