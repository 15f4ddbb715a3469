"""The model session: the single owner of model state. The manifest, the engine, the network and its
noise levels, the cascade's upsampler, the generation worker and the planner that feeds it all live
here, so a model that fails (at opening, at warm-up) is dropped in one place and the rest of the box
only ever asks "is there a model?".

A model that fails validation, the reference check or even the engine's own loader never stops the
show: the footage and the dissolve run on, and the fault is one log line and one entry in the status
file.
"""
from __future__ import annotations

import logging

import numpy as np

from firmware.box.planner import GenerationPlanner
from firmware.generate.conditions import Conditions, show_conditions
from firmware.generate.manifest import ModelError, load_model_dir
from firmware.generate.stages import Upsampler
from firmware.generate.worker import GenerationWorker
from firmware.show.subjects import subject_weights

log = logging.getLogger("humus.box")


class ModelSession:
    """`model`, `engine`, `net` and `sigmas` are None / () when the box runs on footage only."""

    def __init__(self, config, fault, *, threaded: bool, engine=None, model=None) -> None:
        """engine, model: an engine already open (the soak's fault-injecting one, a test's), used as
        it is; otherwise the session opens [model] dir itself."""
        self.config, self.fault, self.threaded = config, fault, threaded
        self.model, self.engine, self.net, self.sigmas = model, engine, None, ()
        problem = None
        if self.engine is None:
            self.model, self.engine, problem = self._open_model()
        if self.model is not None:
            self.net = self.model.network(config.model.network)
            self.sigmas = self.net.sigmas(config.model.steps)
        self.model_side = self.model.resolution[1] if self.model else 64
        self.upsampler = self._open_upsampler()
        names = self.model.subjects if self.model else ()
        self.subject_weights, unknown = subject_weights(config.show.subjects, names)
        if unknown and self.model is not None:
            fault(f"show.subjects: {', '.join(unknown)} not among the model's subjects "
                  f"({', '.join(names) or 'it has none'}); ignored")
        self.worker = GenerationWorker(self.engine, threaded=threaded, upsampler=self.upsampler)
        if problem:
            self.worker.health.ok, self.worker.health.detail = False, problem
        self.generation: GenerationPlanner | None = None

    def _open_model(self):
        """(model, engine, None), or (None, None, why)."""
        from firmware.generate.engine_interface import EngineError
        from firmware.generate.engines import open_engine
        cfg = self.config.model
        engine = None
        try:
            model = load_model_dir(cfg.dir)
            model.network(cfg.network).sigmas(cfg.steps)   # [model] steps must exist in the manifest
            engine = open_engine(model, cfg.network, cfg.engine, cache_dir=cfg.engine_cache,
                                 threads=cfg.threads)
            log.info("model %s: %s on %s", model.name, cfg.network, engine.describe())
            return model, engine, None
        except (ModelError, EngineError, OSError, MemoryError) as exc:
            problem = str(exc)
        except Exception as exc:  # vendor runtimes raise their own types; still only a model fault
            problem = f"{type(exc).__name__}: {exc}"
        if engine is not None:
            engine.close()
        problem = problem.replace("\n  ", "; ")
        self.fault(f"model: {problem}; showing footage only")
        return None, None, f"no model: {problem[:200]}"

    def _open_upsampler(self) -> Upsampler | None:
        """The cascade's stage, when the model has one; a broken one is a fault, never a stop."""
        if self.model is None or (self.model.upsampler is None and not self.model.stage_errors):
            return None
        from firmware.generate.providers import for_stage

        # The stage runs where the generator runs (the GPU on a Jetson), not always on the CPU.
        up = Upsampler(self.model.upsampler, threads=max(1, self.config.model.threads),
                       providers=for_stage(self.engine.providers if self.engine is not None else ()))
        if self.model.stage_errors:
            up.fault(self.model.stage_errors[0])
        problem = self.model.stage_errors[0] if self.model.stage_errors else up.failed
        if problem:
            self.fault(f"model stage: {problem}; showing the base image upscaled")
        return up

    def plan(self, compositor, width: int, height: int, started_at: float) -> GenerationPlanner:
        """Start planning generation for `compositor`'s tiles (made once the model's side is known)."""
        self.generation = GenerationPlanner(self, compositor, self.config.show, width, height,
                                            self.threaded, started_at)
        return self.generation

    def warm_up(self) -> None:
        """Run the model once before READY, so the first visitor does not pay for lazy init. An
        engine that cannot run once will not run for a visitor: it is dropped."""
        if self.engine is None or self.net is None:
            return
        x = np.zeros(self.net.inputs["x"], np.float32)
        try:
            self.engine.denoise(x, self.sigmas[0], Conditions(self.config.show.decay))
        except Exception as exc:
            self.fault(f"model: warm-up failed ({type(exc).__name__}: {exc}); showing footage only")
            self.worker.engine = self.engine = self.model = self.net = None
            self.sigmas = ()
            self.worker.health.ok, self.worker.health.detail = False, "no model: warm-up failed"

    def conditions(self, osc) -> Conditions:
        """The show's conditions for the model this frame, made once here from the show's inputs
        (/humus/decay when a controller has set it, else the config's; /humus/subject) and the
        manifest's subject names."""
        decay = self.config.show.decay if osc.decay is None else osc.decay
        return show_conditions(decay, osc.subject, self.model.subjects if self.model else ())

    def request(self, cue, now: float, camera_picture, osc) -> None:
        """The frame's generation requests; without threads the worker runs them here and now."""
        self.generation.request(cue, now, cue.state, camera_picture, self.conditions(osc))
        if not self.threaded:
            self.worker.process_pending()

    def by_role(self) -> dict:
        parts = {"generator": self.worker}
        if self.upsampler is not None:
            parts["upsampler"] = self.upsampler
        return parts

    def describe(self) -> tuple[str | None, dict | None]:
        """(the engine in words, {name, network}) for the status, or None for each without a model."""
        return (self.engine.describe() if self.engine else None,
                {"name": self.model.name, "network": self.net.name} if self.model else None)

    def close(self) -> None:
        for part in (self.worker, self.upsampler):
            if part is None:
                continue
            try:
                part.close()
            except Exception as exc:   # shutting down: report, never raise
                log.warning("closing %s: %s", part.name, exc)
        if self.generation is not None:
            self.generation.close()
