"""The requantization multiplier: exact integer form, and onnxruntime's double rounding."""

from fractions import Fraction

import numpy as np
import pytest
from onnx import helper, numpy_helper

from convhw.onnx import (exact_requantize, multiplier, onnxruntime_requantize, read_model,
                         run_network, scale_and_shift)

from onnx_models import graph_model, run_onnxruntime


def _rne(value):
    """Round a Fraction half to even."""
    floor = value.numerator // value.denominator
    rest = value - floor
    return floor + (rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1))


def test_multiplier_is_float32_in_onnxruntime_order():
    x_scale, y_scale = np.float32(0.0123), np.float32(0.0456)
    w_scales = np.float32([0.001, 0.37, 3.3e-5])
    expected = [np.float32(np.float32(x_scale * w) / y_scale) for w in w_scales]
    np.testing.assert_array_equal(multiplier(x_scale, w_scales, y_scale), expected)
    assert multiplier(x_scale, w_scales, y_scale).dtype == np.float32


def test_scale_and_shift_is_exact():
    rng = np.random.default_rng(0)
    values = np.concatenate([np.float32(2.0) ** rng.integers(-60, 30, 200)
                             * rng.uniform(1, 2, 200).astype(np.float32),
                             np.float32([1, 0.5, 3, 2**24 + 2, 2.0**-40, 2.0**-70])])
    scales, shifts = scale_and_shift(values.astype(np.float32))
    for value, scale, shift in zip(values.astype(np.float32), scales, shifts):
        assert 0 <= shift <= 64 and 1 <= scale
        if Fraction(float(value)).denominator <= 1 << 64:
            assert Fraction(scale, 1 << shift) == Fraction(float(value))
            assert scale % 2 == 1 or shift == 0
        else:   # too small for any |acc| < 2**31 to round to a nonzero value
            assert value < 2.0**-40 and (scale, shift) == (1, 64)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.inf, np.nan])
def test_scale_and_shift_wrong_multiplier(bad):
    with pytest.raises(ValueError, match=r"^a requantization multiplier must be positive and "
                                         r"finite, not "):
        scale_and_shift(np.float32([bad]))


def test_exact_requantize_rounds_half_to_even_and_clamps():
    rng = np.random.default_rng(1)
    acc = rng.integers(-2**24, 2**24, (3, 400))
    acc[:, :4] = [[3, 5, -3, -5]] * 3          # ties with S = 1/2
    s = np.float32([0.5, 0.0123, 3.7e-6])
    out = exact_requantize(acc, s, (-1000, 900))
    for c in range(3):
        for a, got in zip(acc[c], out[c]):
            want = min(max(_rne(int(a) * Fraction(float(s[c]))), -1000), 900)
            assert got == want
    np.testing.assert_array_equal(out[0, :4], [2, 2, -2, -2])


def _double_rounded_accumulators(s, low, high):
    """Accumulators in [low, high) where float32 double rounding differs from exact."""
    acc = np.arange(low, high, dtype=np.int64)
    exact = exact_requantize(acc, np.float32([s]), (-2**40, 2**40))
    emulated = onnxruntime_requantize(acc, np.float32([s]), (-2**40, 2**40))
    return acc[exact != emulated]


def test_double_rounding_is_rare_and_off_by_one():
    s = multiplier(0.01, [0.013], 1.0)[0]
    acc = _double_rounded_accumulators(s, 0, 1 << 20)
    assert 0 < len(acc) < 50       # a few per million accumulators below 2**20
    exact = exact_requantize(acc, np.float32([s]), (-2**40, 2**40))
    emulated = onnxruntime_requantize(acc, np.float32([s]), (-2**40, 2**40))
    assert np.all(np.abs(exact - emulated) == 1)


def test_onnxruntime_double_rounds_where_the_emulation_says():
    """A QLinearConv (1x1, weight 1) whose accumulators are chosen where the float32 product
    rounds differently: onnxruntime equals the emulation, and differs from the exact value at
    exactly those outputs."""
    x_scale, w_scale, y_scale = np.float32(0.00713), np.float32(0.01234), np.float32(1.0)
    s = multiplier(x_scale, [w_scale], y_scale)[0]
    targets = _double_rounded_accumulators(s, 1 << 20, 2_800_000)[:12]   # outputs below 255
    assert len(targets) == 12
    # Channel c accumulates code + bias[c]; code 200 at pixel (0, 0) reaches targets[c].
    bias = (targets - 200).astype(np.int32)
    cout = len(bias)
    inits = [numpy_helper.from_array(v, n) for v, n in [
        (np.float32(x_scale), "xs"), (np.uint8(0), "xz"),
        (np.ones((cout, 1, 1, 1), np.int8), "w"), (np.full(cout, w_scale, np.float32), "ws"),
        (np.zeros(cout, np.int8), "wz"), (np.float32(y_scale), "ys"), (np.uint8(0), "yz"),
        (bias, "b")]]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["q"]),
             helper.make_node("QLinearConv", ["q", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"],
                              ["c"], name="conv"),
             helper.make_node("DequantizeLinear", ["c", "ys", "yz"], ["y"])]
    model = graph_model(nodes, inits, (1, 4, 4))
    codes = np.arange(185, 201, dtype=np.float32)[::-1].reshape(1, 1, 4, 4)
    x = codes * x_scale
    expected = run_onnxruntime(model, x)
    network = read_model(model)
    np.testing.assert_array_equal(run_network(network, x, onnxruntime_rounding=True), expected)
    exact = run_network(network, x)
    differs = exact != expected
    assert differs[0, :, 0, 0].all()          # every chosen accumulator double rounds
    assert np.abs(exact - expected).max() == 1
