"""The engine interface: `denoise(x, sigma, cond) -> x0_hat` at a static batch.

Backends (trt) import this module; the table in engines.py imports the backends, never the other way round.
"""
from __future__ import annotations

import numpy as np

from firmware.generate.conditions import Conditions
from firmware.generate.manifest import NetworkInfo


class EngineError(Exception):
    """An engine that cannot run (missing library, failed build, failed fp16 guard)."""


class Engine:
    """Runs a static-batch denoiser. Inputs larger than the batch are split; smaller are padded."""

    kind = "engine"
    providers: tuple[str, ...] = ()

    def __init__(self, net: NetworkInfo) -> None:
        self.net = net
        self.batch = net.batch
        self.shape = net.inputs["x"]

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """One batch: every input the manifest names -> contiguous float32 array, by name."""
        raise NotImplementedError

    def denoise(self, x: np.ndarray, sigma, cond: Conditions) -> np.ndarray:
        """x0_hat for x at noise level sigma under `cond` (sigma: a number or one per image)."""
        n = x.shape[0]
        # The one place conditions become the network's feed: each input the manifest names, by
        # name, one float32 per image (a subject index becomes the float the network takes here).
        named = {"sigma": sigma, **cond.inputs()}
        missing = sorted(set(self.net.inputs) - {"x"} - set(named))
        if missing:
            raise EngineError(f"{self.net.path.name}: the conditions give no value for input(s) {missing}")
        per_image = {k: np.broadcast_to(np.asarray(named[k], np.float32), (n,))
                     for k in self.net.inputs if k != "x"}
        if n == self.batch:
            return self._run({"x": np.ascontiguousarray(x, np.float32),
                              **{k: np.ascontiguousarray(v) for k, v in per_image.items()}})
        out = np.empty_like(x, dtype=np.float32)
        for i in range(0, n, self.batch):
            j = min(i + self.batch, n)
            feed = {"x": np.zeros(self.shape, np.float32)}
            feed["x"][: j - i] = x[i:j]
            for k, arr in per_image.items():
                # padding: sigma 1 (the preconditioning divides by it), every condition 0
                feed[k] = np.full(self.batch, 1.0 if k == "sigma" else 0.0, np.float32)
                feed[k][: j - i] = arr[i:j]
            out[i:j] = self._run(feed)[: j - i]
        return out

    def describe(self) -> str:
        return f"{self.kind} ({', '.join(self.providers) or 'default'})"

    def close(self) -> None:
        pass
