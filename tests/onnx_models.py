"""Float ONNX models built with ``onnx.helper``, quantized by onnxruntime, and run by it.

Shared by the ``test_onnx_*`` files. Each float model is a chain of the ops that convhw imports,
with weights drawn from a fixed seed; :func:`quantized` runs ``quantize_static`` on it (cached,
so each combination is quantized once per process); :func:`run_onnxruntime` runs a model with
the session option that avoids the u8 x s8 int16 saturation on CPUs without VNNI.
"""

import functools
import logging
import os
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["graph_model", "FLOAT_MODELS", "quantized", "run_onnxruntime", "random_input",
           "optimized_ops", "assert_double_rounding_only"]

logging.getLogger().setLevel(logging.ERROR)   # quantize_static's pre-processing advice


def graph_model(nodes, initializers, input_shape, *, inputs=None, output="y", opset=17,
                output_type=TensorProto.FLOAT, input_type=TensorProto.FLOAT):
    """A model of ``nodes`` reading ``x`` of ``input_shape`` (batch ``"N"`` first)."""
    inputs = inputs or [helper.make_tensor_value_info("x", input_type, ["N", *input_shape])]
    graph = helper.make_graph(nodes, "test", inputs,
                              [helper.make_tensor_value_info(output, output_type, None)],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model


def _float(name, value):
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _conv(name, source, rng, cout, cin, kernel, *, group=1, bias=True, **attrs):
    weights = rng.normal(0, 1 / np.sqrt(cin // group * kernel[0] * kernel[1]),
                         (cout, cin // group, *kernel))
    inits = [_float(f"{name}_w", weights)]
    inputs = [source, f"{name}_w"]
    if bias:
        inits.append(_float(f"{name}_b", rng.normal(0, 0.3, cout)))
        inputs.append(f"{name}_b")
    node = helper.make_node("Conv", inputs, [name], name=name, group=group,
                            kernel_shape=list(kernel), **attrs)
    return node, inits


def conv_attributes(rng):
    """Conv with strides, asymmetric pads, dilations and groups; Relu; output a map."""
    c1, i1 = _conv("conv1", "x", rng, 6, 3, (3, 3), strides=[2, 1], pads=[1, 0, 2, 1])
    c2, i2 = _conv("conv2", "relu1", rng, 6, 6, (3, 2), group=3, dilations=[2, 1],
                   pads=[2, 1, 2, 0])
    c3, i3 = _conv("conv3", "conv2", rng, 4, 6, (1, 1), bias=False)
    nodes = [c1, helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"), c2,
             c3, helper.make_node("Relu", ["conv3"], ["y"], name="relu3")]
    return graph_model(nodes, i1 + i2 + i3, (3, 11, 9)), (3, 11, 9)


def pooling(rng):
    """MaxPool and AveragePool with pads, strides and count_include_pad; GlobalAveragePool;
    a dense head (Flatten, Gemm)."""
    c1, i1 = _conv("conv1", "x", rng, 4, 2, (3, 3), pads=[1, 1, 1, 1])
    c2, i2 = _conv("conv2", "max1", rng, 5, 4, (1, 1))
    c3, i3 = _conv("conv3", "avg2", rng, 6, 5, (2, 2))
    dense = [_float("dense_w", rng.normal(0, 0.5, (3, 6))), _float("dense_b", [0.1, -0.2, 0.3])]
    nodes = [
        c1, helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
        helper.make_node("MaxPool", ["relu1"], ["max1"], name="max1", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 0]),
        c2, helper.make_node("AveragePool", ["conv2"], ["avg1"], name="avg1",
                             kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["avg1"], ["avg2"], name="avg2", kernel_shape=[2, 3],
                         strides=[1, 2], pads=[0, 1, 1, 0], count_include_pad=1),
        c3, helper.make_node("GlobalAveragePool", ["conv3"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
        helper.make_node("Gemm", ["flat", "dense_w", "dense_b"], ["y"], name="dense",
                         transB=1),
    ]
    return graph_model(nodes, i1 + i2 + i3 + dense, (2, 12, 10)), (2, 12, 10)


def dense(rng):
    """Conv, Clip, MaxPool, Reshape, MatMul (no bias), Relu, Gemm with transB=0."""
    c1, i1 = _conv("conv1", "x", rng, 3, 1, (3, 3))
    size = 3 * 3 * 3
    inits = i1 + [numpy_helper.from_array(np.array([-1, size], np.int64), "shape"),
                  _float("mm_w", rng.normal(0, 0.3, (size, 8))),
                  _float("gemm_w", rng.normal(0, 0.4, (8, 5))),
                  _float("gemm_b", rng.normal(0, 0.2, 5)),
                  _float("clip_lo", 0.0), _float("clip_hi", 1.5)]
    nodes = [c1, helper.make_node("Clip", ["conv1", "clip_lo", "clip_hi"], ["clip1"],
                                  name="clip1"),
             helper.make_node("MaxPool", ["clip1"], ["max1"], name="max1", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Reshape", ["max1", "shape"], ["flat"], name="reshape"),
             helper.make_node("MatMul", ["flat", "mm_w"], ["mm"], name="matmul"),
             helper.make_node("Relu", ["mm"], ["relu"], name="relu"),
             helper.make_node("Gemm", ["relu", "gemm_w", "gemm_b"], ["y"], name="gemm")]
    return graph_model(nodes, inits, (1, 8, 8)), (1, 8, 8)


def global_average(rng):
    """Conv, then an AveragePool whose kernel covers the map (onnxruntime's global path)."""
    c1, i1 = _conv("conv1", "x", rng, 4, 2, (3, 3), pads=[1, 1, 1, 1])
    nodes = [c1, helper.make_node("AveragePool", ["conv1"], ["y"], name="avg",
                                  kernel_shape=[6, 7])]
    return graph_model(nodes, i1, (2, 6, 7)), (2, 6, 7)


def average(rng):
    """AveragePools that the hardware builds: no padding, and padding with
    count_include_pad=1."""
    c1, i1 = _conv("conv1", "x", rng, 4, 2, (3, 3), pads=[1, 1, 1, 1])
    c2, i2 = _conv("conv2", "avg2", rng, 3, 4, (1, 1))
    nodes = [c1, helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
             helper.make_node("AveragePool", ["relu1"], ["avg1"], name="avg1",
                              kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("AveragePool", ["avg1"], ["avg2"], name="avg2",
                              kernel_shape=[3, 2], pads=[1, 0, 1, 1], count_include_pad=1),
             c2]
    return graph_model(nodes, i1 + i2, (2, 9, 8), output="conv2"), (2, 9, 8)


FLOAT_MODELS = {"conv_attributes": conv_attributes, "pooling": pooling, "dense": dense,
                "global_average": global_average, "average": average}


def random_input(shape, count, seed, spread=1.5):
    """``count`` float32 inputs, some beyond the calibration range (to saturate)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0, spread, (count, *shape)) * rng.choice([1, 1, 1, 3], (count, 1, 1, 1))
            ).astype(np.float32)


@functools.lru_cache(maxsize=None)
def quantized(name, quant_format, activation, weight, per_channel):
    """``(model, input_shape)``: ``FLOAT_MODELS[name]`` through ``quantize_static``.

    ``quant_format`` is ``"qdq"`` or ``"qoperator"``; ``activation`` and ``weight`` are
    ``"int8"`` or ``"uint8"``.
    """
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    float_model, shape = FLOAT_MODELS[name](np.random.default_rng(7))
    types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    calibration = random_input(shape, 16, seed=1)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{"x": calibration[i:i + 4]} for i in range(0, 16, 4)])

        def get_next(self):
            return next(self._batches, None)

    with tempfile.TemporaryDirectory() as scratch:
        source, target = os.path.join(scratch, "f.onnx"), os.path.join(scratch, "q.onnx")
        onnx.save(float_model, source)
        quantize_static(source, target, Reader(),
                        quant_format={"qdq": QuantFormat.QDQ,
                                      "qoperator": QuantFormat.QOperator}[quant_format],
                        activation_type=types[activation], weight_type=types[weight],
                        per_channel=per_channel)
        return onnx.load(target), shape


def _session(model, optimized_path=None, basic=False):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.x64quantprecision", "1")
    if basic:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    if optimized_path:
        options.optimized_model_filepath = optimized_path
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def run_onnxruntime(model, x, *, basic=False):
    """onnxruntime's output for ``x``.

    ``basic`` keeps to basic graph optimizations. QOperator models with int8 activations need
    it: the extended (NHWC) optimizations turn QLinearConv, QLinearMatMul and QGemm on int8
    into ``com.microsoft`` kernels that onnxruntime's CPU provider lacks.
    """
    session = _session(model, basic=basic)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def optimized_ops(model):
    """The op types onnxruntime runs after its graph optimizations."""
    import warnings

    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        path = os.path.join(scratch, "optimized.onnx")
        _session(model, path)
        return [node.op_type for node in onnx.load(path).graph.node]


def assert_double_rounding_only(network, x):
    """Layer by layer on onnxruntime's own intermediate codes: where the exact rounding differs
    from onnxruntime's float32 rounding, ``acc * S`` lies within float32 rounding of a tie."""
    from fractions import Fraction

    from convhw.golden import conv_layer
    from convhw.onnx import input_codes, run_layer
    from convhw.onnx.layers import AveragePoolLayer, ConvLayer
    from convhw.onnx.multiplier import scale_and_shift

    v = input_codes(network, x) - network.input.zero_point
    for layer in network.layers:
        emulated = run_layer(layer, v, onnxruntime_rounding=True)
        if isinstance(layer, AveragePoolLayer):
            _average_near_ties(layer, v, run_layer(layer, v), emulated)
        if isinstance(layer, ConvLayer):
            exact = run_layer(layer, v)
            for n, c, i, j in np.argwhere(exact != emulated):
                acc = int(conv_layer(v[n], layer.weights, bias=layer.bias, groups=layer.groups,
                                     stride=layer.stride, padding=layer.padding,
                                     dilation=layer.dilation)[c, i, j])
                scales, shifts = scale_and_shift(layer.multipliers[c:c + 1])
                product = Fraction(acc * scales[0], 1 << shifts[0])
                distance = abs(product - (product.numerator // product.denominator)
                               - Fraction(1, 2))
                assert distance <= abs(product) * Fraction(1, 1 << 23), (layer.name, acc)
                assert abs(int(exact[n, c, i, j]) - int(emulated[n, c, i, j])) == 1
        v = emulated


def _average_near_ties(layer, v, exact, emulated):
    """Where the exact average pool differs from onnxruntime's float32 one, the exact
    ``sum * S(n)`` lies within 2**-16 of a tie (in centred or code space alike: the zero point
    is an integer) and the two differ by one."""
    from fractions import Fraction

    from convhw.onnx.multiplier import scale_and_shift
    from convhw.onnx.pooling import average_multiplier, window_counts

    (kh, kw), (sy, sx) = layer.kernel, layer.stride
    (top, _), (left, _) = layer.padding
    counts = (np.full(exact.shape[-2:], kh * kw) if layer.count_include_pad
              else window_counts(v.shape, layer))
    for n, c, i, j in np.argwhere(exact != emulated):
        rows = range(max(i * sy - top, 0), min(i * sy - top + kh, v.shape[2]))
        cols = range(max(j * sx - left, 0), min(j * sx - left + kw, v.shape[3]))
        total = int(sum(v[n, c, y, x] for y in rows for x in cols))
        scales, shifts = scale_and_shift([average_multiplier(layer, counts[i, j])])
        product = Fraction(total * scales[0], 1 << shifts[0])
        distance = abs(product - (product.numerator // product.denominator) - Fraction(1, 2))
        assert distance <= Fraction(1, 1 << 16), (layer.name, total)
        assert abs(int(exact[n, c, i, j]) - int(emulated[n, c, i, j])) == 1
