"""Which onnxruntime execution providers a network gets: one pure choice for the generator and the
cascade's stages, so the upsampler runs where the generator runs (on a Jetson, the GPU), not always on
the CPU.

TensorRT first (fused fp16 kernels, engine cache), then CUDA, then the CPU, each only when this
onnxruntime build has it; the CPU is always last, so a session that a GPU provider refuses still opens.
"""
from __future__ import annotations

ORT_PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def choose_providers(available, wanted=None) -> list[str]:
    """The providers to ask for, best first: ``wanted`` (default ORT_PROVIDER_ORDER) in its order, kept
    where ``available`` has them, and the CPU at the end whatever was asked."""
    order = [p for p in (wanted or ORT_PROVIDER_ORDER) if p in set(available) and p != "CPUExecutionProvider"]
    return order + ["CPUExecutionProvider"]


def for_stage(generator_providers) -> tuple[str, ...] | None:
    """What a stage asks for, given what the generator's session really got (None: the default order).
    A generator on native TensorRT (not an onnxruntime provider) leaves the default order: the stage
    then takes onnxruntime's own GPU providers where they exist."""
    got = tuple(p for p in (generator_providers or ()) if p.endswith("ExecutionProvider"))
    return got or None
