"""The one training loop: teacher, student and upsampler are each an `Objective` (a model and the loss of
one batch) run by `run()`.

The loop owns everything the three stages share, so each is written once:
* the machine: device (cuda, mps, cpu), threads, bf16 autocast where it is measured faster (AVX-512 BF16
  makes it ~2.4x on this studio's CPU), channels_last and torch.compile when asked for;
* exact resume: model, optimiser, every EMA, the data/noise generator and torch's global RNG (dropout),
  the step and images seen. A run stopped at any checkpoint and resumed is bit-identical to one that never
  stopped, on the same device and thread count (tests/test_export_loop.py);
* power-function EMAs with numbered snapshots (EDM2), so the EMA length is chosen after training by
  `export/phema.py`, on the validation half;
* ``stats.jsonl``: loss, images/s and, where the objective has a probe, a validation KID at intervals;
* the progress bar, the grid and loss curve at each checkpoint, DDP under torchrun (rank 0 writes).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from .phema import PowerEMA


@dataclass(kw_only=True)
class RunBudget:
    """What every training run (teacher, student, upsampler) is told about its run and its machine, as
    opposed to its method. A config may re-declare a field to give it another default.

    Args:
        steps: stop after this many optimiser steps (schedules, such as the learning rate's decay or the
            student's stages, are laid over it) ...
        minutes: ... or after this much wall time, whichever comes first (0 = no limit).
        stop_at: stop at this step and leave the plan as it is (0 = none): a run in pieces.
        ckpt_every: seconds between checkpoints (also writes the loss curve, and a grid where there is one).
        seed: base random seed (under torchrun the rank is added).
        threads: torch intra-op threads on CPU (0 = every core).
        device: "auto" (cuda, then mps, then cpu), "cuda", "mps" or "cpu".
        amp: "auto" (bf16 autocast when a short measurement at the start of a fresh run finds it
            faster), "bf16" or "fp32".
        channels_last: run convolutions in channels_last memory format (measure it: on this CPU it
            is not faster for these small nets).
        compile: torch.compile the model (minutes of compilation; worth it on a GPU for long runs).
        ema_stds: relative standard deviations of the power-function EMAs kept (EDM2); the first is
            the one exported unless a post-hoc choice replaces it.
        snapshot_every: images between EMA snapshots (0 = at each checkpoint).
        stats_every: seconds between lines of stats.jsonl.
        probe_every: seconds between validation probes (0 = never), for objectives that have one.
    """

    steps: int = 100_000
    minutes: float = 0.0
    stop_at: int = 0
    ckpt_every: float = 180.0
    seed: int = 0
    threads: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = False
    compile: bool = False
    ema_stds: tuple = (0.10, 0.05)
    snapshot_every: int = 0
    stats_every: float = 60.0
    probe_every: float = 0.0


class Objective:
    """What a stage trains. Subclasses set ``name`` and ``model`` and write ``loss``; the rest is optional.

    ``loss(net, step, gen)`` draws its batch and noise from ``gen`` only (and dropout from torch's global
    RNG), so the loop can make a resumed run repeat the uninterrupted one exactly."""

    name = "model"
    model: torch.nn.Module
    batch: int = 32
    state: "RunState | None" = None     # set by the loop before the first step: where the run is

    def loss(self, net: torch.nn.Module, step: int, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def lr(self, step: int) -> float:
        raise NotImplementedError

    def optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.lr(0), betas=(0.9, 0.99), eps=1e-8)

    def meta(self) -> dict:
        """Kept in the checkpoint beside the weights (network config, data summary, subjects...)."""
        return {}

    def preview(self, ema: torch.nn.Module, out: Path) -> None:
        """Write a grid of what the EMA model makes (at each checkpoint)."""

    # The validation probe (export/probe.py): (cache, run dir) to have one, built on first use, and
    # how it samples: the teacher's ODE, or as the box samples a student.
    probe_args: tuple | None = None
    probe_sampler: tuple[str, int] = ("heun", 18)
    _probe = None

    def probe(self, ema: torch.nn.Module) -> dict:
        """Cheap quality figures on the validation half (stats.jsonl), e.g. {"kid": ...}; {} without
        probe_args."""
        if self.probe_args is None:
            return {}
        if self._probe is None:
            from .probe import ValidationProbe

            sampler, steps = self.probe_sampler
            self._probe = ValidationProbe(self.probe_args[0], self.names, self.probe_args[1],
                                          sampler=sampler, steps=steps)
        return self._probe(ema)

    def postfix(self, step: int) -> dict:
        return {}

    def terms(self) -> dict:
        """Means of the loss's named parts (e.g. ECT's and a discriminator's) since the last call, for
        stats.jsonl; {} where the loss is one term."""
        return {}

    def extra_state(self) -> dict:
        """State of the objective's own (e.g. a discriminator and its optimiser), saved with the run."""
        return {}

    def load_extra_state(self, st: dict) -> None:
        pass


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cuda", "mps", "cpu"):
        raise ValueError(f"device must be auto, cuda, mps or cpu, not {name!r}")
    return torch.device(name)


def autocast(device: torch.device, amp: str):
    if amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def dist_setup(device: str):
    """Initialise torch.distributed when launched by torchrun; returns (rank, world, device)."""
    dev = pick_device(device)
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) < 1:
        return 0, 1, dev
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if dev.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, dev


def from_rank0(values: tuple[float, ...], world: int, device) -> tuple[float, ...]:
    """Rank 0's figures (its clock, whether it was asked to stop, its last checkpoint's cost) on every
    rank, in one broadcast a step: all ranks must stop together."""
    if world == 1:
        return values
    t = torch.tensor(values, device=device, dtype=torch.float64)
    dist.broadcast(t, 0)
    return tuple(float(v) for v in t)


class StopSignal:
    """Ctrl-C or SIGTERM (systemd, `kill`) during a run asks it to stop: the step in hand finishes, the
    checkpoint is written and the run returns, so the same command goes on from exactly there. A second
    signal stops at once (the last periodic checkpoint stands). Only the main thread can take signals;
    elsewhere (a test's thread) this does nothing."""

    def __init__(self) -> None:
        self.asked = False
        self._old: dict = {}

    def __enter__(self) -> "StopSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._ask)
        return self

    def _ask(self, signum, frame) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def save_atomic(obj, path: Path) -> None:
    """torch.save through the box's own atomic write (synced temporary file, rename, synced folder): a
    kill or a power cut mid-save leaves the previous checkpoint whole."""
    from firmware.appliance.atomic import write_atomic

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_atomic(path, buf.getvalue())


@dataclass
class RunState:
    """Where a run is: what the loop saves and restores besides the model and optimiser."""

    step: int = 0
    nimg: int = 0
    elapsed: float = 0.0
    history: list = field(default_factory=list)    # (step, loss)
    amp: str = ""                                  # chosen on the fresh start, kept on resume...
    amp_machine: str = ""                          # ...on the machine that chose it (machine_key)


def machine_key(device: torch.device) -> str:
    """What decides whether bf16 autocast pays: the device, its thread count and, on a CPU, its model and
    whether it has bf16 instructions. A run resumed elsewhere (another cloud VM, a rented GPU) measures
    again: bf16 emulated on a CPU without AVX-512 BF16 or AMX runs ~10x slower than fp32."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    if device.type != "cpu":
        return device.type
    model, flags = "?", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "?":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    bf16 = "+".join(sorted(flags & {"avx512_bf16", "amx_bf16"})) or "no-bf16"
    return f"cpu:{model}:{bf16}:{torch.get_num_threads()} threads"


def _rng_state(gen: torch.Generator, device: torch.device) -> dict:
    st = {"gen": gen.get_state(), "cpu": torch.get_rng_state()}
    if device.type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state(device)
    return st


def _set_rng_state(st: dict, gen: torch.Generator, device: torch.device) -> None:
    gen.set_state(st["gen"])
    torch.set_rng_state(st["cpu"])
    if device.type == "cuda" and "cuda" in st:
        torch.cuda.set_rng_state(st["cuda"], device)


def _train_step(obj: Objective, net, opt, step: int, gen, device, amp: str) -> float:
    for g in opt.param_groups:
        g["lr"] = obj.lr(step)
    with autocast(device, amp):
        loss = obj.loss(net, step, gen)
    opt.zero_grad(set_to_none=True)
    loss.float().backward()
    # Clipped to norm 1: a rare huge batch must not throw the weights.
    torch.nn.utils.clip_grad_norm_(obj.model.parameters(), 1.0)
    opt.step()
    return float(loss.detach())


def measure_amp(obj: Objective, net, opt, gen, device, steps: int = 3) -> dict:
    """Images/s of fp32 and bf16 autocast on this machine, measured on a few real steps; every state
    the steps touch (weights, optimiser, RNG) is put back afterwards, so the run is as if unmeasured."""
    keep = (copy.deepcopy(obj.model.state_dict()), copy.deepcopy(opt.state_dict()), _rng_state(gen, device))
    rates = {}
    for amp in ("fp32", "bf16"):
        _train_step(obj, net, opt, 0, gen, device, amp)          # warm-up (allocations, kernels)
        t = time.perf_counter()
        for _ in range(steps):
            _train_step(obj, net, opt, 0, gen, device, amp)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        rates[amp] = steps * obj.batch / (time.perf_counter() - t)
    obj.model.load_state_dict(keep[0])
    opt.load_state_dict(keep[1])
    _set_rng_state(keep[2], gen, device)
    return rates


class StatsLog:
    """stats.jsonl: one JSON line per interval (loss mean, images/s) and per probe."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def write(self, **row) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def continue_from_repository(obj: Objective, ckpt_path: Path, state_dir: Path | None, log) -> None:
    """A run folder without a checkpoint starts from the repository's state of the same stage, when that
    state is the same network on the same footage (a clean checkout goes on where the last run stopped)."""
    from . import state

    if state_dir is None or ckpt_path.exists():
        return
    meta = state.read_meta(state_dir, obj.name)
    if meta is None:
        return
    why = state.matches(meta, obj.meta())
    if why:
        log(f"{obj.name}: not continuing {state_dir}: {why}")
        return
    state.restore(state_dir, obj.name, ckpt_path)
    log(f"{obj.name}: continuing the repository's state {state_dir} (step {meta['run']['step']})")


def run(obj: Objective, out: str | Path, cfg: RunBudget, resume: bool = True, progress: bool = True,
        log: Callable[[str], None] = print, state_dir: str | Path | None = None) -> Path:
    """Train ``obj`` in ``out`` until cfg.steps or cfg.minutes; returns the checkpoint ``out``/NAME.pt.
    With ``state_dir`` (and ``resume``), a run folder without a checkpoint continues the state stored there.

    The checkpoint holds "model", "ema" (the first EMA: what is exported), "emas" (all of them),
    "opt", "rng", "run" (RunState), "config" and obj.meta(); earlier stage code reads the same keys."""
    out = Path(out)
    # The budget is wall time from here: the resume, the amp measurement and the checkpoints (with
    # their grids) are paid out of it, so `humus-export all`'s stages end when their share does.
    t0 = time.time()
    rank, world, device = dist_setup(cfg.device)
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    ckpt_path = out / f"{obj.name}.pt"
    model = obj.model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    emas = PowerEMA(model, cfg.ema_stds)
    opt = obj.optimizer()
    gen = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + rank)
    torch.manual_seed(cfg.seed * 1000 + rank + 1)
    rs = RunState()
    if resume and rank == 0:
        continue_from_repository(obj, ckpt_path, None if state_dir is None else Path(state_dir), log)
    if world > 1:
        dist.barrier()
    if resume and ckpt_path.exists():
        st = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        emas.load_state_dict(st["emas"]) if "emas" in st else emas.reset_to(st["ema"])
        if "rng" in st:
            _set_rng_state(st["rng"], gen, device)
        obj.load_extra_state(st.get("objective", {}))
        rs = RunState(**st["run"]) if "run" in st else RunState(step=st["step"], history=st.get("history", []),
                                                                  elapsed=st.get("elapsed", 0.0),
                                                                  nimg=st["step"] * obj.batch)
        log(f"{obj.name}: resuming {ckpt_path} at step {rs.step} ({rs.nimg:,} images seen)")
    obj.state = rs
    net = torch.compile(model) if cfg.compile else model
    net = DDP(net) if world > 1 else net
    here = machine_key(device)
    if cfg.amp == "auto" and (not rs.amp or rs.amp_machine != here):
        if rs.amp:
            log(f"{obj.name}: {rs.amp} was chosen on {rs.amp_machine or 'an unrecorded machine'}; "
                f"this is {here}: measuring again")
        rates = measure_amp(obj, net, opt, gen, device)
        rs.amp, rs.amp_machine = max(rates, key=rates.get), here
        log(f"{obj.name}: {', '.join(f'{k} {v:.1f} images/s' for k, v in rates.items())} on "
            f"{torch.get_num_threads() if device.type == 'cpu' else device} -> {rs.amp}")
    elif cfg.amp != "auto" and rs.amp != cfg.amp:
        if rs.amp:
            log(f"{obj.name}: autocast {rs.amp} -> {cfg.amp}, as asked")
        rs.amp, rs.amp_machine = cfg.amp, here
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "snapshots").mkdir(exist_ok=True)
    stats = StatsLog(out / "stats.jsonl", rank == 0)
    budget = cfg.minutes * 60 if cfg.minutes > 0 else float("inf")
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=rs.step, dynamic_ncols=True, mininterval=5, desc=obj.name)

    ckpt_cost = [0.0]   # what the last checkpoint took: the final one must fit in the budget too

    def checkpoint():
        if rank != 0:
            return
        t_ckpt = time.time()
        save_atomic({"model": model.state_dict(), "ema": emas.state_of(0), "emas": emas.state_dict(),
                     "opt": opt.state_dict(), "rng": _rng_state(gen, device), "run": asdict(rs),
                     "objective": obj.extra_state(),
                     "config": asdict(cfg), "step": rs.step, "history": rs.history, "elapsed": rs.elapsed,
                     **obj.meta()}, ckpt_path)
        ema0 = emas.model_of(0)
        obj.preview(ema0, out / f"{obj.name}_grid.png")
        from .train import save_loss_curve
        save_loss_curve(rs.history, out / f"{obj.name}_loss.png", f"{obj.name} (step {rs.step})")
        ckpt_cost[0] = time.time() - t_ckpt

    def snapshot():
        if rank == 0:
            emas.save_snapshot(out / "snapshots" / f"{obj.name}-{rs.nimg:010d}.safetensors", rs.nimg)

    start = RunState(**asdict(rs))
    t_loop = last_ckpt = last_stats = last_probe = time.time()
    window: list[float] = []
    first_rate_logged = False
    next_snapshot = (rs.nimg // cfg.snapshot_every + 1) * cfg.snapshot_every if cfg.snapshot_every else None
    model.train()
    last_step = min(cfg.steps, cfg.stop_at) if cfg.stop_at > 0 else cfg.steps
    headroom = 0.0      # the last checkpoint's cost, the same on every rank
    stop_now = False
    with StopSignal() as stop:
        while rs.step < last_step and rs.elapsed + headroom < budget and not stop_now:
            lv = _train_step(obj, net, opt, rs.step, gen, device, rs.amp)
            if not math.isfinite(lv):
                raise FloatingPointError(f"{obj.name} loss became {lv} at step {rs.step + 1}; lower the learning rate")
            rs.step += 1
            rs.nimg += obj.batch * world
            emas.update(model, rs.nimg, obj.batch * world)
            rs.history.append((rs.step, lv))
            window.append(lv)
            rs.elapsed, asked, headroom = from_rank0((start.elapsed + time.time() - t0, float(stop.asked),
                                                      ckpt_cost[0]), world, device)
            stop_now = asked > 0
            rate = (rs.nimg - start.nimg) / max(time.time() - t_loop, 1e-9)   # training alone, not the set-up
            if not first_rate_logged and rs.step - start.step == 20:
                log(f"{obj.name}: {rate:.1f} images/s ({rs.amp}, {torch.get_num_threads()} threads, {device})")
                first_rate_logged = True
            if bar is not None:
                bar.update(1)
                if rs.step % 10 == 0:
                    bar.set_postfix(loss=f"{sum(window[-100:]) / len(window[-100:]):.4f}", ips=f"{rate:.1f}",
                                    **obj.postfix(rs.step), refresh=False)
            now = time.time()
            if next_snapshot is not None and rs.nimg >= next_snapshot:
                snapshot()
                next_snapshot += cfg.snapshot_every
            if now - last_stats > cfg.stats_every:
                stats.write(step=rs.step, nimg=rs.nimg, elapsed=round(rs.elapsed, 1), loss=sum(window) / len(window),
                            images_per_s=round(rate, 2), amp=rs.amp, lr=obj.lr(rs.step), **obj.terms())
                window, last_stats = [], now
            if cfg.probe_every and now - last_probe > cfg.probe_every and rank == 0:
                t_probe = time.time()
                stats.write(step=rs.step, nimg=rs.nimg, probe=obj.probe(emas.model_of(0)),
                            probe_seconds=round(time.time() - t_probe, 1))
                last_probe = time.time()
            if now - last_ckpt > cfg.ckpt_every:
                checkpoint()
                if next_snapshot is None:
                    snapshot()
                last_ckpt = time.time()
    if stop_now and rank == 0:
        log(f"{obj.name}: stopping at step {rs.step}, as asked; the same command goes on from here")
    checkpoint()
    if next_snapshot is None:
        snapshot()
    if bar is not None:
        bar.close()
    if world > 1:
        dist.barrier()
    return ckpt_path
