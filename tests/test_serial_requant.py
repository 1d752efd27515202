"""Folded layers whose channels scale: the serial output stage (one per lane, no DSP block),
bit-exact against the golden model, on time, and chosen only where it keeps up."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from convhw import Conv2d, ConvSpec
from convhw.golden import run_spec
from convhw.harness import describe_mismatch, simulate


def _layer(seed, cout, cin, k, *, scale_bits, pe, simd, **changes):
    rng = np.random.default_rng(seed)
    args = dict(width=5, height=4, weights=rng.integers(-128, 128, (cout, cin, k, k)),
                bias=rng.integers(-3000, 3000, cout), padding=k // 2, pe=pe, simd=simd,
                scale=[int(v) | 1 for v in rng.integers(1 << (scale_bits - 1),
                                                        1 << scale_bits, cout)],
                shift=[int(v) for v in rng.integers(scale_bits + 8, scale_bits + 11, cout)],
                rounding="half-even", out_bits=8, clamp=(-100, 127))
    args.update(changes)
    return ConvSpec(**args)


def _check(spec, stall=0.0, seed=0, frames=2):
    rng = np.random.default_rng(seed)
    lo, hi = spec.pixel_range
    images = [rng.integers(lo, hi + 1, size=spec.input_shape) for _ in range(frames)]
    result = simulate(Conv2d(spec), images, in_stall=stall, out_stall=stall, seed=seed)
    assert not result.errors, result.errors[:3]
    for image, got in zip(images, result.frames):
        mismatch = describe_mismatch(got, run_spec(spec, image))
        assert mismatch is None, mismatch
    return result


@pytest.mark.parametrize("pe, simd, radix", [(1, 1, 1), (3, 2, 2), (2, 3, 3), (4, 4, 4)])
def test_serial_stage_choice_and_exact_results(pe, simd, radix):
    # 24-bit scales: the fewest bits per cycle that finish in simd_folds - 1 cycles.
    spec = _layer(pe * 10 + simd, 4, 3, 3, scale_bits=24, pe=pe, simd=simd, shift=33)
    serial = spec.serial_output_stage
    assert serial == (radix, -(-24 // radix))
    assert serial[1] + 1 <= spec.simd_folds
    assert spec.back_stages == spec.output_stage.stages + 3 + serial[1]
    scales, shift = spec.serial_scales
    assert shift == max(spec.output_stage.shift)
    for c in range(spec.out_channels):
        assert scales[c] == spec.output_stage.scale[c] << (shift - spec.output_stage.shift[c])
    result = _check(spec)
    unequal = _layer(pe * 10 + simd, 4, 3, 3, scale_bits=22, pe=pe, simd=simd)
    assert unequal.serial_output_stage is not None and len(set(unequal.output_stage.shift)) > 1
    _check(unequal, seed=1)
    one = simulate(Conv2d(spec), [np.zeros(spec.input_shape, dtype=int)])
    assert one.cycles == spec.cycles_per_frame
    assert result.cycles == spec.cycles_per_frame + spec.frame_interval


def test_serial_stage_under_stalls():
    spec = _layer(3, 5, 2, 3, scale_bits=20, pe=2, simd=2, relu=True, rounding="half-up")
    assert spec.serial_output_stage is not None
    _check(spec, stall=0.4, seed=7, frames=3)


def test_no_serial_stage_where_it_does_not_fit_or_is_not_needed():
    # simd_folds 2: no radix of at most 4 bits finishes 24-bit scales in time.
    assert _layer(1, 4, 3, 3, scale_bits=24, pe=2, simd=14).serial_output_stage is None
    # Unfolded, or shift only: the parallel output stages.
    assert _layer(1, 4, 3, 3, scale_bits=24, pe=4, simd=27).serial_output_stage is None
    shift_only = _layer(1, 4, 3, 3, scale_bits=24, pe=1, simd=1, scale=None, shift=4)
    assert shift_only.serial_output_stage is None
    # A max pool never has one.
    pool = ConvSpec(width=4, height=4, operation="max-pool", kernel_shape=(2, 2),
                    in_channels=2, stride=2)
    assert pool.serial_output_stage is None


@st.composite
def serial_layers(draw):
    cout, cin, k = draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.sampled_from([1, 3]))
    inputs = cin * k * k
    pe = draw(st.integers(1, cout))
    simd = draw(st.integers(1, inputs))
    changes = dict(in_signed=draw(st.booleans()), relu=draw(st.booleans()),
                   rounding=draw(st.sampled_from(["half-up", "half-even"])))
    if draw(st.booleans()):
        changes["clamp"] = None
    return _layer(draw(st.integers(0, 2**16)), cout, cin, k, scale_bits=draw(st.integers(2, 24)),
                  pe=pe, simd=simd, **changes)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(serial_layers())
def test_random_serial_layers(spec):
    _check(spec, stall=0.2, seed=3)
