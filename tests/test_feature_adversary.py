"""The teacher-feature discriminator on the student's few-step samples (export/feature_adversary.py)."""
from __future__ import annotations

import argparse
import json

import pytest

torch = pytest.importorskip("torch")
from export.distill import DistillConfig, distill  # noqa: E402
from export.feature_adversary import (  # noqa: E402
    FeatureAdversary, TeacherFeatureDiscriminator, balanced_weight, few_step_samples)
from export.network import UNet, UNetConfig  # noqa: E402
from export.precond import EDMDenoiser  # noqa: E402
from tests.test_export_loop import FAST, _load, _same, _teacher, cache  # noqa: E402,F401


def _denoiser(seed=0, subjects=2):
    torch.manual_seed(seed)
    net = UNet(UNetConfig(channels=3, base=16, mults=(1, 2), blocks=1, attn_levels=(1,), emb=32, fold=2,
                          dropout=0.0, decay_cond=True, subjects=subjects))
    for p in net.parameters():     # the zero-initialised output layers too: a trained network's are not zero
        torch.nn.init.normal_(p, std=0.05)
    m = EDMDenoiser(net, sigma_data=0.5)
    m.resolution = 16
    return m.eval()


def test_the_discriminator_sees_the_teachers_own_middle_features():
    teacher = _denoiser()
    d = TeacherFeatureDiscriminator(teacher, width=8)
    x, sigma = torch.randn(3, 3, 16, 16), torch.tensor([0.3, 1.0, 5.0])
    decay, subject = torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.0, 1.0, 1.0])
    seen = {}
    hook = teacher.net.mid[2].register_forward_hook(lambda m, i, o: seen.setdefault("mid", o))
    teacher(x, sigma, decay, subject)
    hook.remove()
    maps = d.features(x, sigma, decay, subject)
    assert torch.allclose(maps[-1], seen["mid"], atol=1e-6)
    assert len(maps) == 3 and d(x, sigma, decay, subject).shape == (3,)
    # Conditional: another subject asked for changes the score of the same image.
    assert not torch.allclose(d(x, sigma, decay, 1 - subject), d(x, sigma, decay, subject))


def test_a_step_trains_the_heads_only_and_the_generator_term_reaches_the_student():
    teacher, student = _denoiser(0), _denoiser(1).requires_grad_(True)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    adv = FeatureAdversary(teacher, width=8)
    heads = [p.clone() for p in adv.d.heads.parameters()]
    gen = torch.Generator().manual_seed(0)
    real, decay, subject = torch.rand(4, 3, 16, 16) * 2 - 1, torch.rand(4), torch.tensor([0.0, 1.0, 0.0, 1.0])
    fake = few_step_samples(student, real.shape, (80.0, 1.6), decay, subject, gen)
    g = adv.step(real, fake, decay, subject, gen)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())      # the teacher is frozen
    assert any(not torch.equal(a, b) for a, b in zip(heads, adv.d.heads.parameters()))  # D learnt
    assert all(p.grad is None for p in teacher.parameters())
    g.backward()
    assert student.net.head.weight.grad.abs().sum() > 0
    assert 0.0 < adv.last_d < 10.0


def test_few_step_samples_are_the_boxs_sampler_arithmetic():
    student = _denoiser(2)
    decay, subject = torch.full((2,), 0.4), torch.zeros(2)
    for fresh in (0.0, 0.6):
        got = few_step_samples(student, (2, 3, 16, 16), (80.0, 1.6), decay, subject, torch.Generator().manual_seed(5),
                               fresh=fresh)
        g = torch.Generator().manual_seed(5)
        eps = torch.randn(2, 3, 16, 16, generator=g)
        x0 = student(80.0 * eps, torch.full((2,), 80.0), decay, subject)
        held = (80.0 * eps - x0) / 80.0
        z = held if fresh == 0 else fresh * torch.randn(2, 3, 16, 16, generator=g) + (1 - fresh**2) ** 0.5 * held
        want = student(x0 + 1.6 * z, torch.full((2,), 1.6), decay, subject)
        assert torch.allclose(got, want, atol=1e-6)


def test_the_balanced_weight_is_the_ratio_of_gradient_norms_at_the_layer():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    main, adv = (3.0 * w).sum(), (0.5 * w).sum()     # gradients (3, 3) and (0.5, 0.5)
    assert float(balanced_weight(main, adv, w)) == pytest.approx(6.0)
    assert float(balanced_weight(main, adv * 1e-9, w, cap=100.0)) == 100.0


def test_ect_with_the_teacher_feature_adversary_resumes_exactly(cache, tmp_path):  # noqa: F811
    teacher = _teacher(cache, tmp_path / "t", 0, steps=4)

    def go(run, stop_at):
        cfg = DistillConfig(batch=4, steps=10, stop_at=stop_at, stages=2, adversarial=0.2, adversary="teacher",
                            adversarial_batch=3, adversarial_sigmas=(80.0, 1.0), stats_every=0, **FAST)
        return _load(distill(cache, teacher, run, cfg, progress=False))

    whole = go(tmp_path / "w", 0)
    go(tmp_path / "p", 9)          # the piece ends after the weight was measured at step 8
    pieces = go(tmp_path / "p", 0)
    for key in ("model", "opt", "rng", "objective"):
        _same(whole[key], pieces[key], key)
    assert whole["objective"]["adversary_weight"] > 0
    rows = [json.loads(line) for line in (tmp_path / "w" / "stats.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and all(set(r) >= {"ect", "gan", "d", "w"} and r["w"] > 0 for r in rows)
    plain = _load(distill(cache, teacher, tmp_path / "plain", DistillConfig(batch=4, steps=10, stages=2, **FAST),
                          progress=False))
    assert any(not torch.equal(whole["model"][k], plain["model"][k]) for k in plain["model"])   # the term acts


@pytest.mark.parametrize("bad", [dict(adversary="inception"), dict(adversarial_fresh=1.5)])
def test_a_bad_adversary_setting_is_refused_by_name(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        DistillConfig(**bad)


@pytest.mark.parametrize("text", ["80,x", "1.6,80", "", "80,-1"])
def test_the_sigma_list_option_refuses_what_is_not_decreasing_levels(text):
    from export.cli import _sigma_list

    with pytest.raises(argparse.ArgumentTypeError, match="80|levels"):
        _sigma_list(text)
    assert _sigma_list("80,1.6") == (80.0, 1.6)


def test_a_repository_state_keeps_the_discriminator_and_restores_it_exactly(cache, tmp_path):  # noqa: F811
    from export import state

    teacher = _teacher(cache, tmp_path / "t", 0, steps=4)
    cfg = DistillConfig(batch=4, steps=3, stages=2, adversarial=0.2, adversary="teacher", adversarial_batch=2, **FAST)
    ckpt = distill(cache, teacher, tmp_path / "s", cfg, progress=False)
    state.save(ckpt, tmp_path / "repo")
    assert "tensor(" not in (tmp_path / "repo" / "student.json").read_text()     # no tensor printed as text
    state.restore(tmp_path / "repo", "student", tmp_path / "back" / "student.pt")
    _same(_load(ckpt)["objective"], _load(tmp_path / "back" / "student.pt")["objective"], "objective")
    # A state saved before the objective was packed (its tensors printed into the JSON) restores without it.
    meta = json.loads((tmp_path / "repo" / "student.json").read_text())
    meta["objective"] = {"adversary": {"heads": {"0.0.bias": "tensor([0.1, 0.2])"}}}
    (tmp_path / "repo" / "student.json").write_text(json.dumps(meta))
    state.restore(tmp_path / "repo", "student", tmp_path / "old" / "student.pt")
    assert _load(tmp_path / "old" / "student.pt")["objective"] == {}
