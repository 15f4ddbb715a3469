"""Make a small but real ONNX denoiser + manifest, without torch (onnx.helper), for tests.

The graph is an EDM-preconditioned denoiser with a fixed 3x3 smoothing convolution as its "network":
D(x, sigma, decay) = c_skip * x + c_out * tanh(conv(c_in * x) + 0.3 * decay). It is real ONNX that
onnxruntime runs, with the exact inputs/outputs of the contract in models/MANIFEST.md.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np


def make_model_dir(out: Path, side: int = 32, sigma_data: float = 0.5, nan: bool = False,
                   reference: bool = True, subjects: tuple[str, ...] = ()) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out.mkdir(parents=True, exist_ok=True)
    sd2 = sigma_data * sigma_data
    k = np.zeros((3, 3, 3, 3), np.float32)
    for c in range(3):
        k[c, c] = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 16 * 2.0
    k[0, 1] += 0.1  # a little colour mixing so channels interact
    inits = [numpy_helper.from_array(k, "W"),
             numpy_helper.from_array(np.array([sd2], np.float32), "sd2"),
             numpy_helper.from_array(np.array([sigma_data], np.float32), "sd"),
             numpy_helper.from_array(np.array([1.0], np.float32), "one"),
             numpy_helper.from_array(np.array([0.3], np.float32), "dk"),
             numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), "bshape")]
    n = helper.make_node
    nodes = [
        n("Mul", ["sigma", "sigma"], ["s2"]),
        n("Add", ["s2", "sd2"], ["s2p"]),
        n("Sqrt", ["s2p"], ["root"]),
        n("Div", ["sd2", "s2p"], ["c_skip1"]),
        n("Mul", ["sigma", "sd"], ["ssd"]),
        n("Div", ["ssd", "root"], ["c_out1"]),
        n("Div", ["one", "root"], ["c_in1"]),
        n("Reshape", ["c_skip1", "bshape"], ["c_skip"]),
        n("Reshape", ["c_out1", "bshape"], ["c_out"]),
        n("Reshape", ["c_in1", "bshape"], ["c_in"]),
        n("Mul", ["decay", "dk"], ["dd1"]),
        n("Reshape", ["dd1", "bshape"], ["dd"]),
        n("Mul", ["x", "c_in"], ["xin"]),
        n("Conv", ["xin", "W"], ["conv"], pads=[1, 1, 1, 1]),
        n("Add", ["conv", "dd"], ["pre0"]),
        n("Tanh", ["pre"], ["F"]),
        n("Mul", ["x", "c_skip"], ["skip"]),
        n("Mul", ["F", "c_out"], ["outF"]),
        n("Add", ["skip", "outF"], ["denoised0"]),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, side, side]),
              helper.make_tensor_value_info("sigma", TensorProto.FLOAT, [1]),
              helper.make_tensor_value_info("decay", TensorProto.FLOAT, [1])]
    if subjects:  # the subject index shifts the picture: each subject grows a different image
        inits.append(numpy_helper.from_array(np.array([0.5], np.float32), "sk"))
        nodes += [n("Mul", ["subject", "sk"], ["ss1"]), n("Reshape", ["ss1", "bshape"], ["ss"]),
                  n("Add", ["pre0", "ss"], ["pre"])]
        inputs.append(helper.make_tensor_value_info("subject", TensorProto.FLOAT, [1]))
    else:
        nodes.append(n("Identity", ["pre0"], ["pre"]))
    # Tanh and the EDM output come after the conditioning (node order is topological below).
    tail = [nd for nd in nodes if nd.output[0] in ("F", "skip", "outF", "denoised0")]
    nodes = [nd for nd in nodes if nd not in tail] + tail
    if nan:  # a broken model for fault tests: 0/0 in the output
        inits.append(numpy_helper.from_array(np.array([0.0], np.float32), "zero"))
        nodes += [n("Div", ["zero", "zero"], ["nanv"]), n("Add", ["denoised0", "nanv"], ["denoised"])]
    else:
        nodes.append(n("Identity", ["denoised0"], ["denoised"]))
    shape = [1, 3, side, side]
    graph = helper.make_graph(
        nodes, "tiny-denoiser", inputs,
        [helper.make_tensor_value_info("denoised", TensorProto.FLOAT, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = out / "student.onnx"
    onnx.save(model, str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    net = {"file": "student.onnx", "sha256": digest, "batch": 1,
           "inputs": {"x": shape, "sigma": [1], "decay": [1], **({"subject": [1]} if subjects else {})},
           "outputs": {"denoised": shape},
           "sampler": "consistency",
           "steps": {"1": [80.0], "2": [80.0, 0.8], "4": [80.0, 2.0, 0.8, 0.3]},
           "default_steps": 2}
    if reference and not nan:
        import onnxruntime as ort
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape).astype(np.float32) * 2.5
        s, d = np.array([2.5], np.float32), np.array([0.5], np.float32)
        feed = {"x": x, "sigma": s, "decay": d, **({"subject": np.ones(1, np.float32)} if subjects else {})}
        y = sess.run(["denoised"], feed)[0]
        np.savez(out / "reference.npz", **feed, denoised=y)
        net["reference"] = {"output": "reference.npz", "atol": 1e-3}
    manifest = {"format": "humus-model/1", "name": "tiny-test", "resolution": [side, side],
                "channels": 3, "value_range": [-1.0, 1.0], "color": "RGB",
                "precond": {"kind": "edm", "sigma_data": sigma_data, "sigma_min": 0.002,
                            "sigma_max": 80.0},
                "conditioning": {"decay": {"range": [0.0, 1.0], "default": 0.5},
                                 **({"subject": {"names": list(subjects)}} if subjects else {})},
                "networks": {"student": net}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


def edited_copy(model_dir: Path, dest: Path, edit=None) -> Path:
    """A copy of a model directory at `dest` whose manifest `edit` (a function of the parsed JSON) changed."""
    import shutil
    shutil.copytree(model_dir, dest)
    if edit is not None:
        manifest = json.loads((dest / "manifest.json").read_text())
        edit(manifest)
        (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


def add_upsampler(model_dir: Path, scale: int = 4, reference: bool = True) -> Path:
    """Give a model directory a real ONNX cascade stage (manifest `stages.upsampler`): bilinear
    enlargement plus a fixed sharpening convolution, so its output differs from a plain resize."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    manifest = json.loads((model_dir / "manifest.json").read_text())
    h, w = manifest["resolution"]
    k = np.zeros((3, 3, 3, 3), np.float32)
    for c in range(3):
        k[c, c] = np.array([[0, -0.25, 0], [-0.25, 2.0, -0.25], [0, -0.25, 0]], np.float32)
    inits = [numpy_helper.from_array(k, "W"),
             numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), "scales")]
    n = helper.make_node
    inits += [numpy_helper.from_array(np.array(-1.0, np.float32), "lo"),
              numpy_helper.from_array(np.array(1.0, np.float32), "hi")]
    nodes = [n("Resize", ["image", "", "scales"], ["big"], mode="linear"),
             n("Conv", ["big", "W"], ["sharp"], pads=[1, 1, 1, 1]),
             n("Clip", ["sharp", "lo", "hi"], ["upsampled"])]
    i_shape, o_shape = [1, 3, h, w], [1, 3, h * scale, w * scale]
    graph = helper.make_graph(nodes, "tiny-upsampler",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, i_shape)],
                              [helper.make_tensor_value_info("upsampled", TensorProto.FLOAT, o_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = model_dir / "upsampler.onnx"
    onnx.save(model, str(path))
    stage = {"file": "upsampler.onnx", "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
             "inputs": {"image": i_shape}, "outputs": {"upsampled": o_shape}}
    if reference:
        x = np.random.default_rng(1).uniform(-1, 1, i_shape).astype(np.float32)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        np.savez(model_dir / "reference_upsampler.npz", image=x, upsampled=sess.run(["upsampled"], {"image": x})[0])
        stage["reference"] = {"output": "reference_upsampler.npz", "atol": 1e-3}
    manifest["stages"] = {"upsampler": stage}
    (model_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return model_dir
