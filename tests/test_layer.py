"""CNN layers in hardware (issue 10): multi-channel Conv2d, bit-exact with the golden model.

Every case streams two frames back to back under 0%, 30% and 90% random stalls on both sides
(90% on the compiled backend, whose speed makes it practical), and checks the outputs, the frame
markers and, without stalls, the cycle count the spec predicts. The cases cover Cin and Cout from
1 to 16 with Cin != Cout, groups 1, 2 and depthwise, 1x1, 3x3 and 5x3 kernels, stride 2, dilation
2, "same" padding, bias, ReLU and requantization, foldings whose pe and simd do not divide their
dimensions, and runtime weights changed between frames.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from convhw import Conv2d, ConvSpec
from convhw.golden import run_spec
from convhw.harness import describe_mismatch, simulate


def _weights(seed, shape, lo=-40, hi=40):
    return np.random.default_rng(seed).integers(lo, hi + 1, size=shape)


def _bias(seed, count):
    return np.random.default_rng(seed + 1000).integers(-2000, 2001, size=count)


#: name -> (spec arguments, runtime weights shape or None)
CASES = {
    "full-3in-5out-3x3-same-bias-relu-requant": (dict(
        width=6, height=5, weights=_weights(1, (5, 3, 3, 3)), padding="same", bias=_bias(1, 5),
        relu=True, shift=4, out_bits=8), None),
    "groups2-4in-2out-5x3-stride2": (dict(
        width=7, height=7, weights=_weights(2, (2, 2, 5, 3)), groups=2, stride=2,
        padding=(2, 1)), None),
    "depthwise-6-dilation2-same": (dict(
        width=7, height=6, weights=_weights(3, (6, 1, 3, 3)), groups=6, dilation=2,
        padding="same", relu=True), None),
    "pointwise-16in-7out-1x1-4bit": (dict(
        width=5, height=4, weights=_weights(4, (7, 16, 1, 1)), in_bits=4), None),
    "1in-16out-3x3-signed": (dict(
        width=5, height=4, weights=_weights(5, (16, 1, 3, 3)), in_signed=True, padding=1,
        shift=3, out_bits=9), None),
    "16in-1out-2x2-scale-half-even": (dict(
        width=5, height=4, weights=_weights(6, (1, 16, 2, 2)), scale=3, shift=5,
        rounding="half-even", bias=[77]), None),
    "folded-pe3-simd4-3in-5out-bias-relu": (dict(
        width=6, height=5, weights=_weights(7, (5, 3, 3, 3)), padding="same",
        bias=_bias(7, 5), relu=True, shift=5, out_bits=8, pe=3, simd=4), None),
    "folded-depthwise-4-pe3-simd2": (dict(
        width=6, height=5, weights=_weights(8, (4, 1, 3, 3)), groups=4, padding=1, pe=3,
        simd=2), None),
    "folded-groups2-4in-6out-pe4-simd7-stride2": (dict(
        width=7, height=6, weights=_weights(9, (6, 2, 3, 3)), groups=2, stride=2, padding=1,
        pe=4, simd=7, flip=True), None),
    "folded-per-channel-scale-shift-half-even": (dict(
        width=5, height=4, weights=_weights(11, (5, 2, 2, 2)), scale=[1, 3, 5, 7, 2],
        shift=[0, 1, 2, 3, 4], rounding="half-even", bias=_bias(11, 5), pe=2, simd=3,
        padding=1), None),
    "folded-pointwise-pe1-simd1": (dict(
        width=5, height=4, weights=_weights(10, (3, 2, 1, 1)), pe=1, simd=1, relu=True), None),
    "runtime-3in-4out-3x3-dsp-and-logic": (dict(
        width=6, height=5, kernel_shape=(3, 3), in_channels=3, out_channels=4, padding="same",
        max_dsps=20, coeff_bits=6, shift=2), (4, 3, 3, 3)),
    "runtime-folded-4in-3out-pe2-simd5-flip": (dict(
        width=6, height=5, kernel_shape=(3, 3), in_channels=4, out_channels=3, padding=1,
        pe=2, simd=5, flip=True, relu=True, shift=6, out_bits=8), (3, 4, 3, 3)),
}

STALLS = [(0.0, "pysim"), (0.3, "pysim"), (0.9, "fast")]


def run_case(spec, weights_shape, stall, backend, seed=0):
    rng = np.random.default_rng(seed)
    lo, hi = spec.pixel_range
    frames = [rng.integers(lo, hi + 1, size=spec.input_shape) for _ in range(2)]
    coefficients = None
    if weights_shape is not None:
        clo, chi = -(1 << (spec.coeff_bits - 1)), (1 << (spec.coeff_bits - 1)) - 1
        coefficients = [rng.integers(clo, chi + 1, size=weights_shape) for _ in frames]
        coefficients[1].flat[0], coefficients[1].flat[-1] = clo, chi   # the extremes
    result = simulate(Conv2d(spec), frames, coefficients=coefficients, in_stall=stall,
                      out_stall=stall, seed=seed, backend=backend)
    assert not result.errors, result.errors[:3]
    for index, frame in enumerate(frames):
        weights = None if coefficients is None else coefficients[index]
        expected = run_spec(spec, frame, weights)
        assert result.frames[index].shape == spec.output_shape
        assert describe_mismatch(result.frames[index], expected) is None, \
            describe_mismatch(result.frames[index], expected)
    return result


@pytest.mark.parametrize("stall,backend", STALLS, ids=[f"stall{s}-{b}" for s, b in STALLS])
@pytest.mark.parametrize("name", CASES)
def test_layer_matches_golden(name, stall, backend):
    kwargs, weights_shape = CASES[name]
    spec = ConvSpec(**kwargs)
    assert spec.is_layer and spec.in_channels != spec.out_channels or spec.groups > 1
    run_case(spec, weights_shape, stall, backend)


@pytest.mark.parametrize("name", CASES)
def test_cycles_per_frame_as_predicted(name):
    """One frame with no stalls takes exactly ``spec.cycles_per_frame`` at every folding."""
    kwargs, weights_shape = CASES[name]
    spec = ConvSpec(**kwargs)
    rng = np.random.default_rng(5)
    frame = rng.integers(*spec.pixel_range, size=spec.input_shape, endpoint=True)
    coefficients = None if weights_shape is None else [np.ones(weights_shape, dtype=int)]
    result = simulate(Conv2d(spec), [frame], coefficients=coefficients)
    outputs = spec.out_shape[0] * spec.out_shape[1]
    assert result.cycles == spec.cycles_per_frame
    if spec.folded:
        # Every output takes ``fold`` cycles: the multipliers are busy all of that time.
        assert spec.cycles_per_frame >= outputs * spec.fold


def test_unfolded_channel_one_layer_is_todays_conv2d():
    """A 1 -> 1 layer is the single-channel filter: same latency, same outputs."""
    kernel = [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]
    plain = ConvSpec(width=8, height=6, kernel=kernel, padding="same")
    layer = ConvSpec(width=8, height=6, weights=[[kernel]], padding="same")
    assert (layer.latency, layer.out_bits, layer.cycles_per_frame) == \
        (plain.latency, plain.out_bits, plain.cycles_per_frame)
    frame = np.random.default_rng(1).integers(0, 256, size=(6, 8))
    a = simulate(Conv2d(plain), [frame])
    b = simulate(Conv2d(layer), [frame[np.newaxis]])
    assert (a.frames[0] == b.frames[0][0]).all() and a.cycles == b.cycles


def test_kernel_on_each_channel_is_depthwise():
    """``kernel`` with ``in_channels`` filters every channel alike, as cv2.filter2D does."""
    spec = ConvSpec(width=7, height=5, kernel=[[1, 2, 1], [2, 4, 2], [1, 2, 1]], in_channels=3,
                    padding="same", shift=4)
    assert (spec.groups, spec.out_channels) == (3, 3)
    frame = np.random.default_rng(2).integers(0, 256, size=(3, 5, 7))
    result = simulate(Conv2d(spec), [frame], in_stall=0.2, out_stall=0.2)
    for c in range(3):
        single = ConvSpec(width=7, height=5, kernel=spec.kernel, padding="same", shift=4)
        assert (result.frames[0][c] == run_spec(single, frame[c])).all()


@st.composite
def layers(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    padding = (draw(st.integers(0, span[0] - 1)), draw(st.integers(0, span[1] - 1)))
    width = draw(st.integers(max(1, span[1] - 2 * padding[1]), 6))
    height = draw(st.integers(max(1, span[0] - 2 * padding[0]), 5))
    inputs = kh * kw * cin // groups
    runtime = draw(st.booleans())
    kwargs = dict(width=width, height=height, groups=groups, stride=stride, dilation=dilation,
                  padding=padding, in_bits=draw(st.integers(2, 9)),
                  in_signed=draw(st.booleans()), relu=draw(st.booleans()),
                  pe=draw(st.integers(1, cout)), simd=draw(st.integers(1, inputs)))
    if draw(st.booleans()):
        kwargs.update(shift=draw(st.integers(0, 6)), out_bits=draw(st.integers(4, 12)),
                      rounding=draw(st.sampled_from(["half-up", "half-even"])))
    seed = draw(st.integers(0, 2**16))
    if runtime:
        kwargs.update(kernel_shape=(kh, kw), in_channels=cin, out_channels=cout,
                      coeff_bits=draw(st.integers(2, 8)))
        return kwargs, (cout, cin // groups, kh, kw), seed
    kwargs.update(weights=_weights(seed, (cout, cin // groups, kh, kw), -20, 20),
                  bias=_bias(seed, cout) if draw(st.booleans()) else None)
    return kwargs, None, seed


@settings(max_examples=20, deadline=None, derandomize=True)
@given(layers(), st.sampled_from([0.0, 0.3]))
def test_random_layers_and_foldings(case, stall):
    kwargs, weights_shape, seed = case
    run_case(ConvSpec(**kwargs), weights_shape, stall, "pysim", seed)
