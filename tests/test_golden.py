"""The golden model against independent references: SciPy's correlate2d / convolve2d (with explicit
padding, dilation by zero insertion, and striding by slicing), plain Python integers for rounding,
saturation and values too large for int64."""

import itertools
from fractions import Fraction

import numpy as np
import pytest
from scipy import signal

from convhw import ConvSpec
from convhw.golden import conv2d, requantize, run_spec


def dilate(kernel, dy, dx):
    kh, kw = kernel.shape
    out = np.zeros((dy * (kh - 1) + 1, dx * (kw - 1) + 1), dtype=kernel.dtype)
    out[::dy, ::dx] = kernel
    return out


def scipy_reference(image, kernel, stride, pads, dilation, flip):
    padded = np.pad(image, pads)
    taps = dilate(kernel, *dilation)
    full = (signal.convolve2d if flip else signal.correlate2d)(padded, taps, mode="valid")
    return full[::stride[0], ::stride[1]]


def python_reference(image, kernel, stride, pads, dilation):
    """Cross-correlation with Python integers, one output at a time (slow and obvious)."""
    (top, bottom), (left, right) = pads
    h, w = len(image), len(image[0])
    kh, kw = len(kernel), len(kernel[0])
    (sy, sx), (dy, dx) = stride, dilation
    rows = []
    for y in range(-top, h + bottom - dy * (kh - 1), sy):
        row = []
        for x in range(-left, w + right - dx * (kw - 1), sx):
            acc = 0
            for i, j in itertools.product(range(kh), range(kw)):
                yy, xx = y + i * dy, x + j * dx
                if 0 <= yy < h and 0 <= xx < w:
                    acc += int(image[yy][xx]) * int(kernel[i][j])
            row.append(acc)
        rows.append(row)
    return rows


@pytest.mark.parametrize("seed", range(8))
def test_against_scipy(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        kh, kw = (int(v) for v in rng.integers(1, 8, size=2))
        stride = tuple(int(v) for v in rng.integers(1, 4, size=2))
        dilation = tuple(int(v) for v in rng.integers(1, 4, size=2))
        spans = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
        pads = tuple(tuple(int(v) for v in rng.integers(0, s, size=2)) for s in spans)
        shape = tuple(max(1, s - sum(p)) + int(rng.integers(0, 10)) for s, p in zip(spans, pads))
        image = rng.integers(-1000, 1000, size=shape)
        kernel = rng.integers(-100, 100, size=(kh, kw))
        for flip in (False, True):
            got = conv2d(image, kernel, stride=stride, padding=pads, dilation=dilation,
                         flip=flip)
            expected = scipy_reference(image, kernel, stride, pads, dilation, flip)
            np.testing.assert_array_equal(got, expected)
        # Symmetric padding given as (PY, PX) or P, on a frame big enough for any padding.
        image = rng.integers(-1000, 1000, size=tuple(s + int(rng.integers(0, 5)) for s in spans))
        py, px = pads[0][0], pads[1][0]
        np.testing.assert_array_equal(
            conv2d(image, kernel, stride=stride, padding=(py, px), dilation=dilation),
            scipy_reference(image, kernel, stride, ((py, py), (px, px)), dilation, False))
        p = min(py, px)
        np.testing.assert_array_equal(
            conv2d(image, kernel, padding=p),
            scipy_reference(image, kernel, (1, 1), ((p, p), (p, p)), (1, 1), False))


@pytest.mark.parametrize("kh, kw", [(1, 1), (3, 3), (5, 3), (1, 7), (7, 5)])
def test_same_padding_odd_kernels_match_scipy_same(kh, kw):
    rng = np.random.default_rng(kh * 10 + kw)
    image = rng.integers(0, 256, size=(9, 12))
    kernel = rng.integers(-8, 8, size=(kh, kw))
    np.testing.assert_array_equal(conv2d(image, kernel, padding="same"),
                                  signal.correlate2d(image, kernel, mode="same"))
    np.testing.assert_array_equal(conv2d(image, kernel, padding="same", flip=True),
                                  signal.convolve2d(image, kernel, mode="same"))


@pytest.mark.parametrize("kh, kw", [(2, 2), (4, 4), (2, 5), (6, 3)])
@pytest.mark.parametrize("dilation", [1, 2])
def test_same_padding_even_kernels(kh, kw, dilation):
    """The odd cell of ``D*(K-1)`` goes to the bottom/right, as in PyTorch and TensorFlow."""
    rng = np.random.default_rng(kh * 10 + kw)
    image = rng.integers(-50, 50, size=(8, 11))
    kernel = rng.integers(-8, 8, size=(kh, kw))
    ty, tx = dilation * (kh - 1), dilation * (kw - 1)
    pads = ((ty // 2, ty - ty // 2), (tx // 2, tx - tx // 2))
    got = conv2d(image, kernel, padding="same", dilation=dilation)
    assert got.shape == image.shape
    np.testing.assert_array_equal(
        got, scipy_reference(image, kernel, (1, 1), pads, (dilation, dilation), False))


def test_python_integer_reference_and_huge_values():
    """Beyond int64 the model switches to Python integers and stays exact."""
    rng = np.random.default_rng(3)
    lo, hi = -(1 << 31), (1 << 31) - 1
    for kh, kw, stride, pads, dilation in [(3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1)),
                                           (2, 4, (2, 3), ((0, 1), (2, 1)), (2, 1))]:
        image = rng.choice([lo, hi, 0, 12345], size=(6, 9))
        kernel = rng.choice([lo, hi, -1], size=(kh, kw))
        got = conv2d(image, kernel, stride=stride, padding=pads, dilation=dilation)
        assert got.dtype == object
        assert got.tolist() == python_reference(image.tolist(), kernel.tolist(), stride, pads,
                                                dilation)
    # Just inside int64: the fast path, still exact.
    image = np.full((2, 2), (1 << 30) - 1)
    kernel = np.full((2, 2), (1 << 30) - 1)
    got = conv2d(image, kernel)
    assert got.dtype == np.int64 and int(got[0, 0]) == 4 * ((1 << 30) - 1) ** 2


def reference_requantize(value, shift, out_bits):
    """Round half up (towards +infinity on ties) with exact fractions, then clamp."""
    if shift:
        value = int((Fraction(value, 2 ** shift) + Fraction(1, 2)).__floor__())
    if out_bits is not None:
        value = max(-2 ** (out_bits - 1), min(2 ** (out_bits - 1) - 1, value))
    return value


def test_requantize_rounds_half_up_with_arithmetic_shift():
    values = list(range(-70, 71)) + [2 ** 40 + 7, -(2 ** 40) - 9, 2 ** 61, -(2 ** 61)]
    for shift, out_bits in itertools.product([None, 0, 1, 2, 3, 5, 62, 63, 64],
                                             [None, 1, 2, 4, 8, 64]):
        got = requantize(np.array(values, dtype=np.int64), shift=shift, out_bits=out_bits)
        assert [int(v) for v in got] == [reference_requantize(v, shift, out_bits)
                                        for v in values], (shift, out_bits)
    # Ties go up, also for negative values: -2.5 -> -2, -0.5 -> 0, 0.5 -> 1, 2.5 -> 3.
    assert requantize(np.array([-5, -3, -1, 1, 3, 5]), shift=1).tolist() == [-2, -1, 0, 1, 2, 3]
    assert requantize(np.array([-7, -6, -5, 5, 6]), shift=2).tolist() == [-2, -1, -1, 1, 2]


def test_saturation():
    image = np.array([[127, -128, 64, -64, 3, -3]])
    got = conv2d(image, [[3]], shift=2, out_bits=6)
    assert got.tolist() == [[31, -32, 31, -32, 2, -2]]
    assert conv2d(image, [[3]], out_bits=8).tolist() == [[127, -128, 127, -128, 9, -9]]


def test_flip_is_mathematical_convolution():
    rng = np.random.default_rng(5)
    image, kernel = rng.integers(-9, 9, size=(7, 8)), rng.integers(-9, 9, size=(3, 4))
    np.testing.assert_array_equal(conv2d(image, kernel, flip=True),
                                  signal.convolve2d(image, kernel, mode="valid"))
    np.testing.assert_array_equal(conv2d(image, kernel, flip=True),
                                  conv2d(image, kernel[::-1, ::-1]))


def test_input_dtypes():
    """Narrow unsigned inputs are widened before multiplying (no uint8 wrap-around)."""
    image = np.array([[200, 255], [0, 100]], dtype=np.uint8)
    kernel = np.array([[-2, 3]], dtype=np.int8)
    assert conv2d(image, kernel).tolist() == [[-400 + 765], [300]]
    assert conv2d(np.array([[1 << 63]], dtype=np.uint64), [[1]]).tolist() == [[1 << 63]]


def test_errors():
    with pytest.raises(ValueError, match=r"^image and kernel must be 2-D$"):
        conv2d(np.zeros(5), [[1]])
    with pytest.raises(ValueError, match=r"^image and kernel must be 2-D$"):
        conv2d(np.zeros((5, 5)), [1, 2])
    with pytest.raises(ValueError, match=r"^image too small for the kernel$"):
        conv2d(np.zeros((2, 5)), np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"^padding must be an integer, a pair or 'same', "
                                         r"not 'full'$"):
        conv2d(np.zeros((5, 5)), [[1]], padding="full")


def test_run_spec():
    spec = ConvSpec(width=9, height=7, kernel=[[1, 2], [3, -4], [5, 6]], stride=(2, 1),
                    padding=(1, 1), dilation=(1, 2), flip=True, in_signed=True, shift=2,
                    out_bits=5)
    rng = np.random.default_rng(9)
    image = rng.integers(-128, 128, size=spec.frame_shape)
    got = run_spec(spec, image)
    assert got.shape == spec.out_shape
    np.testing.assert_array_equal(got, conv2d(image, spec.kernel, stride=(2, 1), padding=1,
                                              dilation=(1, 2), flip=True, shift=2, out_bits=5))
    np.testing.assert_array_equal(
        got, requantize(scipy_reference(image, np.array(spec.kernel), (2, 1), ((1, 1), (1, 1)),
                                        (1, 2), True), shift=2, out_bits=5))
    assert run_spec(spec.replace(shift=None, out_bits=None), image).max() > 15  # unclamped
    runtime = spec.replace(kernel=None, kernel_shape=(3, 2), coeff_bits=4)
    np.testing.assert_array_equal(run_spec(runtime, image, np.array(spec.kernel)), got)
    with pytest.raises(ValueError, match=r"^a runtime-coefficient spec needs the kernel"):
        run_spec(runtime, image)
