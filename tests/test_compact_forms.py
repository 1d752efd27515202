"""The compact forms of a core (issue 11, fitting the digits network on the UP5K).

- a folded layer with a constant border selects each chunk's operands from the held window
  (``ConvSpec.folded_operands == "window"``), no rotator;
- a line buffer of at most ``REGISTER_LINE_BUFFER_COLUMNS`` columns is a shift register
  (``ConvSpec.line_buffer_registers``), and for such a folded layer whose stream rows are its
  map's rows it keeps every kernel row and serves as the window (``window_in_line_buffer``);
- a max pool compares a column's rows as it enters the window, then the window's columns;
- a folded layer's output queue holds ``ceil((latency + 1) / fold)`` results.

Each case: four frames back to back, bit-exact with the golden model under random stalls on
both sides, and without stalls exactly ``cycles_per_frame`` for one frame and
``frame_interval`` per frame after it.
"""

import numpy as np
import pytest

from convhw import Conv2d, ConvSpec
from convhw.golden import run_spec
from convhw.harness import describe_mismatch, simulate


def _weights(seed, shape):
    return np.random.default_rng(seed).integers(-40, 41, size=shape)


CASES = {
    # 3x3 "same" on a 4-wide map, the digits' conv2 shape: held window, register line buffer.
    "folded-4wide-pad1-simd5": dict(width=4, height=4, weights=_weights(1, (5, 3, 3, 3)),
                                    padding=1, pe=2, simd=5, relu=True, shift=6, out_bits=8),
    # A dense layer in the windowed form (the kernel covers the map, one output, pe = simd =
    # 1; the accumulating form is tests/test_dense_stream.py's).
    "folded-dense-2x2": dict(width=2, height=2, weights=_weights(2, (4, 3, 2, 2)), pe=1, simd=1,
                             shift=5, out_bits=9, accumulate_positions=False),
    # Unequal padding, stride 2, a memory line buffer (6 columns), pe not dividing Cout.
    "folded-6wide-stride2": dict(width=6, height=5, weights=_weights(3, (3, 2, 3, 3)),
                                 padding=((1, 0), (0, 2)), stride=2, pe=2, simd=4, shift=4,
                                 out_bits=8),
    # Grouped, a register line buffer of 3 columns, 1 pixel rows of padding below.
    "folded-grouped-3wide": dict(width=3, height=4, weights=_weights(4, (4, 1, 3, 3)), groups=2,
                                 in_channels=2, padding=((0, 2), (1, 1)), pe=1, simd=2,
                                 shift=3, out_bits=8),
    # A register line buffer, but output rows longer than the map: a window of registers.
    "folded-3wide-long-rows": dict(width=3, height=3, weights=_weights(5, (2, 2, 3, 3)),
                                   padding=((1, 1), (1, 2)), pe=1, simd=3, shift=4, out_bits=8),
    # Held operands over 14 chunks (two registers per head in the selector's first level), a
    # lane past the inputs, a border value that is not 0.
    "folded-14-chunks-border": dict(width=4, height=3, weights=_weights(6, (2, 3, 3, 3)),
                                    padding=1, border_value=200, pe=1, simd=2, shift=5,
                                    out_bits=8),
    # One chunk (simd = the inputs), a border value that is not 0.
    "folded-one-chunk-border": dict(width=4, height=4, weights=_weights(7, (3, 1, 3, 3)),
                                    padding=1, border_value=9, pe=1, simd=9, shift=3,
                                    out_bits=8),
    # (The window form: tiling windows take the running form, tests/test_pool_compact.py.)
    "pool-2x2-stride2-4wide": dict(width=4, height=4, kernel_shape=2, stride=2, in_channels=3,
                                   operation="max-pool", pool_form="window"),
    "pool-3x3-stride1-pad1-3wide": dict(width=3, height=5, kernel_shape=3, padding=1,
                                        in_channels=2, in_signed=True, operation="max-pool"),
    "pool-1x3-stride1x2-pad": dict(width=7, height=3, kernel_shape=(1, 3), stride=(1, 2),
                                   padding=((0, 0), (1, 1)), in_channels=2,
                                   operation="max-pool"),
}


def _frames(spec, count, seed):
    rng = np.random.default_rng(seed)
    lo, hi = spec.pixel_range
    return [rng.integers(lo, hi + 1, size=spec.input_shape) for _ in range(count)]


@pytest.mark.parametrize("stall", [0.0, 0.4])
@pytest.mark.parametrize("name", CASES)
def test_compact_form_matches_golden(name, stall):
    spec = ConvSpec(**CASES[name])
    frames = _frames(spec, 4, seed=7)
    result = simulate(Conv2d(spec), frames, in_stall=stall, out_stall=stall, seed=11)
    assert not result.errors, result.errors[:3]
    for got, frame in zip(result.frames, frames):
        assert describe_mismatch(got, run_spec(spec, frame)) is None


@pytest.mark.parametrize("name", CASES)
def test_compact_form_cycles_as_predicted(name):
    spec = ConvSpec(**CASES[name])
    one = simulate(Conv2d(spec), _frames(spec, 1, seed=1))
    assert one.cycles == spec.cycles_per_frame
    four = simulate(Conv2d(spec), _frames(spec, 4, seed=2))
    assert four.cycles == spec.cycles_per_frame + 3 * spec.frame_interval


def test_forms_chosen_by_the_spec():
    conv2 = ConvSpec(**CASES["folded-4wide-pad1-simd5"])
    assert conv2.folded_operands == "window" and conv2.line_buffer_registers
    assert conv2.output_queue_depth == -(-(conv2.latency + 1) // conv2.fold)
    assert conv2.window_in_line_buffer
    assert ConvSpec(**CASES["folded-dense-2x2"]).window_in_line_buffer
    long_rows = ConvSpec(**CASES["folded-3wide-long-rows"])
    assert long_rows.line_buffer_registers and not long_rows.window_in_line_buffer
    wide = ConvSpec(**CASES["folded-6wide-stride2"])
    assert wide.folded_operands == "window" and not wide.line_buffer_registers
    assert not wide.window_in_line_buffer
    assert ConvSpec(width=8, height=8, kernel_shape=3, padding=1, border="replicate",
                    weights=_weights(5, (2, 2, 3, 3)), pe=1, simd=3).folded_operands == "rotator"
    assert ConvSpec(width=8, height=8, weights=_weights(6, (2, 2, 3, 3))).folded_operands is None
    pool = ConvSpec(**CASES["pool-2x2-stride2-4wide"])
    assert pool.tree_depth == 1 and pool.pipeline_depth == 2 + 1 + pool.back_stages
