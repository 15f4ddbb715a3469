"""The one training loop (export/loop.py): exact resume for every stage, post-hoc EMA, stats.jsonl."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

from export import phema  # noqa: E402
from export.distill import DistillConfig, distill  # noqa: E402
from export.footage import FootageConfig, build_cache  # noqa: E402
from export.loop import machine_key, measure_amp  # noqa: E402
from export.train import TrainConfig, train  # noqa: E402
from export.upsampler import UpsamplerConfig, train_upsampler  # noqa: E402


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Two subjects of coloured discs at 32 px (the upsampler crops 16 -> 32 of them)."""
    root = tmp_path_factory.mktemp("loop")
    rng = np.random.default_rng(0)
    for subject, color in (("plums", (120, 30, 90)), ("pears", (160, 170, 40))):
        for g in range(2):
            d = root / "src" / subject / f"grade{g}"
            d.mkdir(parents=True)
            for i in range(5):
                img = np.full((40, 40, 3), 250, np.uint8)
                yy, xx = np.mgrid[:40, :40]
                cx, cy = rng.uniform(12, 28, 2)
                img[(xx - cx) ** 2 + (yy - cy) ** 2 < 80] = color
                img[..., 0] = np.clip(img[..., 0].astype(int) - 30 * g, 0, 255)
                Image.fromarray(img).save(d / f"{i}.png")
    (root / "src" / "footage.toml").write_text('labeller = "grade-folder"\n')   # the grades are the decay labels
    out = root / "cache.npz"
    build_cache([root / "src"], out, FootageConfig(resolution=32, holdout=0.2, dedup_threshold=0))
    return out


FAST = dict(threads=1, amp="fp32", ckpt_every=1e9, seed=3)


# Runs in pieces stop with stop_at: `steps` is the plan the schedules are laid over, the same in every piece.
def _teacher(cache, run, stop_at, steps=8, **kw):
    return train(cache, run, TrainConfig(preset="tiny", batch=4, steps=steps, stop_at=stop_at, dropout=0.1,
                                         **FAST, **kw), progress=False)


def _student(cache, run, teacher, stop_at):
    return distill(cache, teacher, run, DistillConfig(batch=4, steps=8, stop_at=stop_at, stages=2, dropout=0.1,
                                                      **FAST), progress=False)


def _upsampler(cache, run, stop_at):
    return train_upsampler(cache, run, UpsamplerConfig(batch=3, crop=32, width=8, blocks=1, steps=8, stop_at=stop_at,
                                                       **FAST), progress=False)


def _same(a: dict, b: dict, where: str) -> None:
    """Every tensor in two checkpoints equal, bit for bit (nested dicts and lists walked)."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")


def _load(p: Path) -> dict:
    return torch.load(p, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("stage", ["teacher", "student", "upsampler"])
def test_a_resumed_run_is_bit_identical_to_one_that_never_stopped(cache, tmp_path, stage):
    teacher = _teacher(cache, tmp_path / "t", 0, steps=6) if stage == "student" else None

    def go(run, steps):
        if stage == "teacher":
            return _teacher(cache, run, steps)
        if stage == "student":
            return _student(cache, run, teacher, steps)
        return _upsampler(cache, run, steps)

    whole = _load(go(tmp_path / "whole", 0))
    go(tmp_path / "pieces", 3)
    go(tmp_path / "pieces", 5)     # resumes at 3 ...
    pieces = _load(go(tmp_path / "pieces", 8))   # ... and at 5
    assert whole["step"] == pieces["step"] == 8
    for key in ("model", "emas", "opt", "rng"):
        _same(whole[key], pieces[key], key)
    assert [v for _, v in whole["history"]] == [v for _, v in pieces["history"]]
    # and the weights did move: a loop that trains nothing would pass the comparison too
    first = _load(go(tmp_path / "short", 1))
    assert any(not torch.equal(first["model"][k], whole["model"][k]) for k in whole["model"])


def test_a_different_seed_gives_a_different_run(cache, tmp_path):
    a = _load(_teacher(cache, tmp_path / "a", 0, steps=3))
    b = _load(train(cache, tmp_path / "b", TrainConfig(preset="tiny", batch=4, steps=3, dropout=0.1,
                                                       **{**FAST, "seed": 4}), progress=False))
    assert any(not torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_measuring_autocast_leaves_the_run_untouched(cache, tmp_path):
    from export.footage import load_cache
    from export.network import PRESETS, UNetConfig
    from export.train import TeacherObjective, subject_names

    ds = load_cache(cache).split(heldout=False)
    names = subject_names(ds)
    net_cfg = UNetConfig.from_dict({**PRESETS["tiny"].to_dict(), "subjects": len(names), "dropout": 0.1})
    obj = TeacherObjective(ds, TrainConfig(batch=4), torch.device("cpu"), net_cfg, names)
    opt = obj.optimizer()
    gen = torch.Generator().manual_seed(0)
    before = ({k: v.clone() for k, v in obj.model.state_dict().items()}, gen.get_state(), torch.get_rng_state())
    rates = measure_amp(obj, obj.model, opt, gen, torch.device("cpu"), steps=1)
    assert set(rates) == {"fp32", "bf16"} and all(r > 0 for r in rates.values())
    _same(before[0], obj.model.state_dict(), "model")
    assert torch.equal(before[1], gen.get_state()) and torch.equal(before[2], torch.get_rng_state())
    assert opt.state_dict()["state"] == {}


def test_stats_and_snapshots_are_written(cache, tmp_path):
    run = tmp_path / "s"
    train(cache, run, TrainConfig(preset="tiny", batch=4, steps=12, snapshot_every=16, stats_every=0,
                                  threads=1, amp="fp32"), progress=False)
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and rows[-1]["nimg"] == 48 and all(r["images_per_s"] > 0 for r in rows)
    snaps = phema.list_snapshots(run / "snapshots", "teacher")
    assert [int(p.stem.split("-")[1]) for p in snaps] == [16, 32, 48]


def test_power_ema_width_and_exponent_agree():
    for std in (0.01, 0.05, 0.1, 0.2):
        assert phema.exp_to_std(phema.std_to_exp(std)) == pytest.approx(std, rel=1e-9)
    assert phema.std_to_exp(0.05) > phema.std_to_exp(0.1) > 0   # narrower profile, later weights


def test_ema_averages_read_from_a_cpu_checkpoint_live_on_the_models_device():
    # A run checkpointed on a GPU is read back onto the CPU; resuming it there crashed at the first
    # EMA update (cuda and cpu tensors in one lerp). The meta device stands in for cuda here.
    import torch

    cpu_model = torch.nn.Linear(3, 2)
    saved = phema.PowerEMA(cpu_model, [0.1, 0.05]).state_dict()
    model = torch.nn.Linear(3, 2, device="meta")
    for load in (lambda e: e.load_state_dict(saved), lambda e: e.reset_to(cpu_model.state_dict())):
        emas = phema.PowerEMA(model, [0.1, 0.05])
        load(emas)
        assert {v.device.type for a in emas.avgs for v in a.values()} == {"meta"}
        emas.update(model, nimg=64, batch=32)


def test_posthoc_reconstruction_reproduces_a_stored_ema_and_interpolates(cache, tmp_path):
    """Asked for a width that was kept, at the last snapshot's time, the solve must give that EMA back;
    a width in between must land between the two kept ones."""
    run = tmp_path / "p"
    ckpt = train(cache, run, TrainConfig(preset="tiny", batch=4, steps=20, snapshot_every=16,
                                         ema_stds=(0.10, 0.05), threads=1, amp="fp32"), progress=False)
    st = _load(ckpt)
    snaps = phema.list_snapshots(run / "snapshots", "teacher")
    for i, std in enumerate((0.10, 0.05)):
        rebuilt, info = phema.reconstruct(snaps, std)
        assert info["nimg"] == 80
        for k, v in st["emas"]["avgs"][i].items():
            # snapshots are fp16: equal to fp16 rounding
            assert torch.allclose(rebuilt[k], v.half().float(), atol=2e-3), k
    mid, _ = phema.reconstruct(snaps, 0.075)
    a, b = st["emas"]["avgs"][0], st["emas"]["avgs"][1]
    k = next(k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k]))
    lo, hi = torch.minimum(a[k], b[k]) - 1e-2, torch.maximum(a[k], b[k]) + 1e-2
    assert bool(((mid[k] >= lo) & (mid[k] <= hi)).float().mean() > 0.9)


def test_a_repository_state_continues_the_run_and_a_foreign_one_is_left_alone(cache, tmp_path, capsys):
    from export import state

    ckpt = _teacher(cache, tmp_path / "a", 3)
    meta = state.save(ckpt, tmp_path / "repo")
    assert meta["run"]["step"] == 3 and (tmp_path / "repo" / "teacher.safetensors").stat().st_size > 0
    # a clean checkout: an empty run folder continues the stored state ...
    cont = _load(train(cache, tmp_path / "b", TrainConfig(preset="tiny", batch=4, steps=8, stop_at=5, dropout=0.1,
                                                          **FAST), progress=False, state_dir=tmp_path / "repo"))
    assert cont["step"] == 5 and cont["run"]["nimg"] == 20
    assert "continuing the repository's state" in capsys.readouterr().out
    # ... and lands close to the uninterrupted run (the Adam moments were kept in bf16, the EMAs in fp16)
    whole = _load(_teacher(cache, tmp_path / "w", 5))
    diff = max(float((whole["model"][k] - cont["model"][k]).abs().max()) for k in whole["model"])
    assert diff < 1e-2
    # another network does not pick it up
    other = _load(train(cache, tmp_path / "c", TrainConfig(preset="tiny", batch=4, steps=2, dropout=0.1,
                                                           net={"emb": 16}, **FAST),
                        progress=False, state_dir=tmp_path / "repo"))
    assert other["step"] == 2 and "another network" in capsys.readouterr().out


def test_a_damaged_repository_state_names_the_file_and_key(cache, tmp_path):
    from export import state

    state.save(_teacher(cache, tmp_path / "a", 2), tmp_path / "repo")
    meta = json.loads((tmp_path / "repo" / "teacher.json").read_text())
    del meta["opt"]
    (tmp_path / "repo" / "teacher.json").write_text(json.dumps(meta))
    with pytest.raises(state.StateError, match=r"teacher\.json: missing key 'opt'"):
        state.restore(tmp_path / "repo", "teacher", tmp_path / "x" / "teacher.pt")
    (tmp_path / "repo" / "teacher.json").write_text("{not json")
    with pytest.raises(state.StateError, match="teacher.json: unreadable"):
        state.read_meta(tmp_path / "repo", "teacher")
    assert not (tmp_path / "x" / "teacher.pt").exists()


def test_a_state_over_the_repository_limit_is_refused_and_the_old_one_kept(cache, tmp_path, monkeypatch):
    from export import state

    state.save(_teacher(cache, tmp_path / "a", 2), tmp_path / "repo")
    before = (tmp_path / "repo" / "teacher.safetensors").read_bytes()
    monkeypatch.setattr(state, "MAX_BYTES", 1000)
    with pytest.raises(state.StateError, match="over the"):
        state.save(_teacher(cache, tmp_path / "a", 3), tmp_path / "repo")
    assert (tmp_path / "repo" / "teacher.safetensors").read_bytes() == before


def test_posthoc_choice_writes_the_best_width_into_the_checkpoint(cache, tmp_path):
    run = tmp_path / "c"
    ckpt = train(cache, run, TrainConfig(preset="tiny", batch=4, steps=12, snapshot_every=16, **FAST), progress=False)
    # a judge that prefers the narrowest profile (weights closest to the last raw weights)
    last = _load(ckpt)["model"]
    score = lambda m: sum(float((v - last[k]).abs().sum()) for k, v in m.state_dict().items())  # noqa: E731
    r = phema.choose(ckpt, [0.2, 0.05, 0.1], score, log=lambda s: None)
    assert r["best"] == 0.05 and r["scores"][0.05] < r["scores"][0.1] < r["scores"][0.2]
    st = _load(ckpt)
    assert st["posthoc_ema"]["std"] == 0.05
    rebuilt, _ = phema.reconstruct(phema.list_snapshots(run / "snapshots", "teacher"), 0.05)
    assert all(torch.equal(st["ema"][k], rebuilt[k].to(st["ema"][k].dtype)) for k in st["ema"])


def test_the_sharp_upsampler_recipe_trains_and_resumes_exactly(cache, tmp_path, monkeypatch):
    """Perceptual term, patch discriminator (with lazy R1), input blur and student-made inputs: a run in
    pieces equals one that never stopped, the discriminator included."""
    import export.upsampler as up

    def fake_student(images, decay, subjects, model_dir, seed=0):       # a stand-in for the ONNX student
        low = up.area_down(torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0))
        return (low * 0.8).clamp(-1, 1)

    monkeypatch.setattr(up, "student_versions", fake_student)

    def go(run, stop_at):
        cfg = UpsamplerConfig(batch=3, crop=32, width=8, blocks=1, steps=8, stop_at=stop_at, blur=1.0,
                              student_share=0.5, perceptual=0.1, adversarial=0.05, adversarial_after=2, **FAST)
        return _load(train_upsampler(cache, run, cfg, progress=False))

    whole = go(tmp_path / "w", 0)
    go(tmp_path / "p", 4)
    pieces = go(tmp_path / "p", 0)
    for key in ("model", "opt", "rng", "objective"):
        _same(whole[key], pieces[key], key)
    assert "adversary" in whole["objective"]


def _student_model(root: Path, sha: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(json.dumps({"networks": {"student": {"sha256": sha}}}))
    return root


def test_the_student_bank_is_kept_and_made_again_only_for_another_student_seed_or_photographs(
        cache, tmp_path, monkeypatch):
    """The student's versions of the photographs are made once per run folder (they cost minutes on a
    CPU), reused on resume, and made again when the student, the seed or the photographs change, or
    when the kept file is damaged."""
    import export.upsampler as up

    calls = []

    def fake_student(images, decay, subjects, model_dir, seed=0):
        calls.append(str(model_dir))
        low = up.area_down(torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0))
        return (low * 0.8 + 0.01 * seed).clamp(-1, 1)

    monkeypatch.setattr(up, "student_versions", fake_student)
    model = _student_model(tmp_path / "m", "aa" * 32)
    run = tmp_path / "run"

    def go(stop_at, **kw):
        cfg = UpsamplerConfig(**{**dict(batch=3, crop=32, width=8, blocks=1, steps=6, stop_at=stop_at,
                                        student_share=1.0, student_model=str(model), **FAST), **kw})
        return train_upsampler(cache, run, cfg, progress=False)

    go(2)
    bank = run / "student_bank.npz"
    with np.load(bank) as z:
        assert z["bank"].dtype == np.uint8 and z["bank"].shape[1:] == (3, 8, 8)
    assert len(calls) == 1
    go(4)                                                   # resumed: the kept bank, no student call
    assert len(calls) == 1
    _student_model(model, "bb" * 32)                        # another student
    go(5)
    assert len(calls) == 2
    go(6, seed=4)                                           # another seed
    assert len(calls) == 3
    bank.write_bytes(b"not a bank")                         # damaged: made again, not trusted
    go(6, steps=7)
    assert len(calls) == 4 and np.load(bank)["bank"].dtype == np.uint8


def test_student_inputs_without_a_student_name_the_manifest(cache, tmp_path):
    cfg = UpsamplerConfig(batch=3, crop=32, width=8, blocks=1, steps=2, student_share=0.5,
                          student_model=str(tmp_path / "none"), **FAST)
    with pytest.raises(ValueError, match=r"none/manifest\.json: no networks\.student\.sha256"):
        train_upsampler(cache, tmp_path / "run", cfg, progress=False)


def test_a_run_starts_from_an_upsampler_onnx_file_alone(cache, tmp_path):
    """--init-onnx takes the stage's .onnx file itself (the rest of the model need not travel), and reads
    the width and depth from it; a file that is not ONNX is named."""
    import warnings

    from export.upsampler import Upsampler, weights_from_onnx

    torch.manual_seed(5)
    net = Upsampler(8, 2)
    with torch.no_grad():
        net.tail.weight.normal_()
    path = tmp_path / "upsampler.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, 8, 8),), str(path), input_names=["image"],
                          output_names=["upsampled"], opset_version=17, dynamo=False)
    got = weights_from_onnx(path)
    assert all(torch.equal(got[k], v) for k, v in net.state_dict().items())
    cfg = UpsamplerConfig(batch=3, crop=32, steps=1, init_onnx=str(path), **FAST)    # width 48, blocks 6 asked
    st = _load(train_upsampler(cache, tmp_path / "run", cfg, progress=False))
    assert st["net"] == {"width": 8, "blocks": 2}
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="bad.onnx: not an ONNX file"):
        weights_from_onnx(bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_sharp_upsampler_recipe_trains_on_a_gpu(cache, tmp_path, monkeypatch):
    """Every term (student inputs, blur, perceptual, patch GAN) and the draws run on the GPU."""
    import export.upsampler as up

    monkeypatch.setattr(up, "student_versions", lambda images, decay, subjects, model_dir, seed=0: up.area_down(
        torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)))
    cfg = UpsamplerConfig(batch=3, crop=32, width=8, blocks=1, steps=4, blur=1.0, student_share=0.5,
                          perceptual=0.1, adversarial=0.05, adversarial_after=1,
                          **{**FAST, "device": "cuda", "amp": "bf16"})
    st = _load(train_upsampler(cache, tmp_path / "run", cfg, progress=False))
    assert st["step"] == 4 and all(torch.isfinite(v).all() for v in st["model"].values())
    assert st["model"]["tail.weight"].abs().sum() > 0          # it moved from its zero start


def test_input_blur_blurs_each_image_by_its_own_amount():
    from export.upsampler import blur_each

    x = torch.zeros(2, 3, 9, 9)
    x[:, :, 4, 4] = 1.0
    y = blur_each(x, torch.tensor([0.0, 1.0]))
    assert torch.equal(y[0], x[0])                       # sigma 0: untouched
    assert float(y[1, 0, 4, 4]) < 0.2 and abs(float(y[1].sum()) - 3.0) < 1e-5   # spread, mass kept


def test_ect_with_an_adversarial_term_resumes_exactly(cache, tmp_path):
    teacher = _teacher(cache, tmp_path / "t", 0, steps=4)

    def go(run, stop_at):
        cfg = DistillConfig(batch=4, steps=6, stop_at=stop_at, stages=2, adversarial=0.1, adversarial_sigma=0.01,
                            **FAST)
        return _load(distill(cache, teacher, run, cfg, progress=False))

    whole = go(tmp_path / "w", 0)
    go(tmp_path / "p", 3)
    pieces = go(tmp_path / "p", 0)
    for key in ("model", "opt", "rng", "objective"):
        _same(whole[key], pieces[key], key)
    d = whole["objective"]["adversary"]["d"]
    fresh = __import__("export.adversarial", fromlist=["PatchDiscriminator"]).PatchDiscriminator().state_dict()
    assert any(not torch.equal(d[k], fresh[k]) for k in d if d[k].is_floating_point())   # D really trained


def test_autoguided_targets_move_the_student_differently_and_resume_exactly(cache, tmp_path):
    teacher = _teacher(cache, tmp_path / "t", 0, steps=6)
    guide = _teacher(cache, tmp_path / "g", 0, steps=2)          # a weaker version of the same teacher

    def go(run, stop_at, guidance):
        cfg = DistillConfig(batch=4, steps=5, stop_at=stop_at, stages=2, guidance=guidance,
                            guide=str(guide) if guidance else "", **FAST)
        return _load(distill(cache, teacher, run, cfg, progress=False))

    whole = go(tmp_path / "w", 0, 1.0)
    go(tmp_path / "p", 2, 1.0)
    _same(whole["model"], go(tmp_path / "p", 0, 1.0)["model"], "model")
    plain = go(tmp_path / "plain", 0, 0.0)
    assert any(not torch.equal(plain["model"][k], whole["model"][k]) for k in plain["model"])
    assert whole["guide"] == str(guide)
    with pytest.raises(ValueError, match="--guide"):
        distill(cache, teacher, tmp_path / "x", DistillConfig(batch=4, steps=1, guidance=1.0, **FAST), progress=False)


def test_autocast_is_chosen_again_on_another_machine_and_kept_on_the_same(cache, tmp_path, monkeypatch):
    """A run resumed where bf16 is emulated (no AVX-512 BF16) must not keep a choice made where it was
    native: it measures again. On the same machine the choice stands, unmeasured (exact resume)."""
    import export.loop as loop

    calls = []
    rates = {"fp32": 2.0, "bf16": 1.0}
    monkeypatch.setattr(loop, "measure_amp", lambda *a, **k: calls.append(1) or dict(rates))
    monkeypatch.setattr(loop, "machine_key", lambda device: "cpu:studio")
    run = tmp_path / "m"
    auto = {**FAST, "amp": "auto"}

    def go(stop_at, **kw):
        p = train(cache, run, TrainConfig(preset="tiny", batch=4, steps=6, stop_at=stop_at, **{**auto, **kw}),
                  progress=False)
        return _load(p)["run"]

    st = go(2)                                                           # fresh: measured
    assert (st["amp"], st["amp_machine"], len(calls)) == ("fp32", "cpu:studio", 1)
    assert go(3)["amp"] == "fp32" and len(calls) == 1                   # same machine: kept, not measured
    monkeypatch.setattr(loop, "machine_key", lambda device: "cpu:emulated-bf16")
    rates.update(fp32=1.0, bf16=3.0)
    st = go(4)
    assert (st["amp"], st["amp_machine"], len(calls)) == ("bf16", "cpu:emulated-bf16", 2)
    st = go(5, amp="fp32")                                               # an explicit choice wins
    assert (st["amp"], len(calls)) == ("fp32", 2)


def test_machine_key_names_the_cpu_and_its_bf16_support():
    key = machine_key(torch.device("cpu"))
    assert key.startswith("cpu:") and ("bf16" in key) and key.endswith(f"{torch.get_num_threads()} threads")


def test_sigterm_stops_after_the_step_with_a_checkpoint_and_the_run_goes_on_exactly(cache, tmp_path, monkeypatch):
    """A studio stops a run at any moment (Ctrl-C, systemd's SIGTERM): the step in hand finishes, the
    checkpoint is written, and the same command later is bit-identical to a run that never stopped."""
    import os
    import signal

    import export.loop as loop

    whole = _load(_teacher(cache, tmp_path / "whole", 0))
    real, calls = loop._train_step, []

    def stepping(*a, **k):
        calls.append(1)
        out = real(*a, **k)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)    # arrives mid-run, as from `systemctl stop`
        return out

    monkeypatch.setattr(loop, "_train_step", stepping)
    before = signal.getsignal(signal.SIGTERM)
    stopped = _load(_teacher(cache, tmp_path / "pieces", 0))
    assert stopped["step"] == 3 and signal.getsignal(signal.SIGTERM) is before   # handlers given back
    monkeypatch.setattr(loop, "_train_step", real)
    pieces = _load(_teacher(cache, tmp_path / "pieces", 0))
    assert pieces["step"] == whole["step"] == 8
    for key in ("model", "emas", "opt", "rng"):
        _same(whole[key], pieces[key], key)


def test_the_detail_discriminator_learns_what_an_upsampler_misses():
    """The upsampler's D judges only the detail a stage adds, blind to each image's colour and brightness,
    and grain of a tenth of the picture's amplitude on a bright, coloured picture is enough to learn from."""
    import torch.nn.functional as F

    from export.adversarial import Adversary, detail
    from export.upsampler import DISCRIMINATORS

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1
    shift = torch.rand(4, 3, 1, 1, generator=gen) - 0.5
    assert (detail(x + shift) - detail(x)).abs().max() < 1e-5 and detail(x).abs().mean() > 0.1
    torch.manual_seed(0)
    adv, losses = Adversary(**DISCRIMINATORS["detail"]), []
    for step in range(60):
        smooth = F.interpolate(torch.rand(8, 3, 8, 8, generator=gen) * 1.6 - 0.8, scale_factor=8, mode="bilinear")
        real = smooth + 0.08 * torch.randn(smooth.shape, generator=gen)
        adv.step(real, smooth, step, gen)
        losses.append(adv.last_d)
    assert np.mean(losses[-10:]) < 1.0


def test_the_patch_discriminator_learns_to_tell_sharp_from_blurred():
    """Noise against its own 4x-blurred copy is easy to tell apart: the hinge loss must fall well below
    2 (D at chance). With R1 taken on the summed score map it stayed at 2.0 for 10,000 GPU steps."""
    import torch.nn.functional as F

    from export.adversarial import Adversary

    torch.manual_seed(0)
    adv, gen, losses = Adversary(r1=1.0), torch.Generator().manual_seed(0), []
    for step in range(80):
        real = torch.rand(8, 3, 64, 64, generator=gen) * 2 - 1
        fake = F.interpolate(F.avg_pool2d(real, 4), scale_factor=4, mode="bilinear")
        adv.step(real, fake, step, gen)
        losses.append(adv.last_d)
    assert np.mean(losses[-20:]) < 1.5
