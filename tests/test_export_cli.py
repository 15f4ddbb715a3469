"""`humus-export`'s options take their defaults from the config dataclasses: an option left out
leaves the dataclass default, the one place a default is written (issue 14)."""
from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("torch")

from export import cli  # noqa: E402
from export.distill import DistillConfig  # noqa: E402
from export.footage import FootageConfig  # noqa: E402
from export.loop import RunBudget  # noqa: E402
from export.train import TrainConfig  # noqa: E402
from export.upsampler import UpsamplerConfig  # noqa: E402


def parse(*argv):
    return cli.build_parser().parse_args(list(argv))


def test_an_option_left_out_keeps_the_dataclass_default():
    assert cli._config_from(FootageConfig, parse("footage", "in/")) == FootageConfig()
    # --minutes is the command line's own laptop budget, where the dataclasses have none
    assert cli._config_from(TrainConfig, parse("train")) == TrainConfig(minutes=60.0)
    assert cli._config_from(DistillConfig, parse("distill")) == DistillConfig(minutes=40.0)
    a = parse("upsampler")
    given = {f.name: getattr(a, f.name) for f in dataclasses.fields(UpsamplerConfig) if hasattr(a, f.name)}
    assert UpsamplerConfig(**given) == UpsamplerConfig(minutes=40.0)


def test_an_option_given_sets_its_field():
    a = parse("footage", "in/", "--fps", "3", "--dedup", "0", "--resolution", "32", "--holdout", "0.2", "--seed", "7")
    assert cli._config_from(FootageConfig, a) == FootageConfig(resolution=32, video_fps=3.0, dedup_threshold=0.0,
                                                                holdout=0.2, seed=7)
    cfg = cli._config_from(DistillConfig, parse("distill", "--steps", "5", "--ckpt-every", "9", "--device", "cuda"))
    assert (cfg.steps, cfg.ckpt_every, cfg.device) == (5, 9.0, "cuda")


def test_every_training_config_is_a_run_budget():
    # the budget fields, checkpoint cadence and seed mean the same in every run; only defaults differ
    budget = {f.name for f in dataclasses.fields(RunBudget)}
    for cls in (TrainConfig, DistillConfig, UpsamplerConfig):
        assert issubclass(cls, RunBudget) and budget <= {f.name for f in dataclasses.fields(cls)}
    assert (UpsamplerConfig().steps, UpsamplerConfig().ckpt_every) == (20_000, 120.0)
    assert (TrainConfig().steps, DistillConfig().ckpt_every) == (100_000, 180.0)
