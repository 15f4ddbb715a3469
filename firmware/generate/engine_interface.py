"""The engine interface: `denoise(x, sigma, decay) -> x0_hat` at a static batch.

Backends (trt) import this module; the table in engines.py imports the backends, never the other way round.
"""
from __future__ import annotations

import numpy as np

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

    def _run(self, x: np.ndarray, sigma: np.ndarray, decay: np.ndarray, subject: np.ndarray | None = None
             ) -> np.ndarray:
        raise NotImplementedError

    @property
    def has_subject(self) -> bool:
        """The network takes a subject (an index as a float, per image, like decay)."""
        return "subject" in self.net.inputs

    def denoise(self, x: np.ndarray, sigma, decay, subject=None) -> np.ndarray:
        n = x.shape[0]
        per_image = [np.broadcast_to(np.asarray(sigma, np.float32), (n,)),
                     np.broadcast_to(np.asarray(decay, np.float32), (n,))]
        if self.has_subject:  # a network with subjects always gets one (0 = the first) ...
            per_image.append(np.broadcast_to(np.asarray(0 if subject is None else subject, np.float32), (n,)))
        # ... and one without never does, so engines written for (x, sigma, decay) still run it.
        if n == self.batch:
            return self._run(np.ascontiguousarray(x, np.float32), *map(np.ascontiguousarray, per_image))
        out = np.empty_like(x, dtype=np.float32)
        for i in range(0, n, self.batch):
            j = min(i + self.batch, n)
            xb = np.zeros(self.shape, np.float32)
            xb[: j - i] = x[i:j]
            conds = []
            for k, arr in enumerate(per_image):
                cb = np.ones(self.batch, np.float32) if k == 0 else np.zeros(self.batch, np.float32)
                cb[: j - i] = arr[i:j]
                conds.append(cb)
            out[i:j] = self._run(xb, *conds)[: j - i]
        return out

    def describe(self) -> str:
        return f"{self.kind} ({', '.join(self.providers) or 'default'})"

    def close(self) -> None:
        pass
