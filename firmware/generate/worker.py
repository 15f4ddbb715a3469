"""The generation worker: owns the engine, runs requests off the display thread.

Two one-slot mailboxes: a visitor job (always wins) and a drift job (the idle's slow walk). Results are
published step by step, so the compositor can show the emergence as it happens and never waits.
An engine that raises or returns NaN marks the worker faulted; the show then degrades to footage.
A finished image goes once through the cascade's upsampler (stages.py) when the model has one; the
steps before it are published at the generator's resolution.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from firmware.devices.base import Device, Latest
from firmware.generate.conditions import Conditions
from firmware.generate.sampler import sample

log = logging.getLogger("humus.worker")


@dataclass(frozen=True)
class VisitorJob:
    visitor: int
    eps: np.ndarray                   # n x 3 x h x w, the visitor's noise at model resolution
    sigmas: tuple[float, ...]
    sampler: str
    cond: Conditions                  # what the network is conditioned on, passed to it untouched
    seed_image: np.ndarray | None = None   # n x 3 x h x w in [-1, 1]: the visitor, downscaled
    strength: float = 0.0
    fresh: float = 1.0                # the network's re-noising (NetworkInfo.fresh)


@dataclass
class VisitorResult:
    visitor: int
    sigmas: tuple[float, ...]
    # one n x 3 x h x w per finished step; once done, the last is the finished (upsampled) image
    preds: list[np.ndarray] = field(default_factory=list)
    done: bool = False
    failed: str | None = None
    step_seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class DriftJob:
    key: float                        # position of the walk (for ordering)
    noise: np.ndarray                 # n x 3 x h x w, one walk position per tile
    sigmas: tuple[float, ...]
    sampler: str
    cond: Conditions
    fresh: float = 1.0


@dataclass(frozen=True)
class DriftResult:
    key: float
    images: np.ndarray                # n x 3 x h x w in [-1, 1], one per tile


def seeded_sigmas(sigmas, strength: float, sigma_max: float) -> tuple[float, ...]:
    """Start the sampler part-way for a seeded generation: strength 0 = pure noise (all steps),
    strength 1 = start at sigma 0.5 where the seed's shape survives clearly."""
    if strength <= 0:
        return tuple(sigmas)
    start = math.exp(math.log(sigma_max) + strength * (math.log(0.5) - math.log(sigma_max)))
    rest = [s for s in sigmas[1:] if s < start * 0.95]
    return (start, *rest)


def slerp(a: np.ndarray, b: np.ndarray, p: float) -> np.ndarray:
    """Spherical interpolation: keeps the noise's norm, so every point of the walk is valid noise."""
    af, bf = a.ravel(), b.ravel()
    cos = float(np.dot(af, bf) / (np.linalg.norm(af) * np.linalg.norm(bf)))
    theta = math.acos(min(max(cos, -1.0), 1.0))
    if theta < 1e-4:
        return ((1 - p) * a + p * b).astype(np.float32)
    s = math.sin(theta)
    return ((math.sin((1 - p) * theta) / s) * a + (math.sin(p * theta) / s) * b).astype(np.float32)


class GenerationWorker(Device):
    name = "generator"

    def __init__(self, engine, *, threaded: bool = True, upsampler=None) -> None:
        super().__init__()
        self.engine = engine
        # finished images [n, C, h, w] -> the wall's picture; identity without a cascade stage
        self.upsample = upsampler if upsampler is not None else (lambda images: images)
        self.threaded = threaded
        self._visitor_job: Latest[VisitorJob] = Latest()
        self._drift_job: Latest[DriftJob] = Latest()
        self._taken_visitor = 0
        self._taken_drift = 0
        self.visitor_result: Latest[VisitorResult] = Latest()
        self.drift_result: Latest[DriftResult] = Latest()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.images_done = 0
        self.busy = False
        if threaded and engine is not None:
            self._thread = threading.Thread(target=self._loop, name="generator", daemon=True)
            self._thread.start()

    @property
    def available(self) -> bool:
        return self.engine is not None

    def submit_visitor(self, job: VisitorJob) -> None:
        self.visitor_result.put(VisitorResult(job.visitor, job.sigmas))
        self._visitor_job.put(job)
        self._wake.set()

    def submit_drift(self, job: DriftJob) -> None:
        self._drift_job.put(job)
        self._wake.set()

    def pending(self) -> bool:
        return (self._visitor_job.get_with_seq()[1] != self._taken_visitor or
                self._drift_job.get_with_seq()[1] != self._taken_drift)

    def process_pending(self) -> None:
        """Run whatever is waiting on the caller's thread (tests with a fake clock, offline render)."""
        while self.pending() and self.engine is not None:
            self._one()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.pending():
                self._wake.wait(0.1)
                self._wake.clear()
                continue
            self._one()

    def _one(self) -> None:
        job, seq = self._visitor_job.get_with_seq()
        if seq != self._taken_visitor and job is not None:
            self._taken_visitor = seq
            self._run_visitor(job, seq)
            return
        djob, dseq = self._drift_job.get_with_seq()
        if dseq != self._taken_drift and djob is not None:
            self._taken_drift = dseq
            self._run_drift(djob)

    def _denoise(self, x: np.ndarray, sigma: float, cond: Conditions) -> np.ndarray:
        out = self.engine.denoise(x, sigma, cond)
        if not np.all(np.isfinite(out)):
            raise FloatingPointError("model returned NaN/Inf")
        return out

    def _run_visitor(self, job: VisitorJob, seq: int) -> None:
        result = VisitorResult(job.visitor, job.sigmas)
        self.visitor_result.put(result)
        timings: list[float] = []

        def timed(x, sigma, cond):
            t0 = time.perf_counter()
            out = self._denoise(x, sigma, cond)
            timings.append(time.perf_counter() - t0)
            return out

        def publish(i, sigma, shown):
            # One picture per step, as the sampler reports it (Heun calls the denoiser twice per
            # step; its mid-step estimate is not a picture to show): the emergence shows it live.
            result.preds = result.preds + [shown]
            self.visitor_result.put(VisitorResult(job.visitor, job.sigmas, result.preds, False, None,
                                                  list(timings)))

        self.busy = True
        try:
            rng = np.random.default_rng(job.visitor * 7919 + 1)
            x_start = job.seed_image if job.seed_image is not None and job.strength > 0 else None
            final, _ = sample(timed, job.sigmas, job.eps, job.sampler, job.cond, rng=rng, x_start=x_start,
                              callback=publish, fresh=job.fresh)
            result.preds = result.preds[:-1] + [self.upsample(final)]
            self.visitor_result.put(VisitorResult(job.visitor, job.sigmas, result.preds, True, None,
                                                  list(timings)))
            self.images_done += job.eps.shape[0]
            self.recover()
        except Exception as exc:  # an engine can fail in many vendor-specific ways; the show goes on
            self.fault(f"generation failed: {exc}")
            self.visitor_result.put(VisitorResult(job.visitor, job.sigmas, result.preds, True, str(exc)))
        finally:
            self.busy = False

    def _run_drift(self, job: DriftJob) -> None:
        self.busy = True
        try:
            final, _ = sample(self._denoise, job.sigmas, job.noise, job.sampler, job.cond,
                              rng=np.random.default_rng(int(job.key * 1000) & 0xFFFFFFFF), fresh=job.fresh)
            self.drift_result.put(DriftResult(job.key, self.upsample(final)))
            self.images_done += final.shape[0]
            self.recover()
        except Exception as exc:
            self.fault(f"drift generation failed: {exc}")
        finally:
            self.busy = False

    def _close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self.engine is not None:
            self.engine.close()
