"""Imported ONNX networks in hardware (issue 11): the network's chain of streaming cores, run
by the compiled backend with inferences back to back, equals the exact integer reference
(``run_network``) on every output, and onnxruntime on every output but those where
onnxruntime's float32 double rounding differs from the exact result, which the emulation
(``run_network(..., onnxruntime_rounding=True)``, bit-exact with onnxruntime) identifies.

The shipped digits classifier runs on its held-out split (360 images) this way.
"""

import os

import numpy as np
import onnx
import pytest

from convhw import fastsim
from convhw.fastsim import model as fastsim_model
from convhw.folding import balance_network
from convhw.gateware import Chain
from convhw.harness import simulate
from convhw.onnx import input_codes, output_values, read_model, run_network

from onnx_models import quantized, random_input, run_onnxruntime

needs_engine = pytest.mark.skipif(not fastsim.available(), reason=str(fastsim_model._missing()))

MODEL = os.path.join(os.path.dirname(__file__), "..", "sim", "models", "digits.onnx")


def run_hardware(network, x, *, foldings=None, stall=0.0, seed=0):
    """The chain's output for float input ``x`` ``(N, C, H, W)``, as onnxruntime shapes it."""
    chain = network.chain(foldings)
    frames = list(input_codes(network, x) - network.input.zero_point)
    result = simulate(Chain(chain), frames, in_stall=stall, out_stall=stall, seed=seed,
                      backend="fast")
    assert result.errors == []
    return output_values(network, np.stack(result.frames)), result


def check_against_onnxruntime(model, network, x, got, *, basic=False):
    """``got`` equals the exact reference everywhere, and onnxruntime where the emulation of
    its double rounding agrees with the exact reference; returns how many outputs differ."""
    expected = run_onnxruntime(model, x, basic=basic)
    exact = run_network(network, x)
    emulated = run_network(network, x, onnxruntime_rounding=True)
    np.testing.assert_array_equal(emulated, expected)
    np.testing.assert_array_equal(got, exact)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    same = exact == emulated
    np.testing.assert_array_equal(got[same], expected[same])
    return int((~same).sum())


@needs_engine
@pytest.mark.parametrize("case, foldings", [
    # asymmetric pads, strides, dilation, groups; the default folding (one product per cycle)
    (("conv_attributes", "qdq", "uint8", "int8", True), None),
    # Conv, Clip, MaxPool, Reshape, MatMul, Relu, Gemm; folded layers
    (("dense", "qoperator", "uint8", "uint8", False), [(3, 3), None, (4, 9), (5, 8)]),
    # AveragePool without padding and with count_include_pad=1: depthwise all-ones cores;
    # int8 codes through QOperator
    (("average", "qoperator", "int8", "int8", False), [(2, 9), None, None, (3, 2)]),
    # MaxPool with unequal pads; AveragePool with count_include_pad=0 and padding (a divisor
    # per window) and with count_include_pad=1; GlobalAveragePool; a dense head
    # (every foldable layer at pe = simd = 1, the smallest design: the quickest to compile)
    (("pooling", "qdq", "uint8", "int8", True), [(1, 1), None, (1, 1), None, (1, 1), (1, 1),
                                                  (1, 1), (1, 1)]),
], ids=["conv_attributes-qdq", "dense-qoperator-folded", "average-qoperator-int8",
        "pooling-qdq"])
def test_quantized_models(case, foldings):
    model, shape = quantized(*case)
    network = read_model(model)
    x = random_input(shape, 12, seed=21)
    got, result = run_hardware(network, x, foldings=foldings, stall=0.2, seed=3)
    differ = check_against_onnxruntime(model, network, x, got,
                                       basic=case[1] == "qoperator" and case[2] == "int8")
    if case[0] not in ("average", "pooling"):   # (average pools' exact ties: docs/onnx.md)
        assert differ <= got.size // 50


@needs_engine
def test_digits_test_split_in_hardware():
    """The held-out 360 digits, back to back through the compiled chain: every score equals
    onnxruntime's (the split has no double-rounding output) and the exact reference's."""
    from sim.train_digits import load

    images, labels, _, test_index = load()
    x = images[test_index]
    model = onnx.load(MODEL)
    network = read_model(model)
    # The folding `convhw simulate --model` chooses (the UP5K's 8 DSP blocks): one model for
    # both tests.
    foldings = balance_network(network, max_multipliers=8).foldings
    got, result = run_hardware(network, x, foldings=foldings)
    assert check_against_onnxruntime(model, network, x, got) == 0
    np.testing.assert_array_equal(got, run_onnxruntime(model, x))
    assert np.mean(got.argmax(1) == labels[test_index]) >= 0.95
    # Back to back: the bottleneck layer's interval per inference, plus the pipeline's fill
    # (the first inference, at most every layer's frame one after the other).
    chain = network.chain(foldings)
    fill = sum(spec.cycles_per_frame for spec in chain.specs)
    assert result.cycles <= (len(x) - 1) * chain.cycles_per_frame + fill


def test_foldings_must_fit_the_layers():
    network = read_model(MODEL)
    with pytest.raises(ValueError, match=r"^'foldings' must give one \(pe, simd\) or None per "
                                         r"layer \(4\), not 2$"):
        network.chain([None, None])
    with pytest.raises(ValueError, match=r"^layer 1 'pool1' \(MaxPool\): a max-pool layer takes "
                                         r"no folding, not \(1, 1\)$"):
        network.chain([None, (1, 1), None, None])
    with pytest.raises(ValueError, match=r"^layer 0 'conv1' \(Conv\): 'pe' must be from 1 to 4 "
                                         r"\(the output channels\), not 7$"):
        network.chain([(7, 1), None, None, None])
