"""Pooling cores and unequal padding (issue 11): a max pool is a Conv2d with
``operation="max-pool"`` (the line buffer and window of a convolution, a comparison tree in
place of the products), bit-exact with the golden model under stalls, frames back to back;
``padding=((top, bottom), (left, right))`` for convolutions and pools alike.
"""

import itertools

import numpy as np
import pytest

from convhw import Conv2d, ConvSpec
from convhw.golden import max_pool, run_spec
from convhw.harness import describe_mismatch, simulate


def _naive_max_pool(x, kernel, stride, pads):
    """Max over the in-frame cells of each window, by loops."""
    (kh, kw), (sy, sx), ((top, bottom), (left, right)) = kernel, stride, pads
    c, h, w = x.shape
    out_h, out_w = (h + top + bottom - kh) // sy + 1, (w + left + right - kw) // sx + 1
    out = np.zeros((c, out_h, out_w), dtype=np.int64)
    for ch, oy, ox in itertools.product(range(c), range(out_h), range(out_w)):
        cells = [x[ch, y, xx] for y in range(oy * sy - top, oy * sy - top + kh)
                 for xx in range(ox * sx - left, ox * sx - left + kw)
                 if 0 <= y < h and 0 <= xx < w]
        out[ch, oy, ox] = max(cells)
    return out


@pytest.mark.parametrize("kernel, stride, pads", [
    ((2, 2), (2, 2), ((0, 0), (0, 0))),
    ((3, 3), (2, 2), ((1, 1), (1, 1))),
    ((2, 2), (2, 2), ((0, 1), (0, 1))),    # SAME_UPPER on an odd map
    ((3, 2), (1, 2), ((2, 0), (0, 1))),
])
def test_golden_max_pool(kernel, stride, pads):
    x = np.random.default_rng(1).integers(-128, 128, size=(3, 7, 9))
    np.testing.assert_array_equal(max_pool(x, kernel, stride=stride, padding=pads),
                                  _naive_max_pool(x, kernel, stride, pads))


#: name -> ConvSpec arguments of a max pool
POOLS = {
    "2x2-stride2-even": dict(width=6, height=4, kernel_shape=2, stride=2, in_channels=3),
    "2x2-stride2-odd-same-upper": dict(width=7, height=5, kernel_shape=2, stride=2,
                                       padding=((0, 1), (0, 1)), in_channels=2,
                                       in_signed=True),
    "3x3-stride2-pad1-signed": dict(width=5, height=7, kernel_shape=3, stride=2, padding=1,
                                    in_channels=2, in_signed=True, in_bits=6),
    "3x2-stride1x2-unequal-pads": dict(width=5, height=6, kernel_shape=(3, 2), stride=(1, 2),
                                       padding=((2, 0), (0, 1)), in_channels=1),
    "3x3-stride1-clamp-relu": dict(width=5, height=5, kernel_shape=3, padding=((1, 1), (0, 2)),
                                   in_channels=4, in_signed=True, in_bits=5, relu=True,
                                   clamp=(-3, 9)),
    "2x2-dilation2": dict(width=6, height=5, kernel_shape=2, dilation=2, in_channels=2),
}


@pytest.mark.parametrize("name", sorted(POOLS))
def test_max_pool_core(name):
    spec = ConvSpec(operation="max-pool", **POOLS[name])
    assert spec.multipliers == 0 and spec.operation == "max-pool"
    lo, hi = spec.pixel_range
    rng = np.random.default_rng(sorted(POOLS).index(name))
    frames = [rng.integers(lo, hi + 1, size=spec.input_shape) for _ in range(3)]
    expected = [run_spec(spec, frame) for frame in frames]
    for stall in (0.0, 0.4):
        result = simulate(Conv2d(spec), frames, in_stall=stall, out_stall=stall, seed=3)
        assert result.errors == []
        for got, want in zip(result.frames, expected):
            assert describe_mismatch(got, want) is None
        if not stall:
            assert result.cycles <= 3 * spec.positions_per_frame + spec.latency


def test_max_pool_padding_never_wins():
    """All-negative maps: a padding cell (0 in a convolution) must not become the maximum."""
    spec = ConvSpec(operation="max-pool", width=4, height=4, kernel_shape=3, padding=1,
                    in_channels=1, in_signed=True)
    frame = np.full((1, 4, 4), -100) - np.arange(16).reshape(1, 4, 4)
    out = run_spec(spec, frame)
    assert out.max() < 0
    result = simulate(Conv2d(spec), [frame])
    np.testing.assert_array_equal(result.frames[0], out)


@pytest.mark.parametrize("changes, message", [
    (dict(kernel=[[1, 1], [1, 1]]), r"^'operation'='max-pool' takes 'kernel_shape', not "
                                    r"'kernel' or 'weights'$"),
    (dict(kernel_shape=None), r"^'operation'='max-pool' needs 'kernel_shape' \(KH, KW\)$"),
    (dict(bias=[1, 2]), r"^'bias' does not apply to 'operation'='max-pool' \(a max pool only "
                        r"saturates\), not \[1, 2\]$"),
    (dict(shift=2), r"^'shift' does not apply to 'operation'='max-pool' \(a max pool only "
                    r"saturates\), not 2$"),
    (dict(pe=1), r"^'pe' does not apply to 'operation'='max-pool' \(a max pool only "
                 r"saturates\), not 1$"),
    (dict(border="replicate"), r"^'operation'='max-pool' takes no 'border' \(padding never "
                               r"wins\), not 'replicate' with value 0$"),
    (dict(out_channels=3), r"^'out_channels' 3 must equal 'in_channels' 2 for "
                           r"'operation'='max-pool'$"),
    (dict(operation="avg"), r"^'operation' must be one of 'conv', 'max-pool', not 'avg'$"),
])
def test_max_pool_refusals(changes, message):
    args = dict(width=4, height=4, operation="max-pool", kernel_shape=2, in_channels=2)
    args.update(changes)
    with pytest.raises(ValueError, match=message):
        ConvSpec(**args)


# --- unequal padding ---------------------------------------------------------------------------

@pytest.mark.parametrize("pads, fold", [
    (((1, 0), (2, 1)), None),
    (((0, 2), (1, 0)), (2, 3)),
    (((2, 1), (0, 2)), None),
])
def test_unequal_padding_layer(pads, fold):
    rng = np.random.default_rng(5)
    pe, simd = fold or (None, None)
    spec = ConvSpec(width=6, height=5, weights=rng.integers(-20, 21, size=(3, 2, 3, 3)),
                    padding=pads, stride=(1, 2), in_signed=True, shift=3, out_bits=8,
                    pe=pe, simd=simd)
    (top, bottom), (left, right) = pads
    assert spec.padding == pads
    assert spec.out_shape == ((5 + top + bottom - 3) + 1, (6 + left + right - 3) // 2 + 1)
    frames = [rng.integers(-128, 128, size=spec.input_shape) for _ in range(2)]
    result = simulate(Conv2d(spec), frames, in_stall=0.3, out_stall=0.3, seed=2)
    assert result.errors == []
    for got, frame in zip(result.frames, frames):
        assert describe_mismatch(got, run_spec(spec, frame)) is None


def test_unequal_padding_filter_matches_symmetric():
    """((p, p), (q, q)) is the same spec as (p, q)."""
    a = ConvSpec(width=5, height=5, kernel=np.ones((3, 3), int), padding=(1, 2), dilation=2)
    b = ConvSpec(width=5, height=5, kernel=np.ones((3, 3), int), padding=((1, 1), (2, 2)),
                 dilation=2)
    assert a == b


@pytest.mark.parametrize("padding, error, message", [
    (((0, 3), (0, 0)), ValueError, r"^'padding' 3 on the bottom \(axis y\) must be smaller "
                                   r"than the effective kernel size 3 \(dilation\*\(K-1\)\+1\)$"),
    (((0, 0), (-1, 0)), ValueError, r"^'padding' must be >= 0, not -1$"),
    (((0, 0, 1), (0, 0)), ValueError, r"^'padding' must be P, \(PY, PX\) or \(\(top, bottom\), "
                                      r"\(left, right\)\), not \(\(0, 0, 1\), \(0, 0\)\)$"),
])
def test_unequal_padding_refusals(padding, error, message):
    with pytest.raises(error, match=message):
        ConvSpec(width=5, height=5, kernel=np.ones((3, 3), int), padding=padding)


# --- a divisor per window (AveragePool with count_include_pad=0 and padding) -------------------

def _windows_spec(**changes):
    args = dict(width=7, height=5, weights=np.ones((2, 1, 3, 3), int), groups=2, padding=1,
                stride=(1, 2), in_signed=True, rounding="half-even", out_bits=8,
                clamp=(-100, 90), separable=False,
                window_scales={4: (1, 2), 6: (43691, 18), 9: (7282, 16)})
    args.update(changes)
    return ConvSpec(**args)


def test_window_scales_golden():
    spec = _windows_spec()
    assert spec.window_counts() == ((2, 3, 3, 3, 2), (2, 3, 3, 2))
    frame = np.random.default_rng(3).integers(-128, 128, size=spec.input_shape)
    padded = np.pad(frame, ((0, 0), (1, 1), (1, 1)))
    inside = np.pad(np.ones(frame.shape[1:], int), 1)
    out = run_spec(spec, frame)
    for c, oy, ox in itertools.product(range(2), range(5), range(4)):
        window = padded[c, oy:oy + 3, 2 * ox:2 * ox + 3]
        cells = int(inside[oy:oy + 3, 2 * ox:2 * ox + 3].sum())
        scale, shift = spec.window_scales[cells]
        value = int(window.sum()) * scale / 2**shift
        floor = int(np.floor(value))
        rounded = floor + (value - floor > 0.5 or (value - floor == 0.5 and floor % 2))
        assert out[c, oy, ox] == min(max(rounded, -100), 90)


@pytest.mark.parametrize("changes", [
    {},
    dict(weights=np.random.default_rng(4).integers(-5, 6, size=(3, 2, 2, 3)), groups=1,
         padding=((1, 0), (2, 1)), stride=1, window_scales={n: (2 * n + 1, 5) for n in range(1, 7)},
         rounding="half-up"),
])
def test_window_scales_core(changes):
    spec = _windows_spec(**changes)
    assert spec.back_stages == 3
    rng = np.random.default_rng(6)
    frames = [rng.integers(-128, 128, size=spec.input_shape) for _ in range(2)]
    result = simulate(Conv2d(spec), frames, in_stall=0.3, out_stall=0.3, seed=1)
    assert result.errors == []
    for got, frame in zip(result.frames, frames):
        assert describe_mismatch(got, run_spec(spec, frame)) is None


@pytest.mark.parametrize("changes, message", [
    (dict(window_scales={4: (1, 2), 9: (7282, 16)}),
     r"^'window_scales' must give windows of 4, 6, 9 cells; missing 6$"),
    (dict(shift=3), r"^'shift' does not go with 'window_scales' \(which give the scale and "
                    r"shift of each window\), not 3$"),
    (dict(relu=True), r"^'relu' does not go with 'window_scales'$"),
    (dict(pe=1), r"^'window_scales' needs compile-time weights, an unfolded layer, 1 pixel per "
                 r"clock and a zero 'constant' border$"),
])
def test_window_scales_refusals(changes, message):
    with pytest.raises(ValueError, match=message):
        _windows_spec(**changes)
