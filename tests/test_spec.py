"""ConvSpec: validation (every error, message pinned), derived numbers checked against direct
formulas and brute force, and the value semantics (replace, ==, hash, to_dict, repr)."""

import itertools

import numpy as np
import pytest

from convhw import ConvSpec
from convhw.golden import conv2d
from convhw.spec import signed_bits

BASE = dict(width=8, height=6)


def spec(**kwargs):
    return ConvSpec(**{**BASE, "kernel": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]], **kwargs})


# --- validation: one case per error --------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    # sizes: zero, negative, wrong types
    (dict(width=0, height=6, kernel=[[1]]), ValueError, r"^'width' must be >= 1, not 0$"),
    (dict(width=8, height=-3, kernel=[[1]]), ValueError, r"^'height' must be >= 1, not -3$"),
    (dict(width=True, height=6, kernel=[[1]]), TypeError,
     r"^'width' must be an integer, not True$"),
    (dict(width=8.0, height=6, kernel=[[1]]), TypeError, r"^'width' must be an integer, not 8\.0$"),
    (dict(width=8, height="6", kernel=[[1]]), TypeError,
     r"^'height' must be an integer, not '6'$"),
    # kernel
    (dict(BASE), ValueError,
     r"^either 'kernel'/'weights' \(coefficients\) or 'kernel_shape' \(runtime coefficients\) must be "
     r"given$"),
    (dict(BASE, kernel=[[1, 2], [3]]), ValueError,
     r"^'kernel' must be a rectangular 2-D array of integers, not \[\[1, 2\], \[3\]\]$"),
    (dict(BASE, kernel=[1, 2, 3]), ValueError,
     r"^'kernel' must be a rectangular 2-D array of integers, not \[1, 2, 3\]$"),
    (dict(BASE, kernel=5), ValueError,
     r"^'kernel' must be a rectangular 2-D array of integers, not 5$"),
    (dict(BASE, kernel=np.ones((2, 2, 2), dtype=int)), ValueError,
     r"^'kernel' must be a rectangular 2-D array of integers, not array\("),
    (dict(BASE, kernel=[[1, None]]), ValueError,
     r"^'kernel' must be a rectangular 2-D array of integers, not \[\[1, None\]\]$"),
    (dict(BASE, kernel=[[]]), ValueError,
     r"^'kernel' must have at least one row and one column, not shape \(1, 0\)$"),
    (dict(BASE, kernel=np.zeros((0, 3), dtype=int)), ValueError,
     r"^'kernel' must have at least one row and one column, not shape \(0, 3\)$"),
    (dict(BASE, kernel=[[1.5, 2]]), TypeError,
     r"^'kernel' must hold integers, not float64 values$"),
    (dict(BASE, kernel=[[np.nan]]), TypeError,
     r"^'kernel' must hold integers, not float64 values$"),
    (dict(BASE, kernel=[["1"]]), TypeError, r"^'kernel' must hold integers, not <U1 values$"),
    (dict(BASE, kernel=[[True, False]]), TypeError, r"^'kernel' must hold integers, not bool "
                                                    r"values$"),
    (dict(BASE, kernel=[[1, 2]], kernel_shape=(2, 1)), ValueError,
     r"^'kernel_shape' \(2, 1\) does not match the kernel's shape \(1, 2\)$"),
    (dict(BASE, kernel=[[1, 2]], kernel_shape=3), ValueError,
     r"^'kernel_shape' \(3, 3\) does not match the kernel's shape \(1, 2\)$"),
    (dict(BASE, kernel_shape=(0, 3)), ValueError, r"^'kernel_shape' must be >= 1, not 0$"),
    (dict(BASE, kernel_shape=(3, 3, 3)), TypeError,
     r"^'kernel_shape' must be an integer or a pair of integers, not \(3, 3, 3\)$"),
    (dict(BASE, kernel_shape=(3, True)), TypeError,
     r"^'kernel_shape' must be an integer, not True$"),
    # coefficient widths
    (dict(BASE, kernel=[[1, 200]], coeff_bits=8), ValueError,
     r"^kernel coefficient 200 does not fit 'coeff_bits'=8 \(signed range -128\.\.127\)$"),
    (dict(BASE, kernel=[[-9, 7]], coeff_bits=4), ValueError,
     r"^kernel coefficient -9 does not fit 'coeff_bits'=4 \(signed range -8\.\.7\)$"),
    (dict(BASE, kernel=[[2**40]]), ValueError,
     r"^kernel coefficient 1099511627776 does not fit 'coeff_bits'=32 "),
    (dict(BASE, kernel=[[2**70]]), ValueError,
     r"^kernel coefficient 1180591620717411303424 does not fit 'coeff_bits'=32 "),
    (dict(BASE, kernel=[[1]], coeff_bits=0), ValueError,
     r"^'coeff_bits' must be from 1 to 32, not 0$"),
    (dict(BASE, kernel_shape=2, coeff_bits=33), ValueError,
     r"^'coeff_bits' must be from 1 to 32, not 33$"),
    # stride, dilation
    (dict(BASE, kernel=[[1]], stride=0), ValueError, r"^'stride' must be >= 1, not 0$"),
    (dict(BASE, kernel=[[1]], stride=(1, -2)), ValueError, r"^'stride' must be >= 1, not -2$"),
    (dict(BASE, kernel=[[1]], stride=(1, 2, 3)), TypeError,
     r"^'stride' must be an integer or a pair of integers, not \(1, 2, 3\)$"),
    (dict(BASE, kernel=[[1]], stride=1.5), TypeError,
     r"^'stride' must be an integer or a pair of integers, not 1\.5$"),
    (dict(BASE, kernel=[[1]], dilation=0), ValueError, r"^'dilation' must be >= 1, not 0$"),
    (dict(BASE, kernel=[[1]], dilation=(2, False)), TypeError,
     r"^'dilation' must be an integer, not False$"),
    # padding
    (dict(BASE, kernel=[[1, 2, 3]], padding=(0, 3)), ValueError,
     r"^'padding' 3 on axis x must be smaller than the effective kernel size 3 "
     r"\(dilation\*\(K-1\)\+1\)$"),
    (dict(BASE, kernel=[[1], [2]], padding=2), ValueError,
     r"^'padding' 2 on axis y must be smaller than the effective kernel size 2 "),
    (dict(BASE, kernel=[[1, 2]], dilation=3, padding=(0, 4)), ValueError,
     r"^'padding' 4 on axis x must be smaller than the effective kernel size 4 "),
    (dict(BASE, kernel=[[1]], padding=1), ValueError,
     r"^'padding' 1 on axis y must be smaller than the effective kernel size 1 "),
    (dict(BASE, kernel=[[1]], padding=-1), ValueError, r"^'padding' must be >= 0, not -1$"),
    (dict(BASE, kernel=[[1]], padding=(1,)), TypeError,
     r"^'padding' must be an integer or a pair of integers, not \(1,\)$"),
    (dict(BASE, kernel=[[1]], padding=1.0), TypeError,
     r"^'padding' must be an integer or a pair of integers, not 1\.0$"),
    (dict(BASE, kernel=[[1]], padding="valid"), ValueError,
     r"^'padding' must be an integer, a pair of integers or 'same', not 'valid'$"),
    (dict(BASE, kernel=[[1, 2]], stride=2, padding="same"), ValueError,
     r"^'padding'='same' needs 'stride' 1, not \(2, 2\)$"),
    (dict(BASE, kernel=[[1, 2]], stride=(1, 3), padding="same"), ValueError,
     r"^'padding'='same' needs 'stride' 1, not \(1, 3\)$"),
    # frame too small for the kernel
    (dict(width=2, height=2, kernel=np.ones((3, 3), dtype=int)), ValueError,
     r"^frame 2x2 \(width x height\) is too small for the effective kernel 3x3 with padding "
     r"\(\(0, 0\), \(0, 0\)\): the output would be 0x0$"),
    (dict(width=8, height=3, kernel=[[1], [2]], dilation=3), ValueError,
     r"^frame 8x3 \(width x height\) is too small for the effective kernel 1x4 with padding "
     r"\(\(0, 0\), \(0, 0\)\): the output would be 8x0$"),
    (dict(width=2, height=8, kernel=[[1, 2, 3, 4, 5]], padding=(0, 1)), ValueError,
     r"^frame 2x8 \(width x height\) is too small for the effective kernel 5x1 with padding "
     r"\(\(0, 0\), \(1, 1\)\): the output would be 0x8$"),
    # number formats
    (dict(BASE, kernel=[[1]], in_bits=0), ValueError, r"^'in_bits' must be from 1 to 32, not 0$"),
    (dict(BASE, kernel=[[1]], in_bits=33), ValueError,
     r"^'in_bits' must be from 1 to 32, not 33$"),
    (dict(BASE, kernel=[[1]], in_bits="8"), TypeError, r"^'in_bits' must be an integer, not '8'$"),
    (dict(BASE, kernel=[[1]], in_signed=1), TypeError, r"^'in_signed' must be a bool, not 1$"),
    (dict(BASE, kernel=[[1]], in_signed="yes"), TypeError,
     r"^'in_signed' must be a bool, not 'yes'$"),
    (dict(BASE, kernel=[[1]], flip=None), TypeError, r"^'flip' must be a bool, not None$"),
    (dict(BASE, kernel=[[1]], shift=-1), ValueError, r"^'shift' must be from 0 to 64, not -1$"),
    (dict(BASE, kernel=[[1]], shift=65), ValueError, r"^'shift' must be from 0 to 64, not 65$"),
    (dict(BASE, kernel=[[1]], shift=2.0), TypeError, r"^'shift' must be an integer, not 2\.0$"),
    (dict(BASE, kernel=[[1]], out_bits=0), ValueError,
     r"^'out_bits' must be from 1 to 64, not 0$"),
    (dict(BASE, kernel=[[1]], out_bits=65), ValueError,
     r"^'out_bits' must be from 1 to 64, not 65$"),
    (dict(BASE, kernel=[[1]], out_bits=True), TypeError,
     r"^'out_bits' must be an integer, not True$"),
    (dict(BASE, kernel_shape=2, max_dsps=-1), ValueError, r"^'max_dsps' must be >= 0, not -1$"),
    (dict(BASE, kernel_shape=2, max_dsps=1.0), TypeError,
     r"^'max_dsps' must be an integer, not 1\.0$"),
])
def test_init_wrong(kwargs, error, message):
    with pytest.raises(error, match=message):
        ConvSpec(**kwargs)


def test_keyword_only():
    with pytest.raises(TypeError):
        ConvSpec(8, 6, [[1]])


def test_accepts_numpy_scalars_and_integral_floats_in_kernels():
    s = ConvSpec(width=np.int64(8), height=np.uint8(6), kernel=np.array([[1.0, -2.0]]),
                 stride=(np.int32(1), 2), padding=(0, np.int16(1)))
    assert s.kernel == ((1, -2),) and all(type(c) is int for c in s.kernel[0])
    assert (s.width, s.height, s.stride, s.padding) == (8, 6, (1, 2), ((0, 0), (1, 1)))
    assert ConvSpec(width=8, height=6, kernel=[[-2**31, 2**31 - 1]]).coeff_bits == 32


# --- what the spec derives -----------------------------------------------------------------------

def test_init():
    s = ConvSpec(width=10, height=7, kernel=[[1, -2, 3], [4, 5, -6]], stride=(2, 1),
                 padding=(1, 2), dilation=(1, 2), in_bits=6, in_signed=True, flip=True,
                 shift=3, out_bits=5)
    assert (s.width, s.height, s.frame_shape) == (10, 7, (7, 10))
    assert s.kernel == ((1, -2, 3), (4, 5, -6)) and s.kernel_shape == (2, 3) and s.taps == 6
    assert s.hw_kernel == ((-6, 5, 4), (3, -2, 1))
    assert (s.stride, s.dilation, s.padding) == ((2, 1), (1, 2), ((1, 1), (2, 2)))
    assert s.span == (2, 5)
    assert s.out_shape == ((7 + 2 - 2) // 2 + 1, (10 + 4 - 5) // 1 + 1) == (4, 10)
    assert (s.in_bits, s.in_signed, s.pixel_range) == (6, True, (-32, 31))
    assert (s.coeff_bits, s.flip, s.shift, s.requantize, s.out_bits) == (4, True, 3, True, 5)
    positive, negative = 1 + 3 + 4 + 5, 2 + 6  # sums of the coefficients of either sign
    assert s.acc_range == (-32 * positive - 31 * negative, 31 * positive + 32 * negative)
    assert s.acc_range == (-664, 659) and s.acc_bits == signed_bits(-664, 659) == 11
    assert s.rounded_range == ((-664 + 4) >> 3, (659 + 4) >> 3) == (-83, 82)
    assert s.out_range == (-16, 15) and s.saturates and s.back_stages == 2
    assert not s.runtime_coeffs and s.dsp_taps == 0 and s.max_dsps is None
    assert s.row_offset == s.span[0] - 1 - 1 and s.col_offset == s.span[1] - 1 - 2
    assert s.stream_width == 10


def test_defaults_and_runtime():
    s = ConvSpec(width=5, height=4, kernel_shape=3)
    assert s.runtime_coeffs and s.kernel is None and s.hw_kernel is None
    assert s.kernel_shape == (3, 3) and s.coeff_bits == 8 and s.in_bits == 8
    assert not s.in_signed and not s.flip and not s.requantize and s.shift == 0
    assert s.stride == s.dilation == (1, 1) and s.padding == ((0, 0), (0, 0))
    assert s.acc_range == (-128 * 255 * 9, 127 * 255 * 9) and s.out_bits == s.acc_bits == 20
    assert s.dsp_taps == 9 and s.replace(max_dsps=4).dsp_taps == 4
    assert s.replace(max_dsps=0).dsp_taps == 0 and s.replace(max_dsps=20).dsp_taps == 9
    kinds = [t[2] for t in s.replace(max_dsps=4).terms]
    assert kinds == ["product"] * 4 + ["partial"] * 5 * 8
    assert ConvSpec(width=4, height=4, kernel=[[0]]).coeff_bits == 1
    assert ConvSpec(width=4, height=4, kernel=[[-128, 127]]).coeff_bits == 8
    assert ConvSpec(width=4, height=4, kernel=[[128]]).coeff_bits == 9
    assert ConvSpec(width=4, height=4, kernel=[[1]], coeff_bits=12).coeff_bits == 12


def test_tap_index_follows_flip():
    s = ConvSpec(width=5, height=5, kernel_shape=(2, 3))
    assert [s.tap_index(a) for a in range(6)] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    f = s.replace(flip=True)
    assert [f.tap_index(a) for a in range(6)] == [(1, 2), (1, 1), (1, 0), (0, 2), (0, 1), (0, 0)]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7])
def test_same_padding(k):
    """Total ``D*(K-1)`` per axis; the odd cell at the bottom/right (PyTorch, TensorFlow)."""
    for dy, dx in itertools.product((1, 2, 3), repeat=2):
        s = ConvSpec(width=9, height=8, kernel_shape=(k, max(1, k - 1)), padding="same",
                     dilation=(dy, dx))
        ty, tx = dy * (k - 1), dx * (max(1, k - 1) - 1)
        assert s.padding == ((ty // 2, ty - ty // 2), (tx // 2, tx - tx // 2))
        assert s.out_shape == (8, 9)
    assert ConvSpec(width=6, height=6, kernel_shape=(2, 4), padding="same").padding == \
        ((0, 1), (1, 2))


def test_out_shape_against_brute_force():
    """``floor((N + 2P - D*(K-1) - 1) / S) + 1`` equals a count of valid window positions."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        kh, kw, sy, sx, dy, dx = (int(v) for v in rng.integers(1, 5, size=6))
        spans = (dy * (kh - 1) + 1, dx * (kw - 1) + 1)
        py, px = (int(rng.integers(0, s)) for s in spans)
        h = max(1, spans[0] - 2 * py + int(rng.integers(0, 9)))
        w = max(1, spans[1] - 2 * px + int(rng.integers(0, 9)))
        s = ConvSpec(width=w, height=h, kernel_shape=(kh, kw), stride=(sy, sx),
                     padding=(py, px), dilation=(dy, dx))
        count = [len([o for o in range(0, n + 2 * p) if o % st == 0 and o + span <= n + 2 * p])
                 for n, p, span, st in ((h, py, spans[0], sy), (w, px, spans[1], sx))]
        assert s.out_shape == tuple(count)
        assert s.out_shape == tuple((n + 2 * p - d * (k - 1) - 1) // st + 1 for n, p, d, k, st in
                                    ((h, py, dy, kh, sy), (w, px, dx, kw, sx)))
        assert s.out_shape == conv2d(np.zeros((h, w), dtype=int), np.ones((kh, kw), dtype=int),
                                     stride=(sy, sx), padding=(py, px), dilation=(dy, dx)).shape


def _extreme_frames(s, kernel):
    """Frames of exactly one window that drive the accumulator to its minimum and maximum."""
    lo, hi = s.pixel_range
    kernel = np.array(kernel, dtype=object)
    return [np.where(kernel > 0, lo, hi), np.where(kernel > 0, hi, lo)]


def test_acc_bits_exact_for_constant_kernels():
    """Both ends of ``acc_range`` are reached, so ``acc_bits`` is enough and never too much."""
    rng = np.random.default_rng(1)
    for _ in range(300):
        kh, kw = (int(v) for v in rng.integers(1, 5, size=2))
        cb = int(rng.integers(1, 12))
        kernel = rng.integers(-(1 << (cb - 1)), 1 << (cb - 1), size=(kh, kw))
        s = ConvSpec(width=kw, height=kh, kernel=kernel, in_bits=int(rng.integers(1, 17)),
                     in_signed=bool(rng.integers(2)))
        reached = [int(conv2d(f, kernel)[0, 0]) for f in _extreme_frames(s, kernel)]
        assert tuple(reached) == s.acc_range
        b = s.acc_bits
        assert -(1 << (b - 1)) <= reached[0] and reached[1] < (1 << (b - 1))
        if b > 1:  # one bit fewer would not hold them
            assert reached[0] < -(1 << (b - 2)) or reached[1] >= (1 << (b - 2))
        assert s.out_bits == b and not s.saturates


def test_acc_bits_exact_for_runtime_kernels():
    for in_bits, in_signed, cb, shape in [(8, False, 8, (3, 3)), (8, True, 8, (3, 3)),
                                          (1, False, 1, (1, 1)), (16, True, 12, (5, 7)),
                                          (3, True, 2, (2, 2))]:
        s = ConvSpec(width=shape[1], height=shape[0], kernel_shape=shape, in_bits=in_bits,
                     in_signed=in_signed, coeff_bits=cb)
        lo_c, hi_c = -(1 << (cb - 1)), (1 << (cb - 1)) - 1
        lo_x, hi_x = s.pixel_range
        ends = set()
        for c, x in itertools.product((lo_c, hi_c), (lo_x, hi_x)):
            ends.add(int(conv2d(np.full(shape, x), np.full(shape, c))[0, 0]))
        assert (min(ends), max(ends)) == s.acc_range
        b = s.acc_bits
        assert b == 1 or min(ends) < -(1 << (b - 2)) or max(ends) >= (1 << (b - 2))


def test_rounding_and_saturation_ranges():
    s = ConvSpec(width=3, height=3, kernel=[[1]], in_bits=8, in_signed=True, shift=3)
    assert s.rounded_range == ((-128 + 4) >> 3, (127 + 4) >> 3) == (-16, 16)
    assert s.out_bits == 6 and not s.saturates and s.back_stages == 1
    assert s.replace(out_bits=5).saturates and s.replace(out_bits=5).out_range == (-16, 15)
    assert not s.replace(out_bits=40).saturates
    assert s.replace(shift=None, out_bits=8).requantize and s.replace(shift=0).requantize
    assert not s.replace(shift=None).requantize
    assert s.replace(shift=0, out_bits=None).out_bits == 8
    assert s.replace(shift=64).rounded_range == (0, 0)


def test_schedule_numbers():
    s = ConvSpec(width=64, height=64, kernel_shape=(3, 3), padding="same")
    assert s.stream_width == 64 and s.positions_per_frame == 65 * 64 + 1
    assert s.output_position(0, 0) == 64 + 1 and s.output_position(63, 63) == 65 * 64
    assert s.product_stages == 1 and s.replace(max_dsps=0).product_stages == 0
    assert s.latency == (s.FRONT_STAGES + s.product_stages + s.tree_depth + s.back_stages
                         + s.FIFO_LATENCY)
    logic = s.replace(max_dsps=0)
    assert logic.latency == (logic.FRONT_STAGES + logic.tree_depth + logic.back_stages
                             + logic.FIFO_LATENCY)
    assert s.cycles_per_frame == 65 * 64 + s.latency <= 64 * 64 + 2 * 64 + 32
    wide = ConvSpec(width=5, height=4, kernel_shape=(1, 3), padding=(0, 2), stride=(1, 3))
    assert wide.out_shape == (4, 3) and wide.stream_width == 7
    assert wide.positions_per_frame == 4 * 7


# --- value semantics -----------------------------------------------------------------------------

def test_replace_eq_hash():
    s = spec(padding="same")
    other = s.replace(stride=2, padding=1)
    assert other.stride == (2, 2) and other.padding == ((1, 1), (1, 1)) and s.stride == (1, 1)
    assert s == spec(padding=1) == spec(padding=(1, 1), kernel=np.array(s.kernel))
    assert hash(s) == hash(spec(padding=1))
    assert s != s.replace(flip=True) and s != s.replace(shift=0) and s != s.replace(in_bits=9)
    assert s.replace(kernel=None, kernel_shape=(3, 3)).runtime_coeffs
    assert s != "not a spec" and len({s, spec(padding=1), other}) == 2
    with pytest.raises(ValueError, match=r"^'padding'='same' needs 'stride' 1"):
        s.replace(stride=2)
    with pytest.raises(TypeError):
        s.replace(colour="red")


def test_immutable():
    s = spec()
    with pytest.raises(AttributeError):
        s.width = 3
    with pytest.raises(TypeError):
        s.kernel[0][0] = 5


def test_to_dict_and_repr():
    s = spec(padding=(1, 2), stride=(1, 2), shift=2, out_bits=6)
    d = s.to_dict()
    assert d == {
        "width": 8, "height": 6, "kernel": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
        "kernel_shape": [3, 3], "stride": [1, 2], "padding": [[1, 1], [2, 2]],
        "dilation": [1, 1], "in_bits": 8, "in_signed": False, "coeff_bits": 3, "flip": False,
        "shift": 2, "out_bits": 6, "acc_bits": s.acc_bits, "out_shape": list(s.out_shape),
        "latency": s.latency, "cycles_per_frame": s.cycles_per_frame,
        "form": "separable", "separable_vectors": [[[1, 0, -1], [1, 2, 1]]]}
    assert "form" not in s.replace(separable=False).to_dict()   # 2-D headers unchanged
    assert spec().to_dict()["shift"] is None
    assert ConvSpec(width=4, height=4, kernel_shape=2).to_dict()["kernel"] is None
    assert repr(s) == ("ConvSpec(8x6, kernel=[[1, 2, 1], [0, 0, 0], [-1, -2, -1]], "
                       "stride=(1, 2), padding=((1, 1), (2, 2)), dilation=(1, 1), in_bits=8, "
                       "coeff_bits=3, flip=False, out_bits=6, separable)")
    assert "kernel_shape=(2, 2)" in repr(ConvSpec(width=4, height=4, kernel_shape=2,
                                                  in_signed=True))
