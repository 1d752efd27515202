"""What an ONNX import accepts beyond quantize_static's output, and what it refuses.

Models are hand-built QDQ graphs around one Conv (``_model``). Forms the quantizer does not
write but other tools do (a Relu, Clip or MaxPool kept between a DequantizeLinear and a
QuantizeLinear with the same parameters) are checked against onnxruntime. Every refusal is one
line naming the node (or tensor), its op and what is supported; the messages are pinned.
"""

import re

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from convhw.onnx import UnsupportedModelError, read_model, run_network

from onnx_models import assert_double_rounding_only, graph_model, run_onnxruntime

RNG = np.random.default_rng(3)
W_CODES = RNG.integers(-100, 100, (2, 1, 3, 3)).astype(np.int8)
BIAS = RNG.integers(-300, 300, 2).astype(np.int32)


def _param(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def _q(source, target, p, name=None):
    return helper.make_node("QuantizeLinear", [source, f"{p}_s", f"{p}_z"], [target],
                            name=name or f"q_{target}")


def _dq(source, target, p, name=None, **attrs):
    return helper.make_node("DequantizeLinear", [source, f"{p}_s", f"{p}_z"], [target],
                            name=name or f"dq_{target}", **attrs)


def _model(tail=(), inits=(), *, conv=None, tail_from="cq", output="y", input_dims=(1, 6, 6),
           x_scale=(0.05, np.uint8(128)), extra=(), drop=()):
    """x -> Q -> DQ -> Conv(3x3, pads 1, 1->2) -> Q -> DQ -> [tail] -> y.

    ``tail`` nodes read ``tail_from`` (the Conv's output codes); without a tail the Conv's
    output is dequantized into ``y``.
    """
    parameters = [_param("x_s", np.float32(x_scale[0])), _param("x_z", x_scale[1]),
                  _param("w", W_CODES), _param("w_s", np.float32([0.02, 0.03])),
                  _param("w_z", np.zeros(2, np.int8)), _param("b", BIAS),
                  _param("b_s", np.float32([0.001, 0.0015])), _param("b_z", np.zeros(2, np.int32)),
                  _param("y_s", np.float32(0.1)), _param("y_z", np.uint8(100)),
                  _param("o_s", np.float32(0.07)), _param("o_z", np.uint8(20))]
    nodes = [_q("x", "xq", "x"), _dq("xq", "xd", "x"), _dq("w", "wd", "w", axis=0),
             _dq("b", "bd", "b", axis=0),
             conv or helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], name="conv",
                                      pads=[1, 1, 1, 1]),
             _q("c", "cq", "y")]
    nodes += list(tail) or [_dq(tail_from, output, "y")]
    nodes = [n for n in nodes if n.name not in drop] + list(extra)
    parameters = [p for p in parameters if p.name not in drop]
    return graph_model(nodes, parameters + list(inits), input_dims, output=output)


def _x(count=20, shape=(1, 6, 6), seed=0):
    return (np.random.default_rng(seed).normal(0, 2, (count, *shape))).astype(np.float32)


# --- accepted forms, against onnxruntime ---------------------------------------------------------

KEPT = {
    "relu": [_dq("cq", "cd", "y"), helper.make_node("Relu", ["cd"], ["r"], name="relu"),
             _q("r", "rq", "y"), _dq("rq", "y", "y")],
    "clip": [_dq("cq", "cd", "y"), helper.make_node("Clip", ["cd", "lo", "hi"], ["r"],
                                                    name="clip"),
             _q("r", "rq", "y"), _dq("rq", "y", "y")],
    "maxpool-relu": [_dq("cq", "cd", "y"),
                     helper.make_node("MaxPool", ["cd"], ["m"], name="pool", kernel_shape=[2, 2],
                                      strides=[2, 2]),
                     _q("m", "mq", "y"), _dq("mq", "md", "y"),
                     helper.make_node("Relu", ["md"], ["r"], name="relu"),
                     _q("r", "rq", "y"), _dq("rq", "y", "y")],
}


@pytest.mark.parametrize("form", sorted(KEPT))
def test_kept_activation_against_onnxruntime(form):
    model = _model(KEPT[form], [_param("lo", np.float32(-0.35)), _param("hi", np.float32(2.0))])
    x = _x()
    expected = run_onnxruntime(model, x)
    network = read_model(model)
    np.testing.assert_array_equal(run_network(network, x, onnxruntime_rounding=True), expected)
    assert_double_rounding_only(network, x)
    lo, hi = network.layers[-1].clamp
    assert lo == (0 if form != "clip" else -4) and hi == (155 if form != "clip" else 20)


def test_uint8_weights_zero_point_folded():
    codes = (W_CODES.astype(np.int16) + 128).astype(np.uint8)
    model = _model()
    for init in model.graph.initializer:
        if init.name == "w":
            init.CopyFrom(_param("w", codes))
        if init.name == "w_z":
            init.CopyFrom(_param("w_z", np.array([128, 128], np.uint8)))
    network = read_model(model)
    np.testing.assert_array_equal(network.layers[0].weights, W_CODES)
    x = _x()
    np.testing.assert_array_equal(run_network(network, x, onnxruntime_rounding=True),
                                  run_onnxruntime(model, x))


# --- refusals -------------------------------------------------------------------------------

SUPPORTED = re.escape("supported: QuantizeLinear, DequantizeLinear, Conv, Gemm, MatMul, Relu, "
                      "Clip, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, "
                      "QLinearConv, QLinearMatMul, QGemm, QLinearAveragePool, "
                      "QLinearGlobalAveragePool, Constant")


def _refused(model, message):
    with pytest.raises(UnsupportedModelError, match=message) as info:
        read_model(model)
    assert "\n" not in str(info.value)


def test_unsupported_op():
    model = _model([_dq("cq", "cd", "y"), helper.make_node("Softmax", ["cd"], ["y"],
                                                           name="softmax")])
    _refused(model, rf"^node 'softmax' \(Softmax\): op not supported; {SUPPORTED}$")


def test_unsupported_domain_op():
    model = _model([helper.make_node("QLinearSigmoid", ["cq", "y_s", "y_z", "y_s", "y_z"],
                                     ["sq"], name="sigmoid", domain="com.microsoft"),
                    _dq("sq", "y", "y")])
    _refused(model, rf"^node 'sigmoid' \(com.microsoft.QLinearSigmoid\): op not supported; "
                    rf"{SUPPORTED}$")


def test_float_weights():
    model = _model(conv=helper.make_node("Conv", ["xd", "wf", "bd"], ["c"], name="conv",
                                         pads=[1, 1, 1, 1]),
                   inits=[_param("wf", W_CODES.astype(np.float32))], drop=("dq_wd",))
    _refused(model, r"^node 'conv' \(Conv\): weights 'wf' do not come from a DequantizeLinear "
                    r"of a quantized initializer \(float weights: a float-only path\)$")


def test_float_bias():
    model = _model(conv=helper.make_node("Conv", ["xd", "wd", "bf"], ["c"], name="conv",
                                         pads=[1, 1, 1, 1]),
                   inits=[_param("bf", np.float32([0.5, -0.5]))], drop=("dq_bd",))
    _refused(model, r"^node 'conv' \(Conv\): bias 'bf' does not come from a DequantizeLinear "
                    r"of a quantized initializer \(float bias: a float-only path\)$")


def test_float_output():
    model = _model(drop=("q_cq",), output="c")
    _refused(model, r"^node 'conv' \(Conv\): its float output goes to the graph output, a "
                    r"float-only path; supported: a QuantizeLinear right after it$")


def test_dynamic_spatial_shape():
    model = _model(input_dims=(1, "H", 6))
    _refused(model, r"^input 'x' has shape \['N', 1, 'H', 6\]; supported: \(batch, C, H, W\) "
                    r"with fixed C, H, W \(only the batch may be symbolic\)$")


def test_integer_graph_input():
    model = _model()
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    _refused(model, r"^input 'x' has element type 2; supported: float \(1\)$")


@pytest.mark.parametrize("attribute, value, message", [
    ("ceil_mode", 1, r"'ceil_mode'=1 is not supported; supported: 0"),
    ("dilations", [2, 2], r"'dilations'=\[2, 2\] is not supported; supported: \[1, 1\]"),
    ("storage_order", 1, r"'storage_order'=1 is not supported; supported: 0"),
])
def test_max_pool_attribute(attribute, value, message):
    pool = helper.make_node("MaxPool", ["cd"], ["m"], name="pool", kernel_shape=[2, 2],
                            **{attribute: value})
    model = _model([_dq("cq", "cd", "y"), pool, _q("m", "mq", "y"), _dq("mq", "y", "y")])
    _refused(model, rf"^node 'pool' \(MaxPool\): {message}$")


def test_average_pool_ceil_mode():
    pool = helper.make_node("AveragePool", ["cd"], ["m"], name="avg", kernel_shape=[2, 2],
                            ceil_mode=1)
    model = _model([_dq("cq", "cd", "y"), pool, _q("m", "mq", "o"), _dq("mq", "y", "o")])
    _refused(model, r"^node 'avg' \(AveragePool\): 'ceil_mode'=1 is not supported; "
                    r"supported: 0$")


def _dense_tail(flatten, gemm_attrs=None, op="Gemm"):
    weights = [_param("d", np.ones((72, 3), np.int8)), _param("d_s", np.float32(0.01)),
               _param("d_z", np.int8(0))]
    inputs = ["fd", "dd"]
    node = helper.make_node(op, inputs, ["g"], name="dense", **(gemm_attrs or {}))
    tail = [_dq("cq", "cd", "y"), flatten, _q("f", "fq", "y"), _dq("fq", "fd", "y"),
            _dq("d", "dd", "d"), node, _q("g", "gq", "o"), _dq("gq", "y", "o")]
    return tail, weights


def test_gemm_alpha():
    tail, weights = _dense_tail(helper.make_node("Flatten", ["cd"], ["f"], name="flat"),
                                {"alpha": 2.0})
    _refused(_model(tail, weights), r"^node 'dense' \(Gemm\): 'alpha'=2.0 is not supported; "
                                    r"supported: 1.0$")


def test_flatten_axis():
    tail, weights = _dense_tail(helper.make_node("Flatten", ["cd"], ["f"], name="flat", axis=2))
    _refused(_model(tail, weights), r"^node 'flat' \(Flatten\): 'axis'=2 is not supported; "
                                    r"supported: 1$")


def test_reshape_shape():
    tail, weights = _dense_tail(helper.make_node("Reshape", ["cd", "shape"], ["f"],
                                                 name="reshape"))
    model = _model(tail, weights + [_param("shape", np.array([1, -1], np.int64))])
    _refused(model, r"^node 'reshape' \(Reshape\): shape \[1, -1\] is not supported; supported: "
                    r"\(batch, C\*H\*W\) as \[-1, 72\], \[0, -1\] or \[0, 72\]$")


def test_dense_on_a_map():
    weights = [_param("d", np.ones((6, 3), np.int8)), _param("d_s", np.float32(0.01)),
               _param("d_z", np.int8(0))]
    tail = [_dq("cq", "cd", "y"), _dq("d", "dd", "d"),
            helper.make_node("MatMul", ["cd", "dd"], ["g"], name="dense"),
            _q("g", "gq", "o"), _dq("gq", "y", "o")]
    _refused(_model(tail, weights), r"^node 'dense' \(MatMul\): reads a 2x6x6 map; supported: "
                                    r"a Flatten or Reshape to \(batch, C\*H\*W\) before a dense "
                                    r"layer$")


def test_branch():
    model = _model([_dq("cq", "cd", "y"), helper.make_node("Relu", ["cd"], ["y"], name="relu"),
                    helper.make_node("Relu", ["cd"], ["z"], name="relu2")])
    _refused(model, r"^tensor 'cd' is read by 2 nodes/outputs \('relu', 'relu2'\); convhw "
                    r"supports a single chain of layers$")


def test_side_node():
    model = _model(extra=[_dq("w", "unused", "w", name="orphan", axis=0)])
    _refused(model, r"^node 'orphan' \(DequantizeLinear\): is not on the single chain from the "
                    r"input to the output \(branches and side computations are not "
                    r"supported\)$")


def test_requantization():
    model = _model([_dq("cq", "cd", "y"), _q("cd", "rq", "o", name="requantize"),
                    _dq("rq", "y", "o")])
    _refused(model, r"^node 'requantize' \(QuantizeLinear\): quantization \(scale "
                    r"0.07000000029802322, zero point 20, uint8\) differs from the "
                    r"DequantizeLinear before it \(a requantization\) \(scale "
                    r"0.10000000149011612, zero point 100, uint8\); supported: equal$")


def test_relu_that_requantizes():
    model = _model([_dq("cq", "cd", "y"), helper.make_node("Relu", ["cd"], ["r"], name="relu"),
                    _q("r", "rq", "o", name="q_after"), _dq("rq", "y", "o")])
    _refused(model, r"^node 'q_after' \(QuantizeLinear\): quantization \(scale "
                    r"0.07000000029802322, zero point 20, uint8\) differs from the "
                    r"DequantizeLinear before Relu 'relu' \(scale 0.10000000149011612, zero "
                    r"point 100, uint8\); supported: equal$")


def test_relu_on_the_input():
    model = _model(conv=helper.make_node("Relu", ["xd"], ["c"], name="relu"),
                   drop=("dq_wd", "dq_bd"))
    model.graph.node[-2].input[1] = "x_s"    # the Q after the Relu: the input's parameters
    model.graph.node[-2].input[2] = "x_z"
    model.graph.node[-1].input[1] = "x_s"
    model.graph.node[-1].input[2] = "x_z"
    _refused(model, r"^node 'relu' \(Relu\): acts on the network input; supported: Relu and "
                    r"Clip after a layer$")


def test_per_channel_activation():
    model = _model(x_scale=(np.float32([0.05]), np.array([128], np.uint8)))
    for init in model.graph.initializer:
        if init.name == "x_s":
            init.CopyFrom(_param("x_s", np.float32([0.05, 0.06])))
            break
    _refused(model, r"^node 'q_xq' \(QuantizeLinear\): input is quantized per channel \(scale "
                    r"shape \(2,\)\); activations must be quantized per tensor$")


def test_int16_activation():
    model = _model(x_scale=(0.05, np.int16(0)))
    _refused(model, r"^node 'q_xq' \(QuantizeLinear\): input type int16 is not supported; "
                    r"supported: int8, uint8$")


def test_one_dimensional_conv():
    conv = helper.make_node("Conv", ["xd", "w1", "bd"], ["c"], name="conv")
    model = _model(conv=conv, inits=[_param("w1", np.ones((2, 1, 3), np.int8))],
                   drop=("dq_wd",), extra=[_dq("w1", "w1d", "w", name="dq_w1", axis=0)])
    for node in model.graph.node:
        if node.name == "conv":
            node.input[1] = "w1d"
    _refused(model, r"^node 'conv' \(Conv\): weights of shape \(2, 1, 3\) are not 2-D; "
                    r"supported: \(Cout, Cin/group, KH, KW\)$")


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_conv_auto_pad_against_onnxruntime(auto_pad):
    conv = helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], name="conv", auto_pad=auto_pad,
                            strides=[2, 2])
    model = _model(conv=conv, input_dims=(1, 7, 6))
    x = _x(shape=(1, 7, 6))
    expected = run_onnxruntime(model, x)
    network = read_model(model)
    np.testing.assert_array_equal(run_network(network, x, onnxruntime_rounding=True), expected)
    pads = {"SAME_UPPER": ((1, 1), (0, 1)), "SAME_LOWER": ((1, 1), (1, 0)),
            "VALID": ((0, 0), (0, 0))}[auto_pad]
    assert network.layers[0].padding == pads


def test_flatten_straight_into_a_float_dense_layer():
    tail, weights = _dense_tail(helper.make_node("Flatten", ["cd"], ["fd"], name="flat"))
    tail = [n for n in tail if n.name not in ("q_fq", "dq_fd")]
    _refused(_model(tail, weights), r"^node 'flat' \(Flatten\): its float output goes to "
                                    r"'dense' \(Gemm\), a float-only path; supported: a "
                                    r"QuantizeLinear right after it$")


# --- more refusals, QDQ and QOperator --------------------------------------------------------

def _qop_model(tail=(), inits=(), *, conv_inputs=None, **conv_attrs):
    """x -> QuantizeLinear -> QLinearConv(3x3, 1->2) -> [tail on codes 'cq'] -> y."""
    parameters = [_param("x_s", np.float32(0.05)), _param("x_z", np.uint8(128)),
                  _param("w", W_CODES), _param("w_s", np.float32([0.02, 0.03])),
                  _param("w_z", np.zeros(2, np.int8)), _param("y_s", np.float32(0.1)),
                  _param("y_z", np.uint8(100)), _param("b", BIAS),
                  _param("o_s", np.float32(0.07)), _param("o_z", np.uint8(20))]
    conv = helper.make_node("QLinearConv", conv_inputs or ["xq", "x_s", "x_z", "w", "w_s", "w_z",
                                                           "y_s", "y_z", "b"],
                            ["cq"], name="conv", **({"pads": [1, 1, 1, 1]} | conv_attrs))
    nodes = [_q("x", "xq", "x"), conv] + (list(tail) or [_dq("cq", "y", "y")])
    return graph_model(nodes, parameters + list(inits), (1, 6, 6))


def _qdq_pool(op, **attrs):
    pool = helper.make_node(op, ["cd"], ["m"], name="pool", **attrs)
    return _model([_dq("cq", "cd", "y"), pool, _q("m", "mq", "y"), _dq("mq", "y", "y")])


def _replace_initializer(model, name, value):
    for init in model.graph.initializer:
        if init.name == name:
            init.CopyFrom(_param(name, value))
    return model


def _qgemm(inputs, **attrs):
    weights = [_param("d", np.ones((72, 3), np.int8)), _param("d_s", np.float32(0.01)),
               _param("d_z", np.int8(0)), _param("d_b", np.zeros(3, np.int32))]
    tail = [helper.make_node("Flatten", ["cq"], ["fq"], name="flat"),
            helper.make_node("QGemm", inputs, ["g"], name="dense", domain="com.microsoft",
                             **attrs), _dq("g", "y", "o")]
    return _qop_model(tail, weights)


MORE_REFUSALS = {
    "two outputs": (
        lambda: _add_output(_model()),
        r"^the graph has 1 inputs and 2 outputs; supported: one input and one output$"),
    "input into a float conv": (
        lambda: _model(conv=helper.make_node("Conv", ["x", "wd", "bd"], ["c"], name="conv"),
                       drop=("q_xq", "dq_xd")),
        r"^input 'x' is read by 'conv' \(Conv\); supported: a float input read by a "
        r"QuantizeLinear$"),
    "dangling tensor": (
        lambda: _model([_dq("cq", "y2", "y")]),
        r"^tensor 'y2' is read by nothing and is not the graph output$"),
    "float16 scale": (
        lambda: _replace_initializer(_model(), "x_s", np.float16(0.05)),
        r"^node 'q_xq' \(QuantizeLinear\): input scale is float16; supported: float32$"),
    "zero scale": (
        lambda: _replace_initializer(_model(), "y_s", np.float32(0)),
        r"^node 'q_cq' \(QuantizeLinear\): output 'scale' must be a positive float32 value, "
        r"not 0.0$"),
    "block size": (
        lambda: _model([helper.make_node("DequantizeLinear", ["cq", "y_s", "y_z"], ["y"],
                                         name="dq_y", block_size=2)]),
        r"^node 'dq_y' \(DequantizeLinear\): 'block_size'=2 is not supported; supported: 0 "
        r"\(per tensor/channel\)$"),
    "no saturation": (
        lambda: _model([_dq("cq", "cd", "y"),
                        helper.make_node("Relu", ["cd"], ["r"], name="relu"),
                        helper.make_node("QuantizeLinear", ["r", "y_s", "y_z"], ["rq"],
                                         name="q_r", saturate=0),
                        _dq("rq", "y", "y")]),
        r"^node 'q_r' \(QuantizeLinear\): 'saturate'=0 is not supported; supported: 1$"),
    "relu on codes": (
        lambda: _qop_model([helper.make_node("Relu", ["cq"], ["r"], name="relu"),
                            _dq("r", "y", "y")]),
        r"^node 'relu' \(Relu\): cannot read quantized codes; supported there: "
        r"DequantizeLinear, QLinearConv, QLinearMatMul, QGemm, QLinearAveragePool, "
        r"QLinearGlobalAveragePool, MaxPool, Flatten, Reshape$"),
    "qoperator on dequantized values": (
        lambda: _model([_dq("cq", "cd", "y"),
                        helper.make_node("QLinearGlobalAveragePool",
                                         ["cd", "y_s", "y_z", "y_s", "y_z"], ["g"], name="gap",
                                         domain="com.microsoft"), _dq("g", "y", "y")]),
        r"^node 'gap' \(QLinearGlobalAveragePool\): reads dequantized values; supported there: "
        r"QuantizeLinear, Conv, Gemm, MatMul, MaxPool, AveragePool, GlobalAveragePool, Relu, "
        r"Clip, Flatten, Reshape, or the graph output$"),
    "conv after flatten": (
        lambda: _qop_model([helper.make_node("Flatten", ["cq"], ["fq"], name="flat"),
                            helper.make_node("MaxPool", ["fq"], ["m"], name="pool",
                                             kernel_shape=[2, 2]), _dq("m", "y", "y")]),
        r"^node 'pool' \(MaxPool\): needs a C x H x W map, not a flattened vector of 72$"),
    "auto_pad value": (
        lambda: _qop_model(auto_pad="SAME", pads=None),
        r"^node 'conv' \(QLinearConv\): 'auto_pad'='SAME' is not supported; supported: "
        r"NOTSET, VALID, SAME_UPPER, SAME_LOWER$"),
    "pads length": (
        lambda: _qop_model(pads=[1, 1]),
        r"^node 'conv' \(QLinearConv\): 'pads'=\[1, 1\] is not 2-D; supported: "
        r"\[top, left, bottom, right\]$"),
    "pool kernel rank": (
        lambda: _qdq_pool("MaxPool", kernel_shape=[2]),
        r"^node 'pool' \(MaxPool\): 'kernel_shape'=\[2\] is not supported; supported: two "
        r"values >= 1 \(a 2-D op\)$"),
    "pool too large": (
        lambda: _qdq_pool("MaxPool", kernel_shape=[7, 7]),
        r"^node 'pool' \(MaxPool\): kernel \(7, 7\) does not fit the 6x6 input with padding "
        r"\(\(0, 0\), \(0, 0\)\)$"),
    "pool indices": (
        lambda: _model([_dq("cq", "cd", "y"),
                        helper.make_node("MaxPool", ["cd"], ["m", "idx"], name="pool",
                                         kernel_shape=[2, 2]),
                        _q("m", "mq", "y"), _dq("mq", "y", "y")]),
        r"^node 'pool' \(MaxPool\): the Indices output is not supported$"),
    "conv too large": (
        lambda: _qop_model(pads=[0, 0, 0, 0], strides=[1, 1], dilations=[4, 4]),
        r"^node 'conv' \(QLinearConv\): kernel 3x3 does not fit the 6x6 input with padding "
        r"\(\(0, 0\), \(0, 0\)\)$"),
    "group": (
        lambda: _qop_model(group=2),
        r"^node 'conv' \(QLinearConv\): weights \(2, 1, 3, 3\) with group 2 do not fit 1 input "
        r"channels$"),
    "kernel_shape": (
        lambda: _qop_model(kernel_shape=[5, 5]),
        r"^node 'conv' \(QLinearConv\): 'kernel_shape'=\[5, 5\] differs from the weights' "
        r"\[3, 3\]$"),
    "channels_last pool": (
        lambda: _qop_model([helper.make_node("QLinearAveragePool",
                                             ["cq", "y_s", "y_z", "y_s", "y_z"], ["a"],
                                             name="avg", domain="com.microsoft",
                                             kernel_shape=[2, 2], channels_last=1),
                            _dq("a", "y", "y")]),
        r"^node 'avg' \(QLinearAveragePool\): 'channels_last'=1 is not supported; supported: "
        r"0$"),
    "channels_last global pool": (
        lambda: _qop_model([helper.make_node("QLinearGlobalAveragePool",
                                             ["cq", "y_s", "y_z", "y_s", "y_z"], ["a"],
                                             name="gap", domain="com.microsoft",
                                             channels_last=1), _dq("a", "y", "y")]),
        r"^node 'gap' \(QLinearGlobalAveragePool\): 'channels_last'=1 is not supported; "
        r"supported: 0$"),
    "int16 weights": (
        lambda: _replace_initializer(_qop_model(), "w", W_CODES.astype(np.int16)),
        r"^node 'conv' \(QLinearConv\): weights of type int16 are not supported; supported: "
        r"int8, uint8$"),
    "weight scale shape": (
        lambda: _replace_initializer(_qop_model(), "w_s", np.float32([0.1, 0.2, 0.3])),
        r"^node 'conv' \(QLinearConv\): weight scale shape \(3,\) is neither per tensor nor "
        r"per output channel \(2\)$"),
    "weight axis": (
        lambda: _weight_axis_model(),
        r"^node 'conv' \(Conv\): weights are quantized along axis 1; supported: per tensor or "
        r"along the output channels \(axis 0\)$"),
    "int64 bias": (
        lambda: _replace_initializer(_qop_model(), "b", BIAS.astype(np.int64)),
        r"^node 'conv' \(QLinearConv\): bias of type int64 and shape \(2,\) is not supported; "
        r"supported: 2 int32 values$"),
    "bias zero point": (
        lambda: _replace_initializer(_model(), "b_z", np.int32([0, 3])),
        r"^node 'conv' \(Conv\): bias zero point is not 0; supported: 0$"),
    "qgemm float output": (
        lambda: _qgemm(["fq", "y_s", "y_z", "d", "d_s", "d_z", "d_b"], transB=0),
        r"^node 'dense' \(QGemm\): has no output scale \(float output\); supported: quantized "
        r"output$"),
    "qgemm transA": (
        lambda: _qgemm(["fq", "y_s", "y_z", "d", "d_s", "d_z", "d_b", "o_s", "o_z"], transA=1),
        r"^node 'dense' \(QGemm\): 'transA'=1 is not supported; supported: 0$"),
    "dense size": (
        lambda: _replace_initializer(
            _qgemm(["fq", "y_s", "y_z", "d", "d_s", "d_z", "d_b", "o_s", "o_z"]), "d",
            np.ones((70, 3), np.int8)),
        r"^node 'dense' \(QGemm\): weights \(3, 70\) do not fit 72 inputs$"),
    "dense weights rank": (
        lambda: _replace_initializer(
            _qgemm(["fq", "y_s", "y_z", "d", "d_s", "d_z", "d_b", "o_s", "o_z"]), "d",
            np.ones((72, 3, 1), np.int8)),
        r"^node 'dense' \(QGemm\): weights of shape \(72, 3, 1\) are not 2-D \(K, N\)$"),
    "constant without value": (
        lambda: _model(extra=[helper.make_node("Constant", [], ["k"], name="const",
                                               value_float=1.0)]),
        r"^node 'const' \(Constant\): only a 'value' tensor is supported$"),
}


def _add_output(model):
    model.graph.output.append(helper.make_tensor_value_info("cq", TensorProto.UINT8, None))
    return model


def _weight_axis_model():
    """Two weight scales along axis 1 (the input channels), not 0."""
    model = _model()
    for node in model.graph.node:
        if node.name == "dq_wd":
            node.attribute[0].i = 1
    return model


@pytest.mark.parametrize("case", sorted(MORE_REFUSALS))
def test_refusal(case):
    build, message = MORE_REFUSALS[case]
    _refused(build(), message)
