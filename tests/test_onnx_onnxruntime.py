"""Imported models against onnxruntime, on random inputs: bit for bit.

Every float model of ``onnx_models`` is quantized by ``quantize_static`` in both formats, with
int8 and uint8 activations, int8 and uint8 weights (int8 activations with uint8 weights is not a
combination onnxruntime offers), per tensor and per channel. For each:

- the onnxruntime emulation (``run_network(..., onnxruntime_rounding=True)``) equals onnxruntime
  on every output;
- the exact reference differs from onnxruntime only through double rounding, and layer by layer
  every conv/dense/global-average output where exact and float32 rounding disagree has its exact
  product ``acc * S`` within float32 rounding of a tie; every average-pool output where the
  exact average and onnxruntime's float32 one disagree has ``sum * S(n)`` within 2**-16 of a
  tie.
"""

import itertools

import numpy as np
import pytest

from convhw.onnx import AveragePoolLayer, input_codes, read_model, run_network

from onnx_models import (FLOAT_MODELS, assert_double_rounding_only, optimized_ops, quantized,
                         random_input, run_onnxruntime)

CASES = [case for case in itertools.product(sorted(FLOAT_MODELS), ("qdq", "qoperator"),
                                            ("int8", "uint8"), ("int8", "uint8"),
                                            (False, True))
         if not (case[2] == "int8" and case[3] == "uint8")]


def _case_id(case):
    name, fmt, activation, weight, per_channel = case
    return (f"{name}-{fmt}-a{activation}-w{weight}-"
            f"{'per_channel' if per_channel else 'per_tensor'}")


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_against_onnxruntime(case):
    name, fmt, activation, weight, per_channel = case
    model, shape = quantized(*case)
    x = random_input(shape, 48, seed=CASES.index(case) + 100)
    expected = run_onnxruntime(model, x, basic=fmt == "qoperator" and activation == "int8")
    network = read_model(model)

    emulated = run_network(network, x, onnxruntime_rounding=True)
    assert emulated.shape == expected.shape and emulated.dtype == expected.dtype
    np.testing.assert_array_equal(emulated, expected)

    exact = run_network(network, x)
    assert exact.shape == expected.shape and exact.dtype == expected.dtype
    if not any(isinstance(layer, AveragePoolLayer) for layer in network.layers):
        # (An AveragePool with equal input and output scales, as quantize_static writes it,
        # has many exact ties that onnxruntime's float32 sum decides either way: see
        # docs/onnx.md. Layer by layer the differences are checked below.)
        assert np.mean(exact != expected) < 0.05
    assert_double_rounding_only(network, x)


def test_one_input_without_batch_axis():
    model, shape = quantized("pooling", "qdq", "uint8", "int8", True)
    network = read_model(model)
    x = random_input(shape, 3, seed=5)
    batched = run_network(network, x)
    for n in range(3):
        np.testing.assert_array_equal(run_network(network, x[n]), batched[n])


def test_integer_input_is_taken_as_codes():
    model, shape = quantized("conv_attributes", "qdq", "int8", "int8", False)
    network = read_model(model)
    x = random_input(shape, 4, seed=6)
    codes = input_codes(network, x).astype(np.int8)
    np.testing.assert_array_equal(run_network(network, codes), run_network(network, x))


@pytest.mark.parametrize("activation", ["int8", "uint8"])
def test_onnxruntime_runs_the_qdq_models_fused(activation):
    """The comparisons above are with onnxruntime's integer kernels, not a float path."""
    model, _ = quantized("pooling", "qdq", activation, "int8", True)
    ops = optimized_ops(model)
    for fused in ("QLinearConv", "QLinearAveragePool", "QLinearGlobalAveragePool", "QGemm"):
        assert fused in ops
    assert not {"Conv", "Gemm", "AveragePool", "GlobalAveragePool"} & set(ops)


@pytest.mark.parametrize("dtype, scale, zero", [(np.uint8, 0.25, 7), (np.int8, 0.0371, -3),
                                                (np.uint8, 3.3e-3, 128)])
def test_quantize_and_dequantize_linear(dtype, scale, zero):
    """The input QuantizeLinear (ties to even, saturation) and the output DequantizeLinear."""
    from onnx import helper, numpy_helper

    from onnx_models import graph_model

    inits = [numpy_helper.from_array(np.float32(scale), "s"),
             numpy_helper.from_array(dtype(zero), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    model = graph_model(nodes, inits, (2, 8, 8))
    rng = np.random.default_rng(4)
    ties = (rng.integers(-300, 300, (16, 2, 8, 8)) + 0.5) * np.float32(scale)
    x = np.concatenate([ties, rng.normal(0, 100 * scale, (16, 2, 8, 8))]).astype(np.float32)
    network = read_model(model)
    assert network.layers == ()
    np.testing.assert_array_equal(run_network(network, x), run_onnxruntime(model, x))
