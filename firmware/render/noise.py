"""The visitor's noise, at two resolutions, and the dissolve. Pure numpy (+ OpenCV when present).

One eps per visitor. Each tile of the screen is the visible crop of a square of side S, a multiple of
the model resolution; eps at display resolution is iid N(0, 1) over that square, and the model's
starting noise is its k x k block mean times k (k = S / model side), which is again exactly N(0, 1).
So the noise the visitor dissolves into is, pixel block for pixel block, the noise the images grow from.

The dissolve is the model's forward process in its variance-preserving view:
    shown = (x0 + sigma * eps) / sqrt(1 + sigma^2)      (x0 in [-1, 1])
computed on uint8 pictures in one fused pass: eps is stored as e = 128 + 32 * eps (clipped at
+-4 sigma), x0 as u = 127.5 * (x0 + 1), so shown_u8 = a * u + b * e + c with per-frame scalars.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

try:  # OpenCV's fused, SIMD, multithreaded kernels; numpy fallback keeps the box running without it
    import cv2
except ImportError:  # pragma: no cover - exercised on boxes without OpenCV
    cv2 = None

EPS_SCALE = 32.0     # uint8 steps per unit of eps
EPS_ZERO = 128.0


@dataclass(frozen=True)
class Tile:
    x: int
    y: int
    w: int
    h: int

    @property
    def square(self) -> int:
        return max(self.w, self.h)


def layout_tiles(layout: str, width: int, height: int) -> list[Tile]:
    if layout == "full":
        return [Tile(0, 0, width, height)]
    if layout == "diptych":
        half = width // 2
        return [Tile(0, 0, half, height), Tile(half, 0, width - half, height)]
    raise ValueError(f"unknown layout '{layout}'")


def square_side(tile: Tile, model_side: int) -> int:
    return int(math.ceil(tile.square / model_side)) * model_side


def crop_offsets(side: int, tile: Tile) -> tuple[int, int]:
    return (side - tile.h) // 2, (side - tile.w) // 2


@dataclass
class VisitorNoise:
    screen_u8: np.ndarray      # H x W x 3 uint8: eps at display resolution, quantised
    model_eps: np.ndarray      # n_tiles x 3 x h x w float32: the generation's starting noise


def make_visitor_noise(seed: int, tiles: list[Tile], width: int, height: int,
                       model_hw: tuple[int, int]) -> VisitorNoise:
    rng = np.random.default_rng(seed)
    screen = np.empty((height, width, 3), np.uint8)
    model = np.empty((len(tiles), 3, model_hw[0], model_hw[1]), np.float32)
    for i, tile in enumerate(tiles):
        side = square_side(tile, model_hw[1])
        k = side // model_hw[1]
        eps = np.empty((side, side, 3), np.float32)
        for r in range(0, side, 64):  # in slices: each C call is short, so the GIL changes hands
            rng.standard_normal(out=eps[r:r + 64], dtype=np.float32)
        # The block mean of k*k iid N(0,1) has variance 1/k^2: times k it is N(0,1) again.
        blocks = eps.reshape(model_hw[0], k, model_hw[1], k, 3).mean(axis=(1, 3)) * k
        model[i] = blocks.transpose(2, 0, 1)
        oy, ox = crop_offsets(side, tile)
        crop = eps[oy:oy + tile.h, ox:ox + tile.w]
        screen[tile.y:tile.y + tile.h, tile.x:tile.x + tile.w] = quantise_eps(crop)
    return VisitorNoise(screen, model)


def quantise_eps(eps: np.ndarray) -> np.ndarray:
    return np.clip(eps * EPS_SCALE + EPS_ZERO, 0, 255).astype(np.uint8)


def dissolve_coeffs(sigma: float) -> tuple[float, float, float]:
    """(a, b, c) so that shown_u8 = a * u + b * e + c (see module docstring)."""
    k = 1.0 / math.sqrt(1.0 + sigma * sigma)
    a = k
    b = 127.5 * k * sigma / EPS_SCALE
    c = 127.5 - 127.5 * k - b * EPS_ZERO
    return a, b, c


def dissolve(picture_u8: np.ndarray, eps_u8: np.ndarray, sigma: float,
             out: np.ndarray | None = None) -> np.ndarray:
    """The forward process on screen. `picture_u8` and `eps_u8` have the same shape."""
    if sigma <= 0:
        if out is None:
            return picture_u8
        out[...] = picture_u8
        return out
    a, b, c = dissolve_coeffs(sigma)
    if cv2 is not None:
        return cv2.addWeighted(picture_u8, a, eps_u8, b, c, dst=out)
    res = picture_u8.astype(np.float32) * a + eps_u8.astype(np.float32) * b + c
    res = np.clip(res + 0.5, 0, 255).astype(np.uint8)
    if out is not None:
        out[...] = res
        return out
    return res


def blend(a_u8: np.ndarray, b_u8: np.ndarray, w: float, out: np.ndarray | None = None) -> np.ndarray:
    """(1 - w) * a + w * b on uint8 pictures."""
    w = min(max(w, 0.0), 1.0)
    if cv2 is not None:
        return cv2.addWeighted(a_u8, 1.0 - w, b_u8, w, 0.0, dst=out)
    res = np.clip(a_u8.astype(np.float32) * (1 - w) + b_u8.astype(np.float32) * w + 0.5, 0, 255)
    res = res.astype(np.uint8)
    if out is not None:
        out[...] = res
        return out
    return res


def to_u8(img_chw: np.ndarray) -> np.ndarray:
    """Model output (3 x h x w, [-1, 1]) -> h x w x 3 uint8."""
    return np.clip((img_chw.transpose(1, 2, 0) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def from_u8(img_hwc: np.ndarray) -> np.ndarray:
    """h x w x 3 uint8 -> 3 x h x w float32 in [-1, 1]."""
    return img_hwc.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0


def resize(img: np.ndarray, w: int, h: int, smooth: bool = True) -> np.ndarray:
    if img.shape[1] == w and img.shape[0] == h:
        return img
    if cv2 is not None:
        if w <= img.shape[1]:
            interp = cv2.INTER_AREA
        else:
            interp = cv2.INTER_CUBIC if smooth else cv2.INTER_LINEAR
        return cv2.resize(img, (w, h), interpolation=interp)
    ys = (np.arange(h) * img.shape[0] / h).astype(np.intp)
    xs = (np.arange(w) * img.shape[1] / w).astype(np.intp)
    return img[ys][:, xs]


def cover(img: np.ndarray, w: int, h: int, smooth: bool = True) -> np.ndarray:
    """Scale to cover w x h keeping the aspect ratio, centre-cropped (no letterbox bars on a wall).

    The crop is taken from the source first, so only the visible pixels are ever scaled."""
    ih, iw = img.shape[:2]
    s = max(w / iw, h / ih)
    cw, ch = min(iw, int(round(w / s))), min(ih, int(round(h / s)))
    ox, oy = (iw - cw) // 2, (ih - ch) // 2
    return np.ascontiguousarray(resize(img[oy:oy + ch, ox:ox + cw], w, h, smooth))


def model_to_tile(img_u8: np.ndarray, tile: Tile, model_side: int) -> np.ndarray:
    """A model-resolution image upscaled onto its tile exactly as the tile's noise square maps."""
    side = square_side(tile, model_side)
    big = resize(img_u8, side, side)
    oy, ox = crop_offsets(side, tile)
    return np.ascontiguousarray(big[oy:oy + tile.h, ox:ox + tile.w])


def measured_noise_fraction(shown_u8: np.ndarray, clean_u8: np.ndarray) -> float:
    """How much of a shown frame is noise: std of (shown - k * clean) relative to full noise.

    Used by tests and the soak to check the dissolve from the frames themselves.
    """
    diff = shown_u8.astype(np.float32) - clean_u8.astype(np.float32)
    return float(np.std(diff) / (127.5 / 1.0))
