"""humus studio pipeline: footage -> train -> distill -> ONNX -> engine. Needs torch."""
