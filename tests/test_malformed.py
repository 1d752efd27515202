"""Malformed input streams, for every core kind: each behaves as docs/architecture.md ("Frame
edges and malformed input") says, and none hangs.

The documented rule, as :func:`documented_frames` models it: frames are counted by position. A
frame starts at the first pixel, at every input ``first``, and after ``frame_size`` pixels of the
previous frame (bounded kinds only). A frame cut short by a ``first`` gets zeros for its missing
pixels, and all of its outputs come out. The input ``last`` is ignored. An unbounded stream (a
1-D FIR core) has no frame size: a ``first`` restarts it, and each piece between two ``first``
markers gives the outputs of its complete windows, the first of them marked ``first``.

So a frame that is too long is a frame followed by a cut-short frame made of the extra pixels,
and a stream without ``first`` markers is split by position alone. Every expected output is the
golden model's on the frames the rule makes. :func:`streaming.run_stream` fails on a hang ("no
progress") and on any output beyond those expected.

Generic over core kinds: :data:`KINDS` has one line per core, a :class:`Kind` (spec, core
factory, and the golden model when :func:`convhw.golden.run_spec` does not cover it). A pixel is
one beat with all its channels (a layer's frames are ``(C, H, W)``), so a multi-channel layer is
one entry like any other, and a new core kind is one more.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from convhw import Conv1d, Conv1dSpec, Conv2d, ConvSpec
from convhw.golden import run_spec
from convhw.stimulus import (coefficient_shape, input_shape, output_shape, pack_beats,
                             unpack_beats)
from streaming import run_stream


@dataclass(frozen=True)
class Kind:
    """A core to feed malformed streams: ``core(spec)`` builds it, ``golden(spec, frame,
    kernel)`` computes what it must give for one frame (of ``input_shape(spec)``: a layer's
    frames are ``(C, H, W)``, one beat per pixel with all its channels)."""
    spec: object
    core: Callable
    golden: Callable = run_spec

    @property
    def in_channels(self):
        shape = input_shape(self.spec)
        return shape[0] if len(shape) == 3 else 1

    @property
    def out_channels(self):
        shape = output_shape(self.spec)
        return shape[0] if len(shape) == 3 else 1

    def outputs(self, spec, rows, kernel):
        """The golden outputs, ``(n, out_channels)`` in stream order, for a frame of ``spec``
        given as ``(pixels, in_channels)`` rows."""
        shape = input_shape(spec)
        frame = rows.T.reshape(shape) if len(shape) == 3 else rows[:, 0].reshape(shape)
        out = np.asarray(self.golden(spec, frame, kernel))
        return out.reshape(self.out_channels, -1).T if out.ndim == 3 else out.reshape(-1, 1)

    def beats(self, rows):
        """The stream's beats for ``(pixels, in_channels)`` rows."""
        return pack_beats(self.spec, np.asarray(rows).T[:, :, np.newaxis])

    @property
    def frame_size(self):
        """Pixels in a frame, or ``None`` for an unbounded stream."""
        shape = self.spec.frame_shape
        return None if None in shape else int(np.prod(shape))

    @property
    def out_width(self):
        """Outputs per output row (``last`` on the last of each); ``None`` when unbounded."""
        return None if self.frame_size is None else self.spec.out_shape[-1]


KINDS = {
    "conv2d 3x3 same": Kind(ConvSpec(
        width=6, height=5, kernel=[[1, 0, -1], [2, 0, -2], [1, 0, -1]], padding="same"), Conv2d),
    "conv2d 3x3 stride (1,2) padding (2,1) signed": Kind(ConvSpec(
        width=7, height=5, kernel=[[3, -1, 2], [0, 5, -4], [1, 1, -7]], padding=(2, 1),
        stride=(1, 2), in_signed=True), Conv2d),
    "conv2d runtime 5x3 bottom padding": Kind(ConvSpec(
        width=6, height=5, kernel_shape=(5, 3), padding=(4, 1), in_signed=True, coeff_bits=5,
        max_dsps=2), Conv2d),
    "conv2d 1x3 over-long rows": Kind(ConvSpec(
        width=6, height=4, kernel=[[1, 2, 3]], padding=(0, 2)), Conv2d),
    "conv2d 2x2 dilated stride 2 requantized": Kind(ConvSpec(
        width=7, height=6, kernel=[[9, -3], [5, 7]], dilation=2, stride=2, padding=1, shift=2,
        out_bits=5), Conv2d),
    "conv2d 1x1": Kind(ConvSpec(width=4, height=3, kernel=[[3]]), Conv2d),
    "conv2d 3x3 reflect-101 dilated": Kind(ConvSpec(
        width=6, height=5, kernel=[[1, 0, -1], [2, 0, -2], [1, 0, -1]], padding=(1, 2),
        dilation=(1, 2), border="reflect-101"), Conv2d),
    "conv2d runtime separable 3x5 border value": Kind(ConvSpec(
        width=7, height=5, kernel_shape=(3, 5), padding="same", separable=True, border_value=9,
        max_dsps=3), Conv2d),
    "layer 3->5 3x3 folded pe3 simd4 bias relu": Kind(ConvSpec(
        width=5, height=4, weights=np.arange(135).reshape(5, 3, 3, 3) % 23 - 11, padding="same",
        bias=[5, -3, 100, 0, 7], relu=True, shift=5, out_bits=8, pe=3, simd=4), Conv2d),
    "layer runtime 3->4 3x3 folded pe2 simd3": Kind(ConvSpec(
        width=5, height=4, kernel_shape=(3, 3), in_channels=3, out_channels=4, padding="same",
        coeff_bits=6, pe=2, simd=3), Conv2d),
    "conv1d same": Kind(Conv1dSpec(
        length=9, kernel=[1, -2, 3], padding="same", in_signed=True), Conv1d),
    "conv1d runtime stride 2 padding (1,2)": Kind(Conv1dSpec(
        length=8, kernel_size=3, stride=2, padding=(1, 2), coeff_bits=6), Conv1d),
    "conv1d replicate stride 2": Kind(Conv1dSpec(
        length=8, kernel=[2, -1, 3], stride=2, padding=(2, 1), border="replicate"), Conv1d),
    "conv1d constant border value": Kind(Conv1dSpec(
        length=7, kernel=[1, 3, -2], padding="same", in_signed=True, border_value=-9), Conv1d),
    "conv1d unbounded": Kind(Conv1dSpec(
        length=None, kernel=[3, -1, 4, 1], in_signed=True), Conv1d),
    "conv1d unbounded runtime stride 2 dilation 2": Kind(Conv1dSpec(
        length=None, kernel_size=3, stride=2, dilation=2, max_dsps=1), Conv1d),
}

#: Length of a "frame" of an unbounded kind, for building the stimulus only.
UNBOUNDED_PIECE = 13


def documented_frames(count, firsts, frame_size):
    """``(start, end)`` of each frame the documented rule makes of ``count`` pixels."""
    bounds, start = [], 0
    for index in range(1, count):
        if index in firsts or index - start == frame_size:
            bounds.append((start, index))
            start = index
    return [*bounds, (start, count)]


def expected_outputs(kind, pixels, firsts, kernel):
    """``(values, markers)`` the documented rule predicts for a stream of pixels (each a tuple
    of its channels); ``values`` holds a tuple of channels per output."""
    spec, size = kind.spec, kind.frame_size
    values, markers = [], []
    for start, end in documented_frames(len(pixels), set(firsts), size):
        piece = np.array(pixels[start:end], dtype=np.int64).reshape(-1, kind.in_channels)
        if size is None:
            if len(piece) < spec.span:
                continue                        # no complete window: no output
            out = kind.outputs(spec.replace(length=len(piece)), piece, kernel)
            # The stream's start after reset counts as a restart, `first` or not.
            markers += [(k == 0 and (start == 0 or start in firsts), False)
                        for k in range(len(out))]
        else:
            assert end - start <= size
            rows = np.zeros((size, kind.in_channels), dtype=np.int64)
            rows[:len(piece)] = piece
            out = kind.outputs(spec, rows, kernel)
            markers += [(k == 0, k % kind.out_width == kind.out_width - 1)
                        for k in range(len(out))]
        values += [tuple(row) for row in out.tolist()]
    return values, markers


def random_pixels(rng, kind, count):
    """``count`` pixels, each a tuple of ``kind.in_channels`` values."""
    lo, hi = kind.spec.pixel_range
    values = rng.integers(lo, hi, size=(count, kind.in_channels), endpoint=True)
    return [tuple(row) for row in values.tolist()]


# --- malformed streams -----------------------------------------------------------------------
# Each case returns (pixels, firsts, lasts) for a kind; the stream always ends with a whole frame
# that starts with a `first`, so every frame the rule makes is complete or cut by a `first`.

def frame_length(kind):
    return kind.frame_size or UNBOUNDED_PIECE


def row_lasts(kind, start, count):
    """The ``last`` markers a well-formed stream has on ``count`` pixels from ``start``."""
    width = kind.spec.frame_shape[-1] or UNBOUNDED_PIECE
    return [start + k for k in range(count) if k % width == width - 1]


def early_first(kind, rng):
    """Two frames cut short by a ``first`` (one after a single pixel, one late), then a whole
    frame."""
    size = frame_length(kind)
    cuts = [1, int(rng.integers(size // 2, size))]
    starts = [0, cuts[0], cuts[0] + cuts[1]]
    pixels = random_pixels(rng, kind, starts[-1] + size)
    lasts = [i for s, n in zip(starts, [*cuts, size]) for i in row_lasts(kind, s, n)]
    return pixels, starts, lasts


def first_on_consecutive_pixels(kind, rng):
    """Four frames in a row cut after a single pixel (each one's outputs all come out, under
    backpressure too), then a whole frame."""
    size = frame_length(kind)
    return random_pixels(rng, kind, 4 + size), list(range(5)), row_lasts(kind, 4, size)


def no_first_at_all(kind, rng):
    """Three whole frames and not a single ``first``."""
    size = frame_length(kind)
    return random_pixels(rng, kind, 3 * size), [], row_lasts(kind, 0, 3 * size)


def first_missing_on_one_frame(kind, rng):
    """Three whole frames; the second has no ``first``."""
    size = frame_length(kind)
    return (random_pixels(rng, kind, 3 * size), [0, 2 * size],
            row_lasts(kind, 0, 3 * size))


def too_long(kind, rng):
    """A frame with extra pixels before the next ``first``: a few, then more than a frame."""
    size = frame_length(kind)
    extra = [int(rng.integers(1, size)), size + int(rng.integers(1, size))]
    starts = [0, size + extra[0], 2 * size + sum(extra)]
    pixels = random_pixels(rng, kind, starts[-1] + size)
    lasts = [i for s in starts for i in row_lasts(kind, s, size)]
    return pixels, starts, lasts


def last_misplaced(kind, rng):
    """Three whole frames with ``last`` anywhere but at the ends of rows: one frame with it on
    every pixel, one with none, one at random."""
    size = frame_length(kind)
    right = set(row_lasts(kind, 0, 3 * size))
    lasts = [*range(size), *(size * 2 + k for k in range(size) if rng.random() < 0.4)]
    return (random_pixels(rng, kind, 3 * size), [0, size, 2 * size],
            [i for i in lasts if i not in right or i < size])


def everything_at_random(kind, rng):
    """Pieces of random length (up to two frames), each with or without a ``first``, and
    ``last`` at random, then a whole frame."""
    size = frame_length(kind)
    pixels, firsts, start = [], [0], 0
    for _ in range(4):
        length = int(rng.integers(1, 2 * size + 1))
        if rng.random() < 0.6:
            firsts.append(start)
        pixels += random_pixels(rng, kind, length)
        start += length
    firsts.append(start)
    pixels += random_pixels(rng, kind, size)
    lasts = [i for i in range(len(pixels)) if rng.random() < 0.2]
    return pixels, sorted(set(firsts)), lasts


CASES = [early_first, first_on_consecutive_pixels, no_first_at_all, first_missing_on_one_frame,
         too_long, last_misplaced, everything_at_random]


def random_kernel(rng, spec):
    lo, hi = -(1 << (spec.coeff_bits - 1)), (1 << (spec.coeff_bits - 1)) - 1
    if getattr(spec, "separable", False):   # the product of two vectors it loads
        kh, kw = spec.kernel_shape
        return np.outer(rng.integers(lo, hi, kh, endpoint=True),
                        rng.integers(lo, hi, kw, endpoint=True))
    return rng.integers(lo, hi, size=coefficient_shape(spec), endpoint=True)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
@pytest.mark.parametrize("name", KINDS)
def test_malformed_stream(name, case):
    kind = KINDS[name]
    spec = kind.spec
    rng = np.random.default_rng([sorted(KINDS).index(name), CASES.index(case)])
    pixels, firsts, lasts = case(kind, rng)
    kernel = random_kernel(rng, spec) if spec.runtime_coeffs else None
    expected, markers = expected_outputs(kind, pixels, firsts, kernel)
    assert expected, "the case must produce outputs"
    for stall, seed in ((0.0, 0), (0.5, CASES.index(case) + 1)):
        values, got_markers, _, _, errors = run_stream(
            kind.core(spec), kind.beats(pixels), len(expected), firsts=firsts, lasts=lasts,
            kernels=None if kernel is None else {0: kernel}, in_stall=stall, out_stall=stall,
            seed=seed)
        assert errors == []
        values = unpack_beats([int(v) for v in values], spec.out_bits, kind.out_channels)
        assert [tuple(row) for row in values.tolist()] == expected, f"stall {stall}"
        assert [(bool(f), bool(l)) for f, l in got_markers] == markers, f"stall {stall}"


def test_documented_frames():
    """The rule's model itself, on hand-worked streams."""
    assert documented_frames(10, set(), 4) == [(0, 4), (4, 8), (8, 10)]
    assert documented_frames(10, {0, 3}, 4) == [(0, 3), (3, 7), (7, 10)]
    assert documented_frames(12, {0, 6}, 4) == [(0, 4), (4, 6), (6, 10), (10, 12)]
    assert documented_frames(9, {4}, None) == [(0, 4), (4, 9)]
    kind = KINDS["conv1d same"]
    a, b = list(range(1, 10)), list(range(20, 29))
    values, markers = expected_outputs(kind, [(v,) for v in [*a[:4], *b]], [0, 4], None)
    assert [v for v, in values] == [*run_spec(kind.spec, np.array([*a[:4], 0, 0, 0, 0, 0])),
                                    *run_spec(kind.spec, np.array(b))]
    assert markers == [(k == 0, k == 8) for k in range(9)] * 2
