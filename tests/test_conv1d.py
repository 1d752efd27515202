"""1-D convolution: the golden model against NumPy, Conv1dSpec, and the Conv1d gateware.

Bounded sequences run through the shared harness; unbounded streams (FIR use) and mid-sequence
``first`` markers through :func:`streaming.run_stream`.
"""

import re

import numpy as np
import pytest

from convhw.export import to_verilog
from convhw.gateware import Conv2d
from convhw.gateware.conv1d import Conv1d
from convhw.golden import conv1d
from convhw.harness import simulate
from convhw.spec import ConvSpec
from convhw.spec1d import Conv1dSpec
from streaming import run_stream


def golden(spec, x, kernel=None):
    """What ``spec`` computes for sequence ``x`` (padding ignored when unbounded)."""
    return conv1d(x, spec.kernel if kernel is None else kernel, stride=spec.stride,
                  padding=spec.padding, dilation=spec.dilation, flip=spec.flip,
                  shift=spec.shift if spec.requantize else None,
                  out_bits=spec.out_bits if spec.requantize else None)


def random_sequence(rng, spec, length=None, extreme=False):
    lo, hi = spec.pixel_range
    size = spec.length if length is None else length
    if extreme:
        return rng.choice([lo, hi], size=size)
    return rng.integers(lo, hi, size=size, endpoint=True)


def random_kernel(rng, spec, extreme=False):
    lo, hi = -(1 << (spec.coeff_bits - 1)), (1 << (spec.coeff_bits - 1)) - 1
    if extreme:
        return rng.choice([lo, hi], size=spec.kernel_size)
    return rng.integers(lo, hi, size=spec.kernel_size, endpoint=True)


def check_run(spec, sequences, kernels=None, **stalls):
    result = simulate(Conv1d(spec), sequences, coefficients=kernels, **stalls)
    assert result.errors == []
    for index, x in enumerate(sequences):
        kernel = None if kernels is None else kernels[index % len(kernels)]
        expected = golden(spec, x, kernel)
        np.testing.assert_array_equal(result.frames[index], expected, err_msg=f"sequence {index}")
    return result


def dilate(kernel, dilation):
    out = np.zeros(dilation * (len(kernel) - 1) + 1, dtype=np.int64)
    out[::dilation] = kernel
    return out


@pytest.mark.parametrize("size", range(1, 10))
def test_golden_matches_numpy(size):
    rng = np.random.default_rng(size)
    for _ in range(12):
        kernel = rng.integers(-50, 50, size=size)
        stride, dilation = rng.integers(1, 4), rng.integers(1, 4)
        span = dilation * (size - 1) + 1
        left, right = rng.integers(0, span), rng.integers(0, span)
        x = rng.integers(-1000, 1000, size=span + rng.integers(0, 12))
        padded = np.pad(x, (left, right))
        for flip in (False, True):
            taps = kernel[::-1] if flip else kernel
            expected = np.correlate(padded, dilate(taps, dilation), "valid")[::stride]
            got = conv1d(x, kernel, stride=stride, padding=(left, right), dilation=dilation,
                         flip=flip)
            np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(  # an integer pads both ends
            conv1d(x, kernel, padding=left, stride=stride),
            np.correlate(np.pad(x, left), kernel, "valid")[::stride])
        # Mathematical convolution is numpy.convolve.
        np.testing.assert_array_equal(
            conv1d(x, kernel, padding=(left, right), dilation=dilation, flip=True),
            np.convolve(padded, dilate(kernel, dilation), "valid"))


@pytest.mark.parametrize("size", [1, 2, 5, 8])
def test_golden_same_padding(size):
    rng = np.random.default_rng(size)
    x, kernel = rng.integers(-9, 9, size=20), rng.integers(-9, 9, size=size)
    total = size - 1
    expected = np.correlate(np.pad(x, (total // 2, total - total // 2)), kernel, "valid")
    np.testing.assert_array_equal(conv1d(x, kernel, padding="same"), expected)
    if size % 2:  # NumPy's "same" centres odd kernels the same way
        np.testing.assert_array_equal(conv1d(x, kernel, padding="same", flip=True),
                                      np.convolve(x, kernel, "same"))


def test_golden_requantize():
    x = np.array([100, -100, 37, -37, 5, -5, 255, -256])
    acc = conv1d(x, [3])
    got = conv1d(x, [3], shift=3, out_bits=6)
    expected = np.clip(np.floor(acc / 8 + 0.5).astype(np.int64), -32, 31)
    np.testing.assert_array_equal(got, expected)


# --- Conv1dSpec ----------------------------------------------------------------------------------

def test_spec_init():
    spec = Conv1dSpec(length=10, kernel=[1, -2, 3], stride=2, padding=(2, 1), dilation=2,
                      in_bits=6, in_signed=True, flip=True, shift=2, out_bits=5)
    assert spec.length == 10 and spec.kernel == (1, -2, 3) and spec.kernel_size == 3
    assert spec.kernel_shape == (3,) and spec.taps == 3 and spec.span == 5
    assert (spec.stride, spec.dilation, spec.padding) == (2, 2, (2, 1))
    assert spec.frame_shape == (10,)
    assert spec.out_length == (10 + 3 - 5) // 2 + 1 == 5 and spec.out_shape == (5,)
    assert spec.pixel_range == (-32, 31)
    assert (spec.in_bits, spec.in_signed, spec.coeff_bits, spec.flip) == (6, True, 3, True)
    assert (spec.shift, spec.requantize, spec.out_bits) == (2, True, 5)
    assert spec.acc_range == (-190, 188) and spec.acc_bits == 9
    assert spec.rounded_range == (-47, 47) and spec.out_range == (-16, 15) and spec.saturates
    assert not spec.runtime_coeffs and spec.dsp_taps == 0 and spec.max_dsps is None
    assert spec.output_position(0) == 2 and spec.output_position(4) == 10
    assert spec.positions_per_frame == 11
    assert spec.latency == spec.FRONT_STAGES + spec.tree_depth + spec.back_stages + 2
    assert spec.cycles_per_frame == 10 + spec.latency
    np.testing.assert_array_equal(golden(spec, np.arange(10) - 5),
                                  conv1d(np.arange(10) - 5, [1, -2, 3], stride=2,
                                         padding=(2, 1), dilation=2, flip=True, shift=2,
                                         out_bits=5))


def test_spec_runtime_and_unbounded():
    spec = Conv1dSpec(length=None, kernel_size=4, stride=3, max_dsps=1)
    assert spec.runtime_coeffs and spec.kernel is None and spec.kernel_shape == (4,)
    assert spec.coeff_bits == 8 and spec.dsp_taps == 1 and spec.max_dsps == 1
    assert spec.frame_shape == (None,) and spec.out_shape == (None,)
    assert spec.positions_per_frame is None and spec.cycles_per_frame is None
    assert spec.padding == (0, 0) and spec.output_position(2) == 9
    assert Conv1dSpec(length=None, kernel=[1, 2], padding=(0, 0)).padding == (0, 0)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 9])
def test_spec_same_padding(size):
    for dilation in (1, 2, 3):
        spec = Conv1dSpec(length=7, kernel=[1] * size, padding="same", dilation=dilation)
        total = dilation * (size - 1)
        assert spec.padding == (total // 2, total - total // 2)
        assert spec.out_length == 7


def test_spec_arithmetic_matches_2d():
    """Widths, terms and the schedule are those of the 2-D spec of the same one-row problem."""
    rng = np.random.default_rng(4)
    for _ in range(30):
        size, stride, dilation = (int(v) for v in rng.integers(1, 4, size=3))
        kernel = [int(v) for v in rng.integers(-300, 300, size=size)]
        span = dilation * (size - 1) + 1
        pad = int(rng.integers(0, span))
        kwargs = dict(in_bits=int(rng.integers(1, 12)), in_signed=bool(rng.integers(2)),
                      flip=bool(rng.integers(2)), shift=int(rng.integers(0, 5)))
        length = span + int(rng.integers(0, 5))
        one = Conv1dSpec(length=length, kernel=kernel, stride=stride, padding=pad,
                         dilation=dilation, **kwargs)
        two = ConvSpec(width=length, height=1, kernel=[kernel], stride=(1, stride),
                       padding=(0, pad), dilation=(1, dilation), **kwargs)
        for name in ("acc_range", "acc_bits", "out_bits", "rounded_range", "saturates",
                     "tree_depth", "back_stages", "terms", "positions_per_frame"):
            assert getattr(one, name) == getattr(two, name), name
        assert one.out_shape == two.out_shape[1:]
        assert one.latency == two.latency - 1  # no line-buffer read stage
        assert one.cycles_per_frame == two.cycles_per_frame - 1


def test_spec_replace_eq_hash_dict():
    spec = Conv1dSpec(length=12, kernel=[1, 2, 1], padding="same")
    other = spec.replace(stride=2, padding=1)
    assert other.stride == 2 and other.padding == (1, 1) and spec.stride == 1
    assert spec == Conv1dSpec(length=12, kernel=(1, 2, 1), padding=(1, 1))
    assert hash(spec) == hash(Conv1dSpec(length=12, kernel=np.array([1, 2, 1]), padding=1))
    assert spec != spec.replace(flip=True) and spec != spec.replace(length=None, padding=0)
    assert spec.replace(kernel=None, kernel_size=3).runtime_coeffs
    d = spec.to_dict()
    assert d["length"] == 12 and d["kernel"] == [1, 2, 1] and d["padding"] == [1, 1]
    assert d["out_shape"] == [12] and d["latency"] == spec.latency
    assert d["cycles_per_frame"] == spec.cycles_per_frame and d["shift"] is None
    assert repr(spec) == ("Conv1dSpec(length=12, kernel=[1, 2, 1], stride=1, padding=(1, 1), "
                          "dilation=1, in_bits=8, in_signed=False, coeff_bits=3, flip=False)")
    for other in (spec, spec.replace(kernel=None, kernel_size=3, max_dsps=1, length=None,
                                     padding=0, shift=2), spec.replace(out_bits=5)):
        assert eval(repr(other)) == other


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(length=0, kernel=[1]), ValueError, r"^'length' must be >= 1, not 0$"),
    (dict(length=2.5, kernel=[1]), TypeError, r"^'length' must be an integer, not 2\.5$"),
    (dict(length=5), ValueError,
     r"^either 'kernel' \(coefficients\) or 'kernel_size' \(runtime coefficients\) must be "
     r"given$"),
    (dict(length=5, kernel=[[1, 2]]), ValueError,
     r"^'kernel' must be a 1-D array of integers, not \[\[1, 2\]\]$"),
    (dict(length=5, kernel=[[1, 2], [3]]), ValueError, r"^'kernel' must be a 1-D array"),
    (dict(length=5, kernel=[]), ValueError, r"^'kernel' must have at least one coefficient"),
    (dict(length=5, kernel=[0.5]), TypeError, r"^'kernel' must hold integers, not float64"),
    (dict(length=5, kernel=[1, 2], kernel_size=3), ValueError,
     r"^'kernel_size' 3 does not match the kernel's length 2$"),
    (dict(length=5, kernel_size=0), ValueError, r"^'kernel_size' must be >= 1, not 0$"),
    (dict(length=5, kernel=[1], stride=0), ValueError, r"^'stride' must be >= 1, not 0$"),
    (dict(length=5, kernel=[1], stride=(1, 2)), TypeError,
     r"^'stride' must be an integer, not \(1, 2\)$"),
    (dict(length=5, kernel=[1], dilation=-1), ValueError, r"^'dilation' must be >= 1, not -1$"),
    (dict(length=5, kernel=[1, 2, 3], padding=3), ValueError,
     r"^'padding' 3 on the left must be smaller than the effective kernel size 3 "
     r"\(dilation\*\(K-1\)\+1\)$"),
    (dict(length=5, kernel=[1, 2, 3], padding=(0, 5)), ValueError,
     r"^'padding' 5 on the right must be smaller"),
    (dict(length=5, kernel=[1], padding=-1), ValueError, r"^'padding' must be >= 0, not -1$"),
    (dict(length=5, kernel=[1], padding="valid"), ValueError,
     r"^'padding' must be an integer, a pair of integers \(left, right\) or 'same', "
     r"not 'valid'$"),
    (dict(length=5, kernel=[1], padding=(1, 2, 3)), TypeError,
     r"^'padding' must be an integer, a pair of integers \(left, right\) or 'same', "
     r"not \(1, 2, 3\)$"),
    (dict(length=5, kernel=[1, 2], stride=2, padding="same"), ValueError,
     r"^'padding'='same' needs 'stride' 1, not 2$"),
    (dict(length=None, kernel=[1, 2], padding=1), ValueError,
     r"^'padding' must be 0 for an unbounded sequence \('length'=None\), not 1$"),
    (dict(length=None, kernel=[1, 2], padding="same"), ValueError,
     r"^'padding' must be 0 for an unbounded sequence \('length'=None\), not 'same'$"),
    (dict(length=3, kernel=[1, 2], dilation=3), ValueError,
     r"^'length' 3 is too short for the effective kernel size 4 \(dilation\*\(K-1\)\+1\) with "
     r"padding \(0, 0\): the output would be empty$"),
    (dict(length=5, kernel=[200], coeff_bits=8), ValueError,
     r"^kernel coefficient 200 does not fit 'coeff_bits'=8 \(signed range -128\.\.127\)$"),
    (dict(length=5, kernel=[1], in_bits=33), ValueError, r"^'in_bits' must be from 1 to 32, "
                                                         r"not 33$"),
    (dict(length=5, kernel=[1], in_signed=1), TypeError, r"^'in_signed' must be a bool, not 1$"),
    (dict(length=5, kernel=[1], flip="yes"), TypeError, r"^'flip' must be a bool, not 'yes'$"),
    (dict(length=5, kernel=[1], shift=-1), ValueError, r"^'shift' must be from 0 to 64, not -1$"),
    (dict(length=5, kernel=[1], out_bits=0), ValueError,
     r"^'out_bits' must be from 1 to 64, not 0$"),
    (dict(length=5, kernel_size=2, max_dsps=-1), ValueError,
     r"^'max_dsps' must be >= 0, not -1$"),
])
def test_spec_init_wrong(kwargs, error, message):
    with pytest.raises(error, match=message):
        Conv1dSpec(**kwargs)


def test_conv1d_wrong_spec(unelaborated_ok):
    with pytest.raises(TypeError, match=r"^'spec' must be a Conv1dSpec, not ConvSpec\("):
        Conv1d(ConvSpec(width=4, height=1, kernel=[[1, 2]]))


# --- gateware, bounded sequences (harness) -------------------------------------------------------

# Kernel lengths 1 to 9 with strides, paddings (asymmetric, "same") and dilations that do not
# divide the sequence; two or three sequences back to back.
CASES = [
    dict(length=5, kernel=[7]),
    dict(length=5, kernel=[-128], padding=0, stride=2, in_signed=True),
    dict(length=7, kernel=[1, -1], padding=(1, 0)),
    dict(length=6, kernel=[3, 5], padding="same", dilation=3),
    dict(length=7, kernel=[1, 2, 1], padding="same"),
    dict(length=9, kernel=[-1, 0, 1], stride=2, padding=(2, 0), in_signed=True),
    dict(length=5, kernel=[2, -3, 5, 7], padding="same", flip=True),
    dict(length=9, kernel=[1, 1, 1, 1], stride=3, padding=(0, 3), dilation=1),
    dict(length=8, kernel=[9, -7, 5, -3, 1], dilation=2, padding=(8, 1), flip=True),
    dict(length=6, kernel=[1, 2, 3, 4, 5], padding=(4, 4), stride=2),
    dict(length=11, kernel=[1, -2, 4, -8, 16, -32], stride=3, padding=5, in_signed=True,
         in_bits=5),
    dict(length=7, kernel=[0, 0, 3, 0, 0, 0, 1], padding="same", in_bits=1),
    dict(length=10, kernel=[127, -128, 1, 64, -1, 3, 90], dilation=2, stride=2, padding=(3, 6)),
    dict(length=9, kernel=[5, 4, 3, 2, 1, 0, -1, -2], padding="same", in_bits=12,
         in_signed=True, shift=4, out_bits=8),
    dict(length=9, kernel=[1, 8, 28, 56, 70, 56, 28, 8, 1], padding="same", shift=8),
    dict(length=12, kernel=[-1, 3, -5, 7, -9, 11, -13, 15, -17], stride=3, dilation=1,
         padding=(2, 7), flip=True, in_signed=True, in_bits=16),
    dict(length=5, kernel=[0, 0, 0]),
]


@pytest.mark.parametrize("kwargs", CASES, ids=lambda kw: "-".join(
    f"{k}{v}" for k, v in kw.items() if k != "kernel") + f"-K{len(kw['kernel'])}")
def test_bounded(kwargs):
    spec = Conv1dSpec(**kwargs)
    rng = np.random.default_rng(len(CASES))
    sequences = [random_sequence(rng, spec), random_sequence(rng, spec, extreme=True),
                 random_sequence(rng, spec)]
    result = check_run(spec, sequences)
    # Back to back without stalls: one position per clock, latency as the spec says.
    assert result.cycles == 2 * spec.positions_per_frame + spec.cycles_per_frame
    for seed, stall in enumerate((0.3, 0.9)):
        check_run(spec, sequences[:2], in_stall=stall, out_stall=stall, seed=seed)
    check_run(spec, sequences[:2], in_stall=0.9, seed=5)
    check_run(spec, sequences[:2], out_stall=0.9, seed=6)


def test_single_sequence_cycles():
    for kwargs in CASES[::3]:
        spec = Conv1dSpec(**kwargs)
        result = check_run(spec, [random_sequence(np.random.default_rng(0), spec)])
        assert result.cycles == spec.cycles_per_frame


def test_requantize_saturates():
    spec = Conv1dSpec(length=8, kernel=[100, 100, -100], padding=1, in_bits=8, in_signed=True,
                      shift=3, out_bits=6)
    assert spec.saturates
    x = np.array([127, 127, 127, -128, -128, -128, 5, -3])
    result = check_run(spec, [x, -np.clip(x, -127, 127)], out_stall=0.3)
    assert result.frames[0].max() == 31 and result.frames[0].min() == -32


@pytest.mark.parametrize("max_dsps", [None, 0, 2])
def test_runtime_coefficients_between_sequences(max_dsps):
    spec = Conv1dSpec(length=7, kernel_size=5, padding=(3, 2), stride=2, dilation=1,
                      in_signed=True, in_bits=7, coeff_bits=6, max_dsps=max_dsps, flip=True)
    rng = np.random.default_rng(7)
    kernels = [random_kernel(rng, spec, extreme=True), random_kernel(rng, spec),
               np.array([-32, 0, 0, 0, 31]), np.zeros(5, dtype=int)]
    sequences = [random_sequence(rng, spec, extreme=index % 2 == 0) for index in range(4)]
    check_run(spec, sequences, kernels)
    check_run(spec, sequences, kernels, in_stall=0.3, out_stall=0.3, seed=2)
    check_run(spec, sequences[:2], kernels[:2], in_stall=0.9, out_stall=0.9, seed=3)


def test_runtime_coefficients_apply_at_sequence_start():
    """Writes during a sequence wait for the next one; its first output already uses them."""
    spec = Conv1dSpec(length=6, kernel_size=3, padding=(2, 0), in_signed=True, max_dsps=1)
    assert spec.output_position(0) == 0
    rng = np.random.default_rng(12)
    k1, k2 = random_kernel(rng, spec, extreme=True), random_kernel(rng, spec, extreme=True)
    a, b = random_sequence(rng, spec, extreme=True), random_sequence(rng, spec, extreme=True)
    expected = [*golden(spec, a, k1), *golden(spec, b, k2)]
    for stall in (0.0, 0.5):
        values, _, _, _, errors = run_stream(Conv1d(spec), [*a, *b], len(expected),
                                             firsts=(0, 6), kernels={0: k1, 3: k2},
                                             in_stall=stall, out_stall=stall, seed=1)
        assert errors == [] and values == expected


def test_runtime_coefficients_signed_unsigned():
    for in_signed in (False, True):
        spec = Conv1dSpec(length=6, kernel_size=9, padding="same", in_signed=in_signed,
                          in_bits=9, coeff_bits=9, shift=5, out_bits=10)
        rng = np.random.default_rng(int(in_signed))
        kernels = [random_kernel(rng, spec, extreme=True) for _ in range(2)]
        sequences = [random_sequence(rng, spec, extreme=True) for _ in range(2)]
        check_run(spec, sequences, kernels, in_stall=0.3, seed=9)


@pytest.mark.parametrize("kwargs", [
    dict(kernel=[[1, 2, -3, 4]], padding="same", dilation=(1, 2)),
    dict(kernel=[[5, -1, 2]], padding=(0, 2), stride=(1, 2), flip=True),
    dict(kernel=[[1, 0, -1, 0, 2, 3, 1]], padding=0, stride=(1, 3), in_signed=True),
    dict(kernel_shape=(1, 3), padding=(0, 1), shift=2, out_bits=6),
])
def test_agrees_with_conv2d(kwargs):
    """A KH=1 Conv2d on one-row frames gives the same outputs as Conv1d, one cycle later."""
    two = ConvSpec(width=11, height=1, **kwargs)
    pad = two.padding[1]
    one = Conv1dSpec(length=11, kernel=None if two.kernel is None else two.kernel[0],
                     kernel_size=two.kernel_shape[1], stride=two.stride[1], padding=pad,
                     dilation=two.dilation[1], in_signed=two.in_signed, flip=two.flip,
                     shift=kwargs.get("shift"), out_bits=kwargs.get("out_bits"))
    rng = np.random.default_rng(11)
    sequences = [random_sequence(rng, one) for _ in range(3)]
    kernels = None if not one.runtime_coeffs else [random_kernel(rng, one) for _ in range(3)]
    a = simulate(Conv1d(one), sequences, coefficients=kernels)
    b = simulate(Conv2d(two), [x[np.newaxis] for x in sequences],
                 coefficients=None if kernels is None else [k[np.newaxis] for k in kernels])
    assert a.errors == b.errors == []
    for x, y in zip(a.frames, b.frames):
        np.testing.assert_array_equal(x, y[0])
    # The 1-D core has no line-buffer read stage; everything else is the same schedule.
    assert one.positions_per_frame == two.positions_per_frame
    assert a.cycles == b.cycles - 1 and a.total_cycles == b.total_cycles - 1


def test_early_first_truncates_sequence():
    """A ``first`` mid-sequence ends it: the missing samples count as zeros."""
    spec = Conv1dSpec(length=8, kernel=[1, -2, 3], padding=(1, 2), stride=2)
    rng = np.random.default_rng(3)
    a, b = random_sequence(rng, spec, length=5), random_sequence(rng, spec)
    expected = [*golden(spec, np.pad(a, (0, 3))), *golden(spec, b)]
    for stall in (0.0, 0.5):
        values, markers, _, _, errors = run_stream(
            Conv1d(spec), [*a, *b], len(expected), firsts=(0, 5), in_stall=stall,
            out_stall=stall)
        assert errors == [] and values == expected
        n = spec.out_length
        assert markers == [(k % n == 0, k % n == n - 1) for k in range(2 * n)]


def test_export_verilog():
    for spec in (Conv1dSpec(length=16, kernel=[1, 2, 1], padding="same", in_signed=True),
                 Conv1dSpec(length=None, kernel_size=5, shift=3, out_bits=8)):
        text = to_verilog(Conv1d(spec), name="fir")
        module = re.search(r"^module fir\((.*?)\);", text, re.M | re.S)
        ports = {p.strip() for p in module.group(1).split(",")}
        expected = {"clk", "rst", "s_axis_tdata", "s_axis_tvalid", "s_axis_tready",
                    "s_axis_tuser", "s_axis_tlast", "m_axis_tdata", "m_axis_tvalid",
                    "m_axis_tready", "m_axis_tuser", "m_axis_tlast"}
        if spec.runtime_coeffs:
            expected |= {"coef_we", "coef_addr", "coef_data"}
        assert ports == expected
        assert f"output [{spec.out_bits - 1}:0] m_axis_tdata;" in text
        assert f"input [{spec.in_bits - 1}:0] s_axis_tdata;" in text


# --- gateware, unbounded streams -----------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    dict(kernel=[1]),
    dict(kernel=[3, -1, 4, 1, -5], in_signed=True),
    dict(kernel=[1, 2, 3], stride=2, dilation=2),
    dict(kernel=[-7, 0, 7, 1, 2, 3, 4, 5, 6], stride=3, flip=True, shift=3, out_bits=7),
])
def test_unbounded_stream(kwargs):
    spec = Conv1dSpec(length=None, **kwargs)
    rng = np.random.default_rng(5)
    x = random_sequence(rng, spec, length=40)
    expected = list(golden(spec, x))
    for stall, seed in ((0.0, 0), (0.3, 1), (0.9, 2)):
        values, markers, accepted, produced, errors = run_stream(
            Conv1d(spec), x, len(expected), in_stall=stall, out_stall=stall, seed=seed)
        assert errors == [] and values == expected
        assert markers == [(k == 0, False) for k in range(len(expected))]
        if not stall:  # one sample per clock, each output `latency` after its position
            assert accepted == list(range(accepted[0], accepted[0] + len(x)))
            assert produced == [accepted[spec.output_position(k)] + spec.latency
                                for k in range(len(expected))]


def test_unbounded_restart_and_runtime_coefficients():
    """A ``first`` restarts the stream and applies the coefficients written before it."""
    spec = Conv1dSpec(length=None, kernel_size=4, stride=2, dilation=2, in_signed=True,
                      max_dsps=2)
    rng = np.random.default_rng(8)
    k1, k2 = random_kernel(rng, spec, extreme=True), random_kernel(rng, spec)
    a, b = random_sequence(rng, spec, length=17), random_sequence(rng, spec, length=12)
    first, second = list(golden(spec, a, k1)), list(golden(spec, b, k2))
    for stall in (0.0, 0.3):
        values, markers, _, _, errors = run_stream(
            Conv1d(spec), [*a, *b], len(first) + len(second), firsts=(0, len(a)),
            kernels={0: k1, 5: k2, len(a): k2}, in_stall=stall, out_stall=stall, seed=4)
        assert errors == [] and values == first + second
        assert [f for f, _ in markers] == [k in (0, len(first)) for k in range(len(values))]
        assert not any(last for _, last in markers)
