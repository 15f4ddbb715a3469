"""Warm start: a shipped model's weights read back from its ONNX files, subjects and all."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from export.network import PRESETS, UNet, UNetConfig  # noqa: E402
from export.onnx import export_denoiser  # noqa: E402
from export.precond import EDMDenoiser  # noqa: E402
from export.schedule import SIGMA_DATA  # noqa: E402
from export.warmstart import denoiser_from_onnx, round_trip_error  # noqa: E402


def _random_net(subjects: int) -> tuple[EDMDenoiser, UNetConfig]:
    cfg = UNetConfig.from_dict({**PRESETS["tiny"].to_dict(), "subjects": subjects})
    torch.manual_seed(0)
    model = EDMDenoiser(UNet(cfg), sigma_data=SIGMA_DATA)
    with torch.no_grad():   # every parameter away from its initial value (GroupNorm's 1 and 0, the zero embedding)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval(), cfg


@pytest.mark.parametrize("subjects", [0, 3])
def test_weights_read_back_from_onnx_are_the_exported_ones(tmp_path, subjects):
    model, cfg = _random_net(subjects)
    path = export_denoiser(model, tmp_path / "net.onnx", 32)
    back = denoiser_from_onnx(path, cfg)
    want, got = model.state_dict(), back.state_dict()
    assert want.keys() == got.keys()
    for k in want:
        assert torch.allclose(want[k], got[k], atol=1e-6), k
    # and the subject input matters to the ONNX graph, so the round trip checks every subject
    assert round_trip_error(back, path, 32) < 1e-4
    if subjects:
        with torch.no_grad():
            back.net.emb_subject.weight.copy_(back.net.emb_subject.weight.flip(0))
        assert round_trip_error(back, path, 32) > 1e-3


def test_a_network_that_is_not_the_one_named_is_refused(tmp_path):
    model, _ = _random_net(3)
    path = export_denoiser(model, tmp_path / "net.onnx", 32)
    other = UNetConfig.from_dict({**PRESETS["tiny"].to_dict(), "subjects": 2})
    with pytest.raises(ValueError, match="emb_subject"):
        denoiser_from_onnx(path, other)
