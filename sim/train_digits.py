"""Train a small CNN on scikit-learn's digits, quantize it to int8 ONNX, write the model.

The network (NumPy only, fixed seed, a few seconds of CPU time)::

    input (N, 1, 8, 8), values 0..16
    Conv 1->4 3x3 pad 1, ReLU, MaxPool 2x2     -> (N, 4, 4, 4)
    Conv 4->8 3x3 pad 1 stride 2, ReLU         -> (N, 8, 2, 2)
    Flatten, Gemm 32->10                        -> (N, 10) scores

644 weights and 22 biases (``--channels C1,C2`` sets the two convolutions' channels). The
second convolution strides instead of pooling: a quarter of its products and no second pool
core. 4,8 channels are the least that keep 98.9% on the whole set and let the network fit
the iCE40 UP5K at its full DSP budget (the sweep is in docs/onnx.md). It trains on a
stratified 80% of the 1,797 images
(``train_test_split`` with ``random_state=0``) and keeps the other 20% (360 images) held out.
The float model is exported with a symbolic batch dimension and quantized by
``onnxruntime.quantization.quantize_static`` (QDQ, int8 activations and weights, weights per
output channel, calibrated on the training images). The input takes ``load_digits().images``
as float32 with no other preprocessing: the scaling to 0..1 used in training is folded into
the first layer's weights.

Run from the repository root::

    python -m sim.train_digits            # writes sim/models/digits.onnx and digits-float.onnx

It prints the accuracy of the float model, of onnxruntime's int8 model and of convhw's exact
integer reference (``convhw.onnx.run_network``), on the held-out split and on all 1,797 images.
"""

import argparse
import os
import tempfile
import time

import numpy as np

__all__ = ["load", "train", "export_float", "quantize", "main"]

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
SEED = 0
CHANNELS = (4, 8)


def load():
    """``(images, labels, train_index, test_index)``: float32 (N, 1, 8, 8) images 0..16."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32)[:, np.newaxis]
    index = np.arange(len(images))
    train_index, test_index = train_test_split(index, test_size=0.2, random_state=SEED,
                                               stratify=digits.target)
    return images, digits.target, np.sort(train_index), np.sort(test_index)


# --- a tiny NumPy CNN ---------------------------------------------------------------------------

def _columns(x):
    """(N, C, H, W) -> (N*H*W, C*9): the 3x3 windows of ``x`` zero padded by 1."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * w, c * 9)


def _uncolumns(grad, shape):
    """The adjoint of :func:`_columns`."""
    n, c, h, w = shape
    grad = grad.reshape(n, h, w, c, 3, 3)
    padded = np.zeros((n, c, h + 2, w + 2), grad.dtype)
    for i in range(3):
        for j in range(3):
            padded[:, :, i:i + h, j:j + w] += grad[..., i, j].transpose(0, 3, 1, 2)
    return padded[:, :, 1:-1, 1:-1]


def _conv(x, weight, bias):
    n, _, h, w = x.shape
    cols = _columns(x)
    out = cols @ weight.reshape(len(weight), -1).T + bias
    return out.reshape(n, h, w, -1).transpose(0, 3, 1, 2), cols


def _conv_backward(grad, cols, weight, shape):
    flat = grad.transpose(0, 2, 3, 1).reshape(-1, len(weight))
    d_weight = (flat.T @ cols).reshape(weight.shape)
    d_x = _uncolumns(flat @ weight.reshape(len(weight), -1), shape)
    return d_x, d_weight, flat.sum(0)


def _pool(x):
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // 2, 2, w // 2, 2)
    out = blocks.max(axis=(3, 5))
    mask = blocks == out[:, :, :, np.newaxis, :, np.newaxis]
    return out, mask


def _pool_backward(grad, mask):
    n, c, h, _, w, _ = mask.shape
    spread = mask * grad[:, :, :, np.newaxis, :, np.newaxis]
    return (spread / mask.sum(axis=(3, 5), keepdims=True)).reshape(n, c, h * 2, w * 2)


def _forward(params, x):
    c1, cols1 = _conv(x, params["w1"], params["b1"])
    r1 = np.maximum(c1, 0)
    p1, m1 = _pool(r1)
    c2, cols2 = _conv(p1, params["w2"], params["b2"])
    c2 = c2[:, :, ::2, ::2]            # stride 2: the positions (0, 0), (0, 2), (2, 0), (2, 2)
    r2 = np.maximum(c2, 0)
    flat = r2.reshape(len(x), -1)
    scores = flat @ params["wd"].T + params["bd"]
    return scores, (x, c1, cols1, p1, m1, c2, cols2, flat)


def _backward(params, cache, d_scores):
    x, c1, cols1, p1, m1, c2, cols2, flat = cache
    grads = {"wd": d_scores.T @ flat, "bd": d_scores.sum(0)}
    d_r2 = (d_scores @ params["wd"]).reshape(c2.shape)
    d_c2 = np.zeros(c2.shape[:2] + p1.shape[2:])
    d_c2[:, :, ::2, ::2] = d_r2 * (c2 > 0)
    d_p1, grads["w2"], grads["b2"] = _conv_backward(d_c2, cols2, params["w2"], p1.shape)
    d_c1 = _pool_backward(d_p1, m1) * (c1 > 0)
    _, grads["w1"], grads["b1"] = _conv_backward(d_c1, cols1, params["w1"], x.shape)
    return grads


def train(images, labels, *, channels=CHANNELS, epochs=40, batch=32, rate=0.005, seed=SEED):
    """Float parameters of the CNN trained with Adam on ``images / 16`` (float64)."""
    rng = np.random.default_rng(seed)

    def he(*shape):
        return rng.normal(0, np.sqrt(2 / np.prod(shape[1:])), shape)

    c1, c2 = channels
    params = {"w1": he(c1, 1, 3, 3), "b1": np.zeros(c1), "w2": he(c2, c1, 3, 3),
              "b2": np.zeros(c2), "wd": he(10, 4 * c2), "bd": np.zeros(10)}
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    x_all = images.astype(np.float64) / 16
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(x_all))
        for start in range(0, len(order), batch):
            chosen = order[start:start + batch]
            scores, cache = _forward(params, x_all[chosen])
            scores -= scores.max(1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(1, keepdims=True)
            probs[np.arange(len(chosen)), labels[chosen]] -= 1
            grads = _backward(params, cache, probs / len(chosen))
            step += 1
            for k, g in grads.items():
                m, v = moments[k]
                m[:] = 0.9 * m + 0.1 * g
                v[:] = 0.999 * v + 0.001 * g * g
                params[k] -= rate * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step))
                                                               + 1e-8)
    return params


def float_accuracy(params, images, labels):
    scores, _ = _forward(params, images.astype(np.float64) / 16)
    return float(np.mean(scores.argmax(1) == labels))


# --- ONNX ---------------------------------------------------------------------------------------

def export_float(params, path):
    """Write the float model: input ``images`` (N, 1, 8, 8) 0..16, output ``scores`` (N, 10)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def constant(name, value):
        return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)

    # Inputs are 0..16 here but 0..1 in training: fold the 1/16 into the first weights.
    initializers = [constant("w1", params["w1"] / 16), constant("b1", params["b1"]),
                    constant("w2", params["w2"]), constant("b2", params["b2"]),
                    constant("wd", params["wd"]), constant("bd", params["bd"])]
    nodes = [
        helper.make_node("Conv", ["images", "w1", "b1"], ["conv1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
        helper.make_node("MaxPool", ["relu1"], ["pool1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["pool1", "w2", "b2"], ["conv2"], name="conv2",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["conv2"], ["relu2"], name="relu2"),
        helper.make_node("Flatten", ["relu2"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "wd", "bd"], ["scores"], name="dense", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "digits",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="convhw sim/train_digits.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def quantize(float_path, out_path, calibration):
    """QDQ int8 per-channel ``quantize_static``, calibrated on ``calibration`` images."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{"images": calibration[i:i + 64]}
                                  for i in range(0, len(calibration), 64)])

        def get_next(self):
            return next(self._batches, None)

    quantize_static(float_path, out_path, Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=True)


def onnxruntime_scores(path, images):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.x64quantprecision", "1")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images})[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=MODELS, help="where to write the models")
    parser.add_argument("--channels", default=",".join(map(str, CHANNELS)), metavar="C1,C2",
                        help="output channels of the two convolutions (default %(default)s)")
    args = parser.parse_args(argv)

    import logging
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's pre-processing advice

    from convhw.onnx import read_model, run_network

    started = time.perf_counter()
    images, labels, train_index, test_index = load()
    channels = tuple(int(c) for c in args.channels.split(","))
    params = train(images[train_index], labels[train_index], channels=channels)
    os.makedirs(args.output_dir, exist_ok=True)
    float_path = os.path.join(args.output_dir, "digits-float.onnx")
    quant_path = os.path.join(args.output_dir, "digits.onnx")
    export_float(params, float_path)
    with tempfile.TemporaryDirectory() as scratch:
        # quantize_static writes its augmented model next to the float one: keep that out.
        scratch_float = os.path.join(scratch, "digits-float.onnx")
        export_float(params, scratch_float)
        quantize(scratch_float, quant_path, images[train_index])

    float_scores = onnxruntime_scores(float_path, images)
    int8_scores = onnxruntime_scores(quant_path, images)
    reference = run_network(read_model(quant_path), images)
    print(f"trained and quantized in {time.perf_counter() - started:.1f} s")
    for name, index in (("held-out (360)", test_index), ("all (1797)", np.arange(len(images)))):
        accuracies = [np.mean(s[index].argmax(1) == labels[index])
                      for s in (float_scores, int8_scores, reference)]
        print(f"{name:>15}: float {accuracies[0]:.4f}  onnxruntime int8 {accuracies[1]:.4f}  "
              f"convhw reference {accuracies[2]:.4f}")
    print(f"reference == onnxruntime on {np.sum(reference == int8_scores)} of "
          f"{reference.size} scores")


if __name__ == "__main__":
    main()
