"""`humus bench`: every stage of the box measured on this machine, figures printed (and JSON).

Stages are measured side by side in one run; medians are quoted, p99 where tails matter.
  engine      per denoise step latency, images/s at the shipped step counts (batch 1), and the same
              network through torch eager (when the `train` extra is installed) for the ratio
  stages      capture, preprocess, postprocess, upscale, dissolve, compose, display upload, DMX send
  realtime    display fps and missed frames at the display size while the worker generates nonstop,
              DMX refresh jitter from the box's own sender over the same run
  trigger     trigger-to-first-visible-change latency (filtered presence flips -> a changed frame)
  flops       FLOPs per image from the ONNX graph, and what a Jetson Orin Nano can afford
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from firmware.bench.cost import _stats, _timeit, jetson_estimate, onnx_cost
from firmware.generate.conditions import Conditions


def bench_engine(model, net, engine, seconds: float) -> dict:
    x = np.random.default_rng(0).standard_normal(net.inputs["x"]).astype(np.float32)
    out = {"engine": engine.describe(), "steps": {}}
    for steps in sorted(net.steps):
        sig = net.sigmas(steps)
        per_step = [_stats(_timeit(lambda s=s: engine.denoise(x, s, Conditions(0.5)), seconds / 2))
                    for s in sig]
        total_ms = sum(p["median_ms"] for p in per_step)
        out["steps"][steps] = {"per_step_median_ms": [round(p["median_ms"], 3) for p in per_step],
                               "images_per_s": 1000.0 * net.batch / total_ms}
    default = net.default_steps
    out["images_per_s"] = out["steps"][default]["images_per_s"]
    out["default_steps"] = default
    return out


def bench_torch(model_dir: Path, network: str, seconds: float, checkpoint: str | None = None) -> dict:
    """The same network through torch eager, in a separate process (the firmware never imports
    torch): `python -m export.torch_eager` prints one JSON line."""
    import subprocess
    try:
        import importlib.util
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("export") is None:
            return {"skipped": "torch (the train extra) is not installed"}
    except ValueError:
        return {"skipped": "torch not importable"}
    extra = ["--checkpoint", checkpoint] if checkpoint else []
    r = subprocess.run([sys.executable, "-m", "export.torch_eager", "--model", str(model_dir),
                        "--network", network, "--seconds", str(seconds), *extra],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        return {"skipped": f"torch eager failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def bench_stages(config, model, seconds: float) -> dict:
    from firmware.clock import RealClock
    from firmware.devices.camera.sim import SimCamera
    from firmware.devices.display.table import open_display
    from firmware.devices.dmx.sim import SimDmxTransport
    from firmware.render import noise as nz
    from firmware.render.compositor import Compositor
    from firmware.show.lights import LightLevel, build_universe
    from firmware.show.machine import Cue, State

    W, H = config.display.width, config.display.height
    side = model.resolution[1] if model else 64
    from firmware.render.camera_picture import bounded_camera
    cam = SimCamera(bounded_camera(config.camera if config.camera.type == "sim" else   # as the box opens it
                                   type(config).model_fields["camera"].default_factory(), config.display)[0],
                    RealClock())
    comp = Compositor(W, H, config.show.layout, side, config.show.sigma_peak)
    frame = cam.latest().image
    camera_full = nz.cover(frame, W, H)
    vn = nz.make_visitor_noise(1, comp.tiles, W, H, (side, side))
    pred = np.random.default_rng(0).uniform(-1, 1, (len(comp.tiles), 3, side, side)).astype(np.float32)
    gen_u8 = [nz.to_u8(p) for p in pred]
    display = open_display(config.display, RealClock())
    out = display.present  # the upload to the projector (pygame blit+flip, or headless copy)
    dmx = SimDmxTransport(max_frames=1000)
    cue = Cue(State.IMMERSION, 0.5, 1, 3.0, 1.0, 0.0, 0.0, 0.95)
    k = [0]

    def compose_uncached():
        k[0] += 1  # new image every time: the worst case, an upscale per frame
        comp.compose(Cue(State.EMERGENCE, 0.5, 1, 1.0, 0, 0, 0.5, 0.7), camera_full, camera_full,
                     vn.screen_u8, gen_u8, ("bench", k[0]))
    t = lambda fn: _stats(_timeit(fn, seconds / 8))  # noqa: E731
    res = {
        "capture": t(lambda: nz.cover(cam.render(time.perf_counter()), W, H)),
        "visitor_noise": t(lambda: nz.make_visitor_noise(2, comp.tiles, W, H, (side, side))),
        "preprocess": t(lambda: nz.from_u8(nz.resize(camera_full, side, side, smooth=False))),
        "postprocess": t(lambda: [nz.to_u8(p) for p in pred]),
        "upscale": t(lambda: [nz.model_to_tile(g, tile, side) for g, tile in zip(gen_u8, comp.tiles)]),
        "dissolve": t(lambda: nz.dissolve(camera_full, vn.screen_u8, 3.0, out=comp.frame)),
        "compose_immersion": t(lambda: comp.compose(cue, camera_full, camera_full, vn.screen_u8, None, None)),
        "compose_emergence_new_image": t(compose_uncached),
        "display_upload": t(lambda: out(comp.frame)),
        "dmx_patch_and_send": t(lambda: dmx.send(build_universe(config.lights.fixtures,
                                                                 LightLevel(0.5, (1, .5, .2), 0.0)))),
    }
    display.close()
    return {k: {"median_ms": round(v["median_ms"], 3), "p99_ms": round(v["p99_ms"], 3)} for k, v in res.items()}


def bench_realtime(config, seconds: float) -> dict:
    """The real box loop at display size with the worker generating nonstop (a new visitor job
    whenever the last finished); fps, missed frames and DMX jitter over the same run."""
    from firmware.box.conductor import Box
    from firmware.clock import RealClock
    from firmware.generate.worker import VisitorJob
    from firmware.appliance.statusfile import StatusWriter
    from firmware.runner import Stopper, run_realtime
    from firmware.status_publisher import StatusPublisher

    if config.dmx.type == "sim":
        # Measure the deployed path: a real transport (Art-Net to a loopback port nobody listens on)
        # driven from its own process, not the recording sim sink.
        from firmware.config.devices import DmxArtNet
        config = config.model_copy(update={"dmx": DmxArtNet(type="artnet", host="127.0.0.1", port=16454)})
    box = Box(config, RealClock(), threaded=True)
    if box.session.engine is None:
        box.close()
        return {"skipped": "no model"}
    stop = Stopper()
    import threading
    visitor = [10_000]

    def feeder():
        eps = np.random.default_rng(0).standard_normal(
            (len(box.compositor.tiles), box.session.model.channels, *box.session.model.resolution)).astype(np.float32)
        while not stop.event.is_set():
            r = box.session.worker.visitor_result.get()
            if r is None or r.done:
                visitor[0] += 1
                session = box.session
                session.worker.submit_visitor(VisitorJob(visitor[0], eps, session.sigmas, session.net.sampler,
                                                         Conditions(0.5), fresh=session.net.fresh))
            stop.event.wait(0.002)
    f = threading.Thread(target=feeder, daemon=True)
    images0 = box.session.worker.images_done
    f.start()
    # The status file is published as on the box (the same publisher as run and soak, to a scratch
    # path), so the loop's figures include what publishing costs the frame.
    scratch = tempfile.TemporaryDirectory(prefix="humus-bench-")
    status = StatusPublisher(StatusWriter(Path(scratch.name) / "status.json"))
    try:
        stats = run_realtime(box, seconds, status=status, stopper=stop)
    finally:
        stop.event.set()
        f.join()
        box.close()
        scratch.cleanup()
    iv = sorted(box.frame_times)
    period = 1.0 / config.display.fps
    send = box.devices.dmx.send_times
    dmx_iv = [b - a for a, b in zip(send, send[1:])]
    jit = sorted(abs(i - box.devices.dmx.period) for i in dmx_iv)
    pct = lambda s, q: s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))] if s else float("nan")  # noqa
    return {"display": f"{config.display.width}x{config.display.height}@{config.display.fps:g}",
            "fps": stats["fps"], "frames": stats["frames"], "missed": stats["missed"],
            "missed_pct": 100.0 * stats["missed"] / max(1, stats["frames"] + stats["missed"]),
            "frame_interval_p99_ms": pct(iv, 0.99) * 1e3,
            "late_frames_pct": 100.0 * sum(1 for i in iv if i > 1.5 * period) / max(1, len(iv)),
            "images_per_s_while_displaying": (box.session.worker.images_done - images0) / stats["seconds"],
            "dmx_sender": f"{box.devices.dmx.name}, {box.devices.dmx.priority}",
            "dmx_rate_hz": (len(send) - 1) / (send[-1] - send[0]) if len(send) > 1 else 0.0,
            "dmx_jitter_p50_ms": pct(jit, 0.5) * 1e3, "dmx_jitter_p99_ms": pct(jit, 0.99) * 1e3}


def bench_trigger(config, trials: int = 100) -> dict:
    """Filtered presence flips to 'present' -> how long until a frame on the projector differs.

    The box runs its real loop on the real clock; the latency is the time from the show's trigger
    decision to the first presented frame whose mean differs from the idle picture by >= 0.5 levels.
    100 trials, so that the p99 is a percentile and not simply the one slowest trial (as it was at 40).
    """
    from firmware.box.conductor import Box
    from firmware.clock import RealClock
    from firmware.runner import Cadence

    sys.setswitchinterval(0.0005)  # as run_realtime sets it for the real loop
    cfg = config.model_copy(update={"show": config.show.model_copy(update={"dwell_s": 0.0})})
    box = Box(cfg, RealClock(), threaded=True)
    period = 1.0 / cfg.display.fps
    from firmware.devices.presence.interface import Reading
    rng = np.random.default_rng(0)
    lat = []
    try:
        for i in range(trials):
            box.rewind()
            box.devices.presence.latest = lambda: Reading(10.0, box.clock.now())  # nobody near
            box.session.generation.hold_drift()  # the idle picture stands still, so any change is ours
            # Frames come on the real loop's cadence (a frame every period, not a period after each
            # frame ends), so the figure is what a visitor waits, not the bench's own pacing.
            cadence = Cadence(box.clock, period, time.sleep)
            # A real idle lasts at least the cooldown: long enough to have the next visitor's noise
            # ready (the box prepares it while idle). Wait for that, as the venue would.
            deadline = time.perf_counter() + 3.0
            while box.session.generation.noise_visitor != box.visit.show.visitor + 1 and time.perf_counter() < deadline:
                box.step()
                cadence.wait_next()
            for k in range(3):
                if k:
                    cadence.wait_next()
                idle = box.step().copy()
            # The visitor arrives at a random moment within the frame before the next one is due; the
            # loop notices at that next frame.
            arrival = cadence.next_t + period - rng.uniform(0, period)
            time.sleep(max(0.0, arrival - box.clock.now()))
            t0 = time.perf_counter()
            box.devices.presence.latest = lambda: Reading(0.5, box.clock.now())
            while True:
                cadence.wait_next()
                frame = box.step()
                # The frame is on its way to the projector once step() returns (the sinks have it);
                # comparing it with the idle picture is the bench's own work (~10 ms for a 720p frame
                # on a 2-core CPU), not the visitor's wait, so the clock stops before it.
                shown = time.perf_counter()
                if np.abs(frame.astype(np.int16) - idle).mean() >= 0.5:
                    lat.append(shown - t0)
                    break
                if shown - t0 > 2.0:
                    lat.append(float("inf"))
                    break
    finally:
        box.close()
    s = sorted(lat)
    return {"trials": trials, "median_ms": statistics.median(s) * 1e3,
            "p99_ms": s[min(len(s) - 1, int(0.99 * (len(s) - 1) + 0.5))] * 1e3,
            "latencies_ms": [round(v * 1e3, 1) for v in s]}


def run_bench(args) -> int:
    from firmware.config.devices import DisplayHeadless
    from firmware.config.load import load_config_or_exit
    from firmware.generate.engines import open_engine
    from firmware.generate.manifest import ModelError, load_model_dir

    config = load_config_or_exit(getattr(args, "config", None))
    d = config.display
    config = config.model_copy(update={"display": DisplayHeadless(width=d.width, height=d.height,
                                                                  fps=d.fps)})
    seconds = args.seconds
    report: dict = {"machine": {"cpus": __import__("os").cpu_count(), "python": sys.version.split()[0]}}
    try:
        model = load_model_dir(config.model.dir)
        net = model.network(config.model.network)
        engine = open_engine(model, config.model.network, config.model.engine,
                             cache_dir=config.model.engine_cache, threads=config.model.threads)
    except (ModelError, Exception) as exc:
        print(f"humus bench: no model ({exc})", file=sys.stderr)
        return 2
    report["model"] = {"name": model.name, "network": net.name, "resolution": list(model.resolution)}
    print(f"== engine: {engine.describe()}, {net.name} {model.resolution[0]}x{model.resolution[1]}")
    report["engine"] = bench_engine(model, net, engine, seconds)
    for k, v in report["engine"]["steps"].items():
        print(f"  {k} steps: per step {v['per_step_median_ms']} ms -> {v['images_per_s']:.1f} images/s")
    report["images_per_s"] = report["engine"]["images_per_s"]
    from firmware.bench.cascade import bench_upsampler, cascade_estimate, output_images_per_s, windowed, x_display
    from firmware.generate.providers import for_stage
    up = report["upsampler"] = bench_upsampler(model, seconds, config.model.threads, for_stage(engine.providers))
    up_ms = up.get("median_ms") if up else None
    report["output_images_per_s"] = {k: output_images_per_s(v["per_step_median_ms"], up_ms)
                                     for k, v in report["engine"]["steps"].items()}
    if up is not None:
        print(f"  upsampler {model.resolution[0]} -> {model.output_resolution[0]}: "
              + (f"{up_ms:.2f} ms per image on {', '.join(up['providers'])}; " if up_ms
                 else f"{up.get('skipped')}; ")
              + ", ".join(f"{k} steps + upsampler {v:.1f} images/s" for k, v in report["output_images_per_s"].items()))
    if not args.no_torch:
        report["torch_eager"] = bench_torch(model.dir, net.name, seconds / 2, args.torch_checkpoint)
        te = report["torch_eager"]
        if te and "per_step_median_ms" in te:
            ort_ms = statistics.median(report["engine"]["steps"][net.default_steps]["per_step_median_ms"])
            te["speedup_engine_vs_torch"] = te["per_step_median_ms"] / ort_ms
            print(f"  torch eager {te['torch']} ({te['what']}): {te['per_step_median_ms']:.2f} ms per step "
                  f"({te['speedup_engine_vs_torch']:.2f}x slower than {engine.kind})")
        else:
            print(f"  torch eager: {te.get('skipped')}")
    engine.close()
    cost = onnx_cost(net.path)
    if cost:
        report["flops"] = f = jetson_estimate(cost[0] / net.batch, cost[1] / net.batch,
                                              net.default_steps, model.resolution[1])
        print(f"== FLOPs: {f['flops_per_eval_g']:.3f} GFLOP and {f['mbytes_per_eval_fp16']:.1f} MB (fp16) "
              f"per eval, {f['flops_per_image_g']:.3f} GFLOP per image; Orin Nano estimate "
              f"{f['eval_ms']:.2f} ms per eval ({f['bound']}-bound), {f['orin_nano_images_per_s']:.0f} "
              f"images/s, {f['max_side_at_30_images_per_s']} px square at 30 images/s")
    report["cascade_flops"] = cf = cascade_estimate(model, net, net.default_steps)
    if cf:
        print(f"== per finished {cf['output'][0]}x{cf['output'][1]} image: {cf['gflop_per_image']:.3f} GFLOP "
              f"({cf['generator_gflop_per_image']:.3f} generator, {cf['upsampler_gflop']:.3f} upsampler); "
              f"Orin Nano estimate {cf['orin_nano_ms_per_image']:.2f} ms, {cf['orin_nano_images_per_s']:.0f} images/s")
    print(f"== stages at {d.width}x{d.height} (median / p99 ms)")
    report["stages"] = bench_stages(config, model, seconds)
    for k, v in report["stages"].items():
        print(f"  {k:30s} {v['median_ms']:8.2f} {v['p99_ms']:8.2f}")
    print(f"== realtime loop at {d.width}x{d.height}@{d.fps:g} while generating ({seconds:g} s)")
    report["realtime"] = rt = bench_realtime(config, seconds)
    if "fps" in rt:
        print(f"  display {rt['fps']:.1f} fps, missed {rt['missed']} ({rt['missed_pct']:.2f}%), "
              f"frame interval p99 {rt['frame_interval_p99_ms']:.1f} ms; generating "
              f"{rt['images_per_s_while_displaying']:.1f} images/s; DMX ({rt['dmx_sender']}) "
              f"{rt['dmx_rate_hz']:.2f} Hz, "
              f"jitter p50 {rt['dmx_jitter_p50_ms']:.3f} ms p99 {rt['dmx_jitter_p99_ms']:.3f} ms")
    if getattr(args, "window", False):
        try:
            with x_display(d.width, d.height) as (where, kind):
                report["realtime_window"] = rw = bench_realtime(windowed(config), seconds)
                rw["x_display"] = f"{where} ({kind})"
            print(f"== the same loop in a real X11 window on {rw['x_display']}")
            if "fps" in rw:
                print(f"  display {rw['fps']:.1f} fps, missed {rw['missed']} ({rw['missed_pct']:.2f}%), "
                      f"frame interval p99 {rw['frame_interval_p99_ms']:.1f} ms; generating "
                      f"{rw['images_per_s_while_displaying']:.1f} images/s")
        except RuntimeError as exc:
            report["realtime_window"] = {"skipped": str(exc)}
            print(f"== window: skipped ({exc})")
    report["trigger"] = tr = bench_trigger(config)
    print(f"== trigger to first visible change: median {tr['median_ms']:.1f} ms, p99 {tr['p99_ms']:.1f} ms "
          f"({tr['trials']} trials)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))
        print(f"humus bench: wrote {args.json}")
    return 0
