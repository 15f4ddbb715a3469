"""Generation: the model directory contract (manifest), engines that run the ONNX denoiser, and the
sampler (a pure loop over a callable denoiser and a list of noise levels)."""
