"""The execution provider choice shared by the generator and the cascade's stage."""
from __future__ import annotations

import logging

import pytest

from firmware.generate.providers import ORT_PROVIDER_ORDER, choose_providers, for_stage

GPU = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize("available,wanted,chosen", [
    (GPU, None, GPU),                                                      # a Jetson with onnxruntime-gpu
    (["CUDAExecutionProvider", "CPUExecutionProvider"], None, ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    (["CPUExecutionProvider"], None, ["CPUExecutionProvider"]),            # this dev machine
    (GPU, ("CPUExecutionProvider",), ["CPUExecutionProvider"]),            # asked for the CPU only
    (GPU, ("CUDAExecutionProvider",), ["CUDAExecutionProvider", "CPUExecutionProvider"]),  # CPU always last
    ([], None, ["CPUExecutionProvider"]),
])
def test_choose_providers(available, wanted, chosen):
    assert choose_providers(available, wanted) == chosen


def test_a_stage_follows_the_generators_session():
    assert for_stage(("CUDAExecutionProvider", "CPUExecutionProvider")) == ("CUDAExecutionProvider",
                                                                             "CPUExecutionProvider")
    assert for_stage(("TensorRT 10.3 fp16",)) is None        # native TensorRT: the stage takes the default order
    assert for_stage(()) is None
    assert ORT_PROVIDER_ORDER[-1] == "CPUExecutionProvider"


def test_the_shipped_upsampler_says_where_it_runs(caplog):
    from firmware.config.schema import DEFAULT_MODEL_DIR
    from firmware.generate.manifest import load_model_dir
    from firmware.generate.stages import Upsampler

    with caplog.at_level(logging.INFO, logger="humus.upsampler"):
        up = Upsampler(load_model_dir(DEFAULT_MODEL_DIR).upsampler, providers=None)
    assert up.failed is None and up.providers == ("CPUExecutionProvider",)
    assert "runs on CPUExecutionProvider" in caplog.text


def test_a_gpu_provider_that_refuses_falls_back_to_the_cpu(monkeypatch, caplog):
    import onnxruntime as ort

    from firmware.config.schema import DEFAULT_MODEL_DIR
    from firmware.generate.manifest import load_model_dir
    from firmware.generate.stages import Upsampler

    real = ort.InferenceSession

    def picky(path, so=None, providers=None, **kw):
        if providers != ["CPUExecutionProvider"]:
            raise RuntimeError("CUDA failure 100: no CUDA-capable device")
        return real(path, so, providers=providers, **kw)

    monkeypatch.setattr(ort, "get_available_providers", lambda: GPU)
    monkeypatch.setattr(ort, "InferenceSession", picky)
    with caplog.at_level(logging.WARNING, logger="humus.upsampler"):
        up = Upsampler(load_model_dir(DEFAULT_MODEL_DIR).upsampler)
    assert up.failed is None and up.providers == ("CPUExecutionProvider",)
    assert "running it on the CPU" in caplog.text
