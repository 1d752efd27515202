"""The layer golden model against independent oracles.

``golden.conv_layer`` against scipy (each output channel the sum of its group's per-channel
``correlate2d`` results) and against onnxruntime's ``ConvInteger`` (exact int32 accumulators)
for uint8 and int8 inputs; ``golden.requantize``'s per-channel output stage against a
Python-integer reference built on ``fractions.Fraction`` (Python's ``round`` of a Fraction rounds
ties to even, exactly).
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.signal import correlate2d

from convhw import ConvSpec
from convhw.golden import conv_layer, requantize, run_spec


def scipy_layer(x, weights, groups, stride, padding, dilation, flip):
    cout, per_group = weights.shape[:2]
    (sy, sx), (dy, dx), (py, px) = stride, dilation, padding
    out = []
    for co in range(cout):
        group = co // (cout // groups)
        total = 0
        for ci in range(per_group):
            kernel = weights[co, ci][::-1, ::-1] if flip else weights[co, ci]
            dilated = np.zeros((dy * (kernel.shape[0] - 1) + 1, dx * (kernel.shape[1] - 1) + 1),
                               dtype=np.int64)
            dilated[::dy, ::dx] = kernel
            padded = np.pad(x[group * per_group + ci], ((py, py), (px, px)))
            total = total + correlate2d(padded, dilated, mode="valid")
        out.append(total[::sy, ::sx])
    return np.array(out)


@pytest.mark.parametrize("seed", range(40))
def test_conv_layer_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    groups = int(rng.integers(1, 4))
    cin, cout = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    stride = tuple(int(v) for v in rng.integers(1, 4, size=2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, size=2))
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    padding = tuple(int(rng.integers(0, s)) for s in span)
    height = int(rng.integers(max(1, span[0] - 2 * padding[0]), 12))
    width = int(rng.integers(max(1, span[1] - 2 * padding[1]), 12))
    x = rng.integers(-128, 256, size=(cin, height, width))
    weights = rng.integers(-128, 128, size=(cout, cin // groups, kh, kw))
    flip = bool(rng.integers(0, 2))
    got = conv_layer(x, weights, groups=groups, stride=stride, padding=padding,
                     dilation=dilation, flip=flip)
    assert got.dtype == np.int64
    assert (got == scipy_layer(x, weights, groups, stride, padding, dilation, flip)).all()


def _conv_integer(x, weights, groups, stride, padding, dilation):
    """onnxruntime's ConvInteger on one image (zero points 0)."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    types = {np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8}
    node = helper.make_node("ConvInteger", ["x", "w"], ["y"], group=groups,
                            strides=list(stride), dilations=list(dilation),
                            pads=[padding[0], padding[1], padding[0], padding[1]],
                            kernel_shape=list(weights.shape[2:]))
    graph = helper.make_graph(
        [node], "conv_integer",
        [helper.make_tensor_value_info("x", types[x.dtype.type], [1, *x.shape])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, None, None, None])],
        initializer=[helper.make_tensor("w", types[weights.dtype.type], weights.shape,
                                        weights.ravel().tolist())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x[np.newaxis]})[0][0]


@pytest.mark.parametrize("x_type,w_type", [(np.uint8, np.uint8), (np.uint8, np.int8),
                                          (np.int8, np.int8)])
@pytest.mark.parametrize("seed", range(4))
def test_conv_layer_matches_onnxruntime_conv_integer(seed, x_type, w_type):
    rng = np.random.default_rng(100 + seed)
    groups = [1, 2, 1, 3][seed]
    cin, cout = groups * (seed + 1), groups * (3 - seed % 2)
    kh, kw = [(3, 3), (5, 3), (1, 1), (2, 4)][seed]
    stride, dilation = [(1, 1), (2, 1), (1, 2), (2, 2)][seed], [(1, 1), (1, 2), (1, 1), (2, 1)][seed]
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    padding = ((span[0] - 1) // 2, (span[1] - 1) // 2)
    info = np.iinfo(x_type)
    x = rng.integers(info.min, info.max + 1, size=(cin, 9, 11)).astype(x_type)
    winfo = np.iinfo(w_type)
    weights = rng.integers(winfo.min, winfo.max + 1,
                           size=(cout, cin // groups, kh, kw)).astype(w_type)
    weights.flat[0] = winfo.min   # an extreme weight
    expected = _conv_integer(x, weights, groups, stride, padding, dilation)
    got = conv_layer(x.astype(np.int64), weights.astype(np.int64), groups=groups,
                     stride=stride, padding=padding, dilation=dilation)
    assert (got == expected).all()


def reference_stage(value, bias, relu, scale, shift, rounding, out_bits):
    value += bias
    if relu:
        value = max(value, 0)
    exact = Fraction(value * scale, 2 ** shift)
    rounded = round(exact) if rounding == "half-even" else math.floor(exact + Fraction(1, 2))
    return min(max(rounded, -(1 << (out_bits - 1))), (1 << (out_bits - 1)) - 1)


@pytest.mark.parametrize("rounding", ["half-up", "half-even"])
def test_per_channel_output_stage(rounding):
    rng = np.random.default_rng(7)
    acc = rng.integers(-5000, 5000, size=(4, 6, 5))
    acc[:, 0, :4] = [[-6, -2, 2, 6]] * 4     # ties at shift 2 (x.5)
    bias, scale = [3, -7, 0, 100], [1, 3, 5, 2]
    shift, relu, out_bits = [2, 0, 7, 3], False, 11
    got = requantize(acc, bias=bias, relu=relu, scale=scale, shift=shift, rounding=rounding,
                     out_bits=out_bits)
    expected = np.array([[[reference_stage(int(v), bias[c], relu, scale[c], shift[c],
                                           rounding, out_bits) for v in row]
                           for row in acc[c]] for c in range(4)])
    assert (got == expected).all()


def test_spec_output_stage_with_relu_and_clamp():
    """run_spec applies bias, ReLU, scale, half-even rounding and the clamp per channel."""
    rng = np.random.default_rng(8)
    weights = rng.integers(-50, 50, size=(3, 2, 3, 3))
    spec = ConvSpec(width=6, height=5, weights=weights, bias=[500, -500, 0], relu=True,
                    scale=[5, 3, 1], shift=[6, 4, 2], rounding="half-even", clamp=(-3, 90),
                    padding="same")
    x = rng.integers(0, 256, size=(2, 5, 6))
    acc = conv_layer(x, weights, padding=1)
    expected = np.array([[[min(max(reference_stage(int(v), spec.bias[c], True, spec.scale[c],
                                                   spec.output_stage.shift[c], "half-even",
                                                   spec.out_bits), -3), 90)
                           for v in row] for row in acc[c]] for c in range(3)])
    assert (run_spec(spec, x) == expected).all()
    assert spec.out_range == (0, 90)
