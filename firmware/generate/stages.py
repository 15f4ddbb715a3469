"""The cascade's second stage: a one-pass upsampler from the model's resolution to the wall's picture.

A model directory may name `stages.upsampler` (models/MANIFEST.md): an ONNX network taking the
generator's final image `image` [1, C, h, w] in the value range and returning `upsampled`
[1, C, s*h, s*w] in the same range.
It runs once per finished image, never per step: the emergence shows the generator's own predictions
growing, and the hold shows the upsampled result.

An upsampler that cannot load, fails its reference check or raises while running is a fault, logged
once and shown in `humus status`; the box then shows the base image, which the compositor upscales
anyway. The show never waits for this stage and never stops because of it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware.devices.base import Device
from firmware.digest import resolve_inside, sha256_file
from firmware.generate.providers import choose_providers

log = logging.getLogger("humus.upsampler")



class StageError(Exception):
    """A stage entry that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class UpsamplerInfo:
    path: Path
    sha256: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    reference: Path | None
    atol: float

    @property
    def scale(self) -> int:
        return self.output_shape[-1] // self.input_shape[-1]


def _inside(model_dir: Path, name: str, where: str) -> Path:
    path = resolve_inside(model_dir, name)
    if path is None:
        raise StageError(f"{where}: {name!r} is outside the model directory")
    return path


def parse_upsampler(raw, model_dir: Path, mf: str, channels: int, resolution: tuple[int, int]) -> UpsamplerInfo:
    """Check a manifest's `stages.upsampler` entry (the schema's field rules, manifest_schema.UpsamplerStage)
    against the model it follows."""
    from firmware.generate.manifest_schema import parse_stage

    where = f"{mf}: stages.upsampler"
    st = parse_stage(raw, ("stages", "upsampler"), mf, StageError)
    path = _inside(model_dir, st.file, f"{where}.file")
    if not path.is_file():
        raise StageError(f"{where}.file: {path} does not exist")
    i_shape, o_shape = tuple(st.inputs.image), tuple(st.outputs.upsampled)
    if i_shape != (1, channels, *resolution):
        raise StageError(f"{where}.inputs.image: {list(i_shape)} does not match the model's "
                         f"{[1, channels, *resolution]}")
    s = o_shape[-1] // i_shape[-1]
    if o_shape[:2] != i_shape[:2] or s < 2 or o_shape[2:] != (i_shape[2] * s, i_shape[3] * s):
        raise StageError(f"{where}.outputs.upsampled: {list(o_shape)} is not a whole enlargement of {list(i_shape)}")
    ref_path = None if st.reference is None else _inside(model_dir, st.reference.output, f"{where}.reference.output")
    return UpsamplerInfo(path=path, sha256=st.sha256, input_shape=i_shape, output_shape=o_shape, reference=ref_path,
                         atol=2e-2 if st.reference is None else float(st.reference.atol))


class Upsampler(Device):
    """Runs the stage on finished images; on any failure it passes the base image through."""

    name = "upsampler"

    def __init__(self, info: UpsamplerInfo | None, threads: int = 1, check_hash: bool = True,
                 providers: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.info = info
        self._session = None
        self.failed: str | None = None
        self.providers: tuple[str, ...] = ()
        if info is None:
            return
        try:
            self._session = self._open(info, threads, check_hash, providers)
            self.providers = tuple(self._session.get_providers())
            log.info("upsampler %s runs on %s", info.path.name, ", ".join(self.providers))
        except Exception as exc:  # noqa: BLE001  any vendor failure: the base image still shows
            self._give_up(f"cannot load ({exc})")

    @staticmethod
    def _open(info: UpsamplerInfo, threads: int, check_hash: bool, providers: tuple[str, ...] | None):
        if check_hash and sha256_file(info.path) != info.sha256:
            raise StageError(f"{info.path.name}: sha256 does not match the manifest")
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, threads)
        chosen = choose_providers(ort.get_available_providers(), providers)
        try:
            sess = ort.InferenceSession(str(info.path), so, providers=chosen)
        except Exception as exc:  # noqa: BLE001  a GPU provider that refuses: the CPU still runs it
            if chosen == ["CPUExecutionProvider"]:
                raise
            log.warning("upsampler: %s refused it (%s); running it on the CPU", ", ".join(chosen[:-1]), exc)
            sess = ort.InferenceSession(str(info.path), so, providers=["CPUExecutionProvider"])
        if info.reference is not None:
            with np.load(info.reference) as z:
                x, want = z["image"], z["upsampled"]
            got = sess.run(["upsampled"], {"image": x.astype(np.float32)})[0]
            err = float(np.abs(got - want).max())
            if not err <= info.atol:
                raise StageError(f"reference check failed: max difference {err:.3g} > atol {info.atol}")
        return sess

    def _give_up(self, why: str) -> None:
        self.failed = why
        self._session = None
        self.fault(f"upsampler {why}; showing the base image upscaled")

    @property
    def active(self) -> bool:
        return self._session is not None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """images [N, C, h, w] -> [N, C, s*h, s*w], or the images unchanged if the stage is out."""
        if self._session is None:
            return images
        try:
            out = np.concatenate([self._session.run(["upsampled"], {"image": img[None].astype(np.float32)})[0]
                                  for img in images])
            if not np.all(np.isfinite(out)):
                raise FloatingPointError("upsampler returned NaN/Inf")
            return out
        except Exception as exc:  # noqa: BLE001  the base image still shows; never stop the show
            self._give_up(f"failed ({exc})")
            return images

    def _close(self) -> None:
        self._session = None
