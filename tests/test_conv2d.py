"""Conv2d gateware against the golden model: shapes, strides, padding, dilation, number formats,
runtime coefficients, stalls, cycle counts and malformed frame markers.

Whole frames run through the shared harness (:func:`convhw.harness.simulate`); streams with
mid-frame ``first`` markers, no markers at all, or coefficient writes during a frame go through
:func:`streaming.run_stream`.
"""

import numpy as np
import pytest

from convhw import Conv2d, ConvSpec
from convhw.golden import run_spec
from convhw.harness import simulate
from streaming import run_stream

SOBEL_X = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]


# --- helpers, shared with test_conv2d_property ---------------------------------------------------

def random_frame(rng, spec, extreme=False):
    """Pixels anywhere in range, or only the two extremes (where exactness breaks first)."""
    lo, hi = spec.pixel_range
    if extreme:
        return rng.choice([lo, hi], size=spec.frame_shape)
    return rng.integers(lo, hi, size=spec.frame_shape, endpoint=True)


def random_kernel(rng, spec, extreme=False):
    lo, hi = -(1 << (spec.coeff_bits - 1)), (1 << (spec.coeff_bits - 1)) - 1
    if extreme:
        return rng.choice([lo, hi], size=spec.kernel_shape)
    return rng.integers(lo, hi, size=spec.kernel_shape, endpoint=True)


def check_run(spec, frames, kernels=None, **options):
    """Simulate ``frames``, assert a clean, bit-exact run, and return the :class:`SimResult`."""
    result = simulate(Conv2d(spec), frames, coefficients=kernels, **options)
    assert result.errors == []
    assert len(result.frames) == len(frames)
    for index, frame in enumerate(frames):
        kernel = None if kernels is None else kernels[index % len(kernels)]
        np.testing.assert_array_equal(result.frames[index], run_spec(spec, frame, kernel),
                                      err_msg=f"frame {index} of {spec}")
    return result


def frame_markers(out_shape, frames=1):
    out_h, out_w = out_shape
    return [(k % (out_h * out_w) == 0, k % out_w == out_w - 1)
            for k in range(frames * out_h * out_w)]


# --- constant kernels: shapes, strides, padding, dilation, number formats ------------------------

def _kernel(seed, shape, lo=-9, hi=9):
    return np.random.default_rng(seed).integers(lo, hi, size=shape, endpoint=True).tolist()


# Kernel sizes 1, 2, 3, 4, 5, 7 and non-square; strides 1 to 3 (sy != sx, not dividing the
# frame); padding 0, 1, 2, asymmetric and "same" (even kernels included); dilation 1 and 2;
# signed and unsigned pixels of 1 to 16 bits; coefficients at the ends of coeff_bits.
CASES = [
    dict(width=7, height=5, kernel=[[5]]),
    dict(width=8, height=7, kernel=[[-128]], stride=(2, 3), in_signed=True),
    dict(width=7, height=6, kernel=[[1, -1], [2, 3]], padding=(1, 0)),
    dict(width=8, height=7, kernel=[[3, -5], [7, 1]], padding="same"),
    dict(width=7, height=6, kernel=[[1, 1], [1, 1]], in_bits=1),
    dict(width=6, height=7, kernel=[[1, -1], [3, 1]], in_bits=1, in_signed=True, dilation=2),
    dict(width=9, height=7, kernel=[[1, 2, 1], [2, 4, 2], [1, 2, 1]], padding="same"),
    dict(width=10, height=9, kernel=SOBEL_X, stride=2, padding=1, in_signed=True),
    dict(width=11, height=8, kernel=_kernel(1, (3, 3)), stride=3, padding=2),
    dict(width=9, height=8, kernel=_kernel(2, (3, 3)), dilation=2, padding="same", flip=True),
    dict(width=10, height=9, kernel=_kernel(3, (3, 3)), dilation=(2, 1), stride=(1, 2),
         padding=(2, 1), in_bits=3),
    dict(width=8, height=9, kernel=_kernel(4, (4, 4)), padding="same", flip=True),
    dict(width=11, height=9, kernel=_kernel(5, (4, 4)), stride=(3, 2), padding=(3, 0),
         dilation=(1, 2), in_signed=True, in_bits=6),
    dict(width=9, height=9, kernel=_kernel(6, (5, 5), -100, 100), padding=2, in_bits=12,
         in_signed=True, shift=6, out_bits=8),
    dict(width=12, height=10, kernel=_kernel(7, (5, 5)), dilation=2, padding=(0, 4), stride=2),
    dict(width=9, height=8, kernel=_kernel(8, (7, 7)), padding="same", in_bits=4),
    dict(width=13, height=7, kernel=_kernel(9, (7, 7)), stride=2, padding=(0, 3), in_bits=10),
    dict(width=11, height=10, kernel=_kernel(15, (3, 3)), dilation=(3, 2), padding=(5, 2),
         stride=2, in_signed=True),
    dict(width=10, height=9, kernel=_kernel(10, (3, 5)), padding=(1, 2), stride=(2, 1)),
    dict(width=9, height=11, kernel=_kernel(11, (5, 3)), padding="same", dilation=(1, 2)),
    dict(width=12, height=5, kernel=[_kernel(12, 7)], padding=(0, 3), in_bits=16, in_signed=True),
    dict(width=5, height=12, kernel=_kernel(13, (7, 1)), padding=(6, 0), stride=(3, 1)),
    dict(width=8, height=7, kernel=[[-128, 127, -128], [127, -128, 127], [-128, 127, -128]],
         in_bits=8, in_signed=True, padding=1),
    dict(width=7, height=6, kernel=[[-8, 7, 0], [7, -8, 0], [0, 0, -8]], coeff_bits=4,
         in_bits=16, stride=(1, 2), padding=(0, 2)),
    dict(width=7, height=7, kernel=[[0, 0, 0], [0, 0, 0], [0, 0, 1]], padding=(2, 1)),
    dict(width=6, height=5, kernel=[[0, 0], [0, 0]], padding=1),
    dict(width=9, height=8, kernel=_kernel(14, (3, 3), -2**15, 2**15 - 1), in_bits=16,
         in_signed=True, coeff_bits=17, shift=20, out_bits=12, padding="same"),
]


def case_id(kwargs):
    shape = np.shape(kwargs["kernel"])
    rest = "-".join(f"{k}{v}".replace(" ", "") for k, v in kwargs.items()
                    if k not in ("kernel", "width", "height"))
    return f"{kwargs['width']}x{kwargs['height']}-K{shape[0]}x{shape[1]}-{rest}"


@pytest.mark.parametrize("kwargs", CASES, ids=case_id)
def test_constant_kernel(kwargs):
    spec = ConvSpec(**kwargs)
    rng = np.random.default_rng(len(kwargs["kernel"]) * 100 + kwargs["width"])
    frames = [random_frame(rng, spec), random_frame(rng, spec, extreme=True),
              random_frame(rng, spec)]
    # One frame, then three back to back without stalls: exactly as many cycles as the spec says.
    assert check_run(spec, frames[:1]).cycles == spec.cycles_per_frame
    result = check_run(spec, frames)
    assert result.cycles == 2 * spec.positions_per_frame + spec.cycles_per_frame
    check_run(spec, frames, in_stall=0.3, out_stall=0.3, seed=1)
    check_run(spec, frames[1:], in_stall=0.9, out_stall=0.9, seed=2)
    check_run(spec, frames[:1], in_stall=0.9, seed=3)
    check_run(spec, frames[:1], out_stall=0.9, seed=4)


@pytest.mark.parametrize("in_signed", [False, True])
@pytest.mark.parametrize("in_bits", range(1, 17))
def test_pixel_formats(in_bits, in_signed):
    """Every pixel width from 1 to 16 bits, with coefficients at the ends of ``coeff_bits``."""
    kernel = [[-16, 15, 3], [0, -16, 15], [15, 1, -16]]
    spec = ConvSpec(width=6, height=5, kernel=kernel, padding=(1, 2), in_bits=in_bits,
                    in_signed=in_signed, flip=in_bits % 2 == 1)
    assert spec.coeff_bits == 5
    rng = np.random.default_rng(in_bits)
    frames = [random_frame(rng, spec, extreme=True), random_frame(rng, spec)]
    check_run(spec, frames, in_stall=0.3, out_stall=0.3, seed=in_bits)


def test_accumulator_extremes_reached():
    """Frames that drive the accumulator to both ends of ``acc_range`` come out exactly."""
    for kwargs in CASES:
        probe = ConvSpec(**kwargs)
        (dy, dx), (sh, sw) = probe.dilation, probe.span
        spec = probe.replace(width=sw, height=sh, padding=0, stride=1, shift=None, out_bits=None)
        kernel = np.array(spec.hw_kernel)
        lo, hi = spec.pixel_range
        frames = []
        for taps in (np.where(kernel > 0, lo, hi), np.where(kernel > 0, hi, lo)):
            frame = np.zeros(spec.frame_shape, dtype=np.int64)
            frame[::dy, ::dx] = taps
            frames.append(frame)
        result = check_run(spec, frames)
        assert (result.frames[0][0, 0], result.frames[1][0, 0]) == spec.acc_range


def test_saturation_triggers():
    spec = ConvSpec(width=9, height=7, kernel=[[40, 90, 40], [90, 127, 90], [40, 90, 40]],
                    padding="same", in_bits=8, in_signed=True, shift=4, out_bits=9)
    assert spec.saturates and spec.out_range == (-256, 255)
    rng = np.random.default_rng(9)
    frames = [random_frame(rng, spec, extreme=True), random_frame(rng, spec)]
    frames.append(np.full(spec.frame_shape, 127))
    frames.append(np.full(spec.frame_shape, -128))
    golden = np.concatenate([run_spec(spec, f).ravel() for f in frames])
    assert golden.max() == 255 and golden.min() == -256  # the clamp really acts, on both sides
    assert (golden == 255).sum() > 10 and (golden == -256).sum() > 10
    check_run(spec, frames)
    check_run(spec, frames, in_stall=0.3, out_stall=0.3, seed=5)


@pytest.mark.parametrize("max_dsps", [None, 4])
def test_widest_numbers(max_dsps):
    """32-bit pixels and coefficients: accumulators past 64 bits, padding all around."""
    lo, hi = -2**31, 2**31 - 1
    const = ConvSpec(width=5, height=4, kernel=[[lo, hi, lo], [hi, lo, hi], [lo, hi, -1]],
                     in_bits=32, in_signed=True, padding="same")
    runtime = const.replace(kernel=None, kernel_shape=(3, 3), coeff_bits=32, max_dsps=max_dsps)
    assert const.out_bits == 66 and runtime.out_bits == 67
    rng = np.random.default_rng(32)
    frames = [random_frame(rng, const, extreme=True), random_frame(rng, const)]
    kernels = [random_kernel(rng, runtime, extreme=True), random_kernel(rng, runtime)]
    if max_dsps is None:
        check_run(const, frames, in_stall=0.3, out_stall=0.3, seed=1)
    check_run(runtime, frames, kernels, in_stall=0.3, out_stall=0.3, seed=2)


def test_smallest_frames():
    """Frames as small as the kernel allows, down to one pixel (a one-column line buffer)."""
    for kwargs in [dict(kernel=SOBEL_X, padding=1), dict(kernel=SOBEL_X, padding="same"),
                   dict(kernel=_kernel(20, (4, 4)), padding="same", flip=True),
                   dict(kernel=_kernel(21, (3, 5)), padding=(1, 2), stride=(2, 3)),
                   dict(kernel=_kernel(22, (2, 3)), dilation=(3, 2), padding=(2, 1)),
                   dict(kernel=_kernel(23, (7, 7)), padding=0),
                   dict(kernel=_kernel(24, (5, 5)), padding=(3, 1), dilation=2, stride=3)]:
        probe = ConvSpec(width=32, height=32, **kwargs)
        (top, bottom), (left, right) = probe.padding
        width = max(1, probe.span[1] - left - right)
        height = max(1, probe.span[0] - top - bottom)
        spec = probe.replace(width=width, height=height)
        for axis, size in (("width", width), ("height", height)):
            if size > 1:
                with pytest.raises(ValueError, match="too small for the effective kernel"):
                    spec.replace(**{axis: size - 1})
        rng = np.random.default_rng(width * 10 + height)
        frames = [random_frame(rng, spec) for _ in range(3)]
        assert check_run(spec, frames[:1]).cycles == spec.cycles_per_frame
        check_run(spec, frames)
        check_run(spec, frames, in_stall=0.5, out_stall=0.5, seed=width)


def test_single_column_and_row_frames():
    for width, height in ((1, 9), (9, 1), (1, 1)):
        spec = ConvSpec(width=width, height=height, kernel=_kernel(30, (3, 3)), padding="same",
                        in_signed=True)
        rng = np.random.default_rng(width)
        frames = [random_frame(rng, spec) for _ in range(3)]
        check_run(spec, frames)
        check_run(spec, frames, in_stall=0.3, out_stall=0.9, seed=1)


def test_back_to_back_after_bottom_padding():
    """Bottom-padding positions of one frame run while the next frame's pixels wait."""
    spec = ConvSpec(width=8, height=6, kernel=_kernel(31, (5, 5)), padding=(4, 1), stride=(1, 2))
    assert spec.positions_per_frame > spec.width * spec.height
    rng = np.random.default_rng(31)
    frames = [random_frame(rng, spec) for _ in range(3)]
    result = check_run(spec, frames)
    assert result.cycles == 2 * spec.positions_per_frame + spec.cycles_per_frame


# --- cycle counts and latency --------------------------------------------------------------------

@pytest.mark.parametrize("separable, cycles", [(False, 4169), (None, 4170)])
def test_cycles_64x64_same_3x3(separable, cycles):
    spec = ConvSpec(width=64, height=64, kernel=SOBEL_X, padding="same", separable=separable)
    (py, _), _ = spec.padding
    frame = random_frame(np.random.default_rng(64), spec)
    result = check_run(spec, [frame])
    assert result.cycles == spec.cycles_per_frame == cycles
    assert result.cycles <= 64 * 64 + (py + 1) * 64 + 32


@pytest.mark.parametrize("kwargs", CASES[::4], ids=case_id)
def test_latency(kwargs):
    """Each output leaves exactly ``latency`` cycles after the issue of its position."""
    spec = ConvSpec(**kwargs)
    frame = random_frame(np.random.default_rng(1), spec)
    expected = run_spec(spec, frame)
    values, markers, accepted, produced, errors = run_stream(
        Conv2d(spec), frame.ravel(), expected.size)
    assert errors == [] and values == expected.ravel().tolist()
    assert markers == frame_markers(spec.out_shape)
    # One position per clock; the positions past the right edge take no pixel.
    start, wv = accepted[0], spec.stream_width
    assert accepted == [start + y * wv + x for y in range(spec.height) for x in range(spec.width)]
    out_h, out_w = spec.out_shape
    assert produced == [start + spec.output_position(oy, ox) + spec.latency
                        for oy in range(out_h) for ox in range(out_w)]


# --- runtime coefficients ------------------------------------------------------------------------

@pytest.mark.parametrize("max_dsps", [None, 0, 1, 2])
def test_runtime_coefficients_between_frames(max_dsps):
    spec = ConvSpec(width=8, height=7, kernel_shape=(3, 3), padding=(1, 2), stride=(1, 2),
                    in_bits=7, in_signed=True, coeff_bits=6, max_dsps=max_dsps, flip=True)
    kinds = {kind for _, _, kind, _, _ in spec.terms}
    assert kinds == ({"product"} if max_dsps is None else
                     {"partial"} if max_dsps == 0 else {"product", "partial"})
    rng = np.random.default_rng(max_dsps or 7)
    kernels = [random_kernel(rng, spec, extreme=True), random_kernel(rng, spec),
               np.array([[-32, 0, 0], [0, 31, 0], [0, 0, -1]])]
    frames = [random_frame(rng, spec, extreme=True), random_frame(rng, spec),
              random_frame(rng, spec, extreme=True)]
    check_run(spec, frames, kernels)
    check_run(spec, frames, kernels, in_stall=0.3, out_stall=0.3, seed=2)
    check_run(spec, frames[:2], kernels[:2], in_stall=0.9, out_stall=0.9, seed=3)


@pytest.mark.parametrize("in_signed", [False, True])
def test_runtime_coefficients_shapes(in_signed):
    for kwargs in [dict(kernel_shape=(1, 1)), dict(kernel_shape=(2, 3), padding="same"),
                   dict(kernel_shape=(5, 2), dilation=(1, 2), stride=(2, 1), padding=(2, 1),
                        max_dsps=3),
                   dict(kernel_shape=(4, 4), padding="same", shift=5, out_bits=7, coeff_bits=9,
                        in_bits=9)]:
        spec = ConvSpec(width=7, height=6, in_signed=in_signed, **kwargs)
        rng = np.random.default_rng(spec.taps)
        kernels = [random_kernel(rng, spec, extreme=True), random_kernel(rng, spec)]
        frames = [random_frame(rng, spec, extreme=True), random_frame(rng, spec)]
        check_run(spec, frames, kernels, in_stall=0.3, out_stall=0.3, seed=spec.taps)


def test_runtime_matches_constant():
    """Runtime coefficients compute what the same kernel compiled in does."""
    kernel = _kernel(40, (3, 4), -60, 60)
    const = ConvSpec(width=9, height=7, kernel=kernel, padding=(1, 2), flip=True)
    runtime = const.replace(kernel=None, kernel_shape=(3, 4), coeff_bits=const.coeff_bits,
                            out_bits=const.out_bits, shift=0)
    rng = np.random.default_rng(40)
    frames = [random_frame(rng, const) for _ in range(2)]
    a = check_run(const, frames, in_stall=0.3, out_stall=0.3, seed=4)
    b = check_run(runtime, frames, [np.array(kernel)], in_stall=0.3, out_stall=0.3, seed=4)
    for x, y in zip(a.frames, b.frames):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("max_dsps", [None, 0, 2])
@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_coefficient_writes_during_a_frame(max_dsps, stall):
    """Coefficients written while a frame streams take effect at the next start of frame only."""
    spec = ConvSpec(width=7, height=6, kernel_shape=(3, 3), padding="same", in_signed=True,
                    max_dsps=max_dsps)
    rng = np.random.default_rng(50)
    k1, k2, k3 = (random_kernel(rng, spec, extreme=True) for _ in range(3))
    a, b = random_frame(rng, spec, extreme=True), random_frame(rng, spec)
    size = spec.width * spec.height
    expected = [*run_spec(spec, a, k1).ravel(), *run_spec(spec, b, k2).ravel()]
    # k2 is written while frame a streams, so b uses it; k3, written while b streams, is not.
    for meddle, kernels in (((20, k2), {0: k1}), ((size + 3, k3), {0: k1, size: k2})):
        values, markers, _, _, errors = run_stream(
            Conv2d(spec), [*a.ravel(), *b.ravel()], len(expected), firsts=(0, size),
            kernels=kernels, meddle=meddle, in_stall=stall, out_stall=stall, seed=7)
        assert errors == [] and values == expected
        assert markers == frame_markers(spec.out_shape, 2)


def test_coefficient_write_after_last_pixel():
    """A write after the last pixel, while the bottom-padding positions still run, waits."""
    spec = ConvSpec(width=6, height=5, kernel_shape=(5, 3), padding=(4, 1), max_dsps=1)
    assert spec.positions_per_frame > spec.width * spec.height
    rng = np.random.default_rng(51)
    k1, k2 = random_kernel(rng, spec, extreme=True), random_kernel(rng, spec, extreme=True)
    a, b = random_frame(rng, spec), random_frame(rng, spec)
    size = spec.width * spec.height
    expected = [*run_spec(spec, a, k1).ravel(), *run_spec(spec, b, k2).ravel()]
    values, _, _, _, errors = run_stream(
        Conv2d(spec), [*a.ravel(), *b.ravel()], len(expected), firsts=(0, size),
        kernels={0: k1}, meddle=(size - 1, k2))
    assert errors == [] and values == expected


# --- frame markers -------------------------------------------------------------------------------

@pytest.mark.parametrize("stall", [0.0, 0.5])
@pytest.mark.parametrize("cut", [1, 4, 7, 13, 29])
def test_early_first_truncates_frame(cut, stall):
    """A ``first`` mid-frame ends that frame: its missing pixels count as zeros, all of its
    outputs still come out, and the next frame is exact."""
    spec = ConvSpec(width=7, height=5, kernel=_kernel(60, (3, 3)), padding=(2, 1), stride=(1, 2),
                    in_signed=True)
    rng = np.random.default_rng(cut)
    a, b = random_frame(rng, spec), random_frame(rng, spec)
    truncated = a.ravel().copy()
    truncated[cut:] = 0
    expected = [*run_spec(spec, truncated.reshape(a.shape)).ravel(), *run_spec(spec, b).ravel()]
    values, markers, _, _, errors = run_stream(
        Conv2d(spec), [*a.ravel()[:cut], *b.ravel()], len(expected), firsts=(0, cut),
        in_stall=stall, out_stall=stall, seed=cut)
    assert errors == [] and values == expected
    assert markers == frame_markers(spec.out_shape, 2)


@pytest.mark.parametrize("max_dsps", [None, 1])
def test_early_first_applies_new_coefficients(max_dsps):
    """Coefficients written before an early ``first`` apply to the new frame, not the cut one."""
    spec = ConvSpec(width=6, height=5, kernel_shape=(3, 2), padding=(2, 1), in_signed=True,
                    max_dsps=max_dsps)
    rng = np.random.default_rng(61)
    k1, k2 = random_kernel(rng, spec, extreme=True), random_kernel(rng, spec, extreme=True)
    a, b = random_frame(rng, spec), random_frame(rng, spec)
    cut = 17
    truncated = a.ravel().copy()
    truncated[cut:] = 0
    expected = [*run_spec(spec, truncated.reshape(a.shape), k1).ravel(),
                *run_spec(spec, b, k2).ravel()]
    for stall in (0.0, 0.4):
        values, markers, _, _, errors = run_stream(
            Conv2d(spec), [*a.ravel()[:cut], *b.ravel()], len(expected), firsts=(0, cut),
            kernels={0: k1, cut: k2}, in_stall=stall, out_stall=stall, seed=3)
        assert errors == [] and values == expected
        assert markers == frame_markers(spec.out_shape, 2)


@pytest.mark.parametrize("firsts", [(), (0,)])
def test_frames_without_first_markers(firsts):
    """Frames are counted by position: a producer that never sets ``first`` still works."""
    spec = ConvSpec(width=6, height=5, kernel=SOBEL_X, padding="same", in_signed=True)
    rng = np.random.default_rng(70)
    frames = [random_frame(rng, spec) for _ in range(3)]
    expected = [v for f in frames for v in run_spec(spec, f).ravel()]
    values, markers, _, _, errors = run_stream(
        Conv2d(spec), np.concatenate([f.ravel() for f in frames]), len(expected),
        firsts=firsts, in_stall=0.3, out_stall=0.3, seed=2)
    assert errors == [] and values == expected
    assert markers == frame_markers(spec.out_shape, 3)


def test_wrong_spec_type(unelaborated_ok):
    with pytest.raises(TypeError, match=r"^'spec' must be a ConvSpec, not 3$"):
        Conv2d(3)
