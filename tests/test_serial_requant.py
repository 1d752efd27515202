"""Folded layers whose channels scale: the serial output stage (one per lane, no DSP block),
bit-exact against the golden model, on time, and chosen only where it keeps up. Here every
lane has its own stage (the stage shared by the lanes: ``test_shared_serial_stage.py``)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from amaranth import Module, Signal, signed
from amaranth.sim import Simulator

from convhw import Conv2d, ConvSpec
from convhw.bits import signed_bits
from convhw.gateware.adder_tree import Term
from convhw.gateware.requantize import serial_requantize
from convhw.golden import run_spec
from convhw.harness import describe_mismatch, simulate


@pytest.fixture(autouse=True)
def per_lane_stages(monkeypatch):
    monkeypatch.setattr(ConvSpec, "SHARED_SERIAL_STAGE", False)


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


def _layer_with_radix(radix, *, scale_bits, seed=0, **changes):
    """A layer (3x3 kernel) whose serial stage takes ``radix`` scale bits per cycle."""
    cins = [changes["weights"].shape[1]] if "weights" in changes else range(1, 9)
    for cin in cins:
        for simd in range(1, 9 * cin + 1):
            spec = _layer(seed, 4, cin, 3, scale_bits=scale_bits, pe=2, simd=simd, **changes)
            if spec.serial_output_stage is not None and spec.serial_output_stage[0] == radix:
                return spec
    pytest.skip(f"no layer takes {radix} bits per cycle")


@pytest.mark.parametrize("radix", range(1, 9))
def test_serial_stage_choice_and_exact_results(radix):
    # 30-bit scales (31 bits Booth recoded): every radix is the fewest bits per cycle that
    # finish in simd_folds - 1 cycles for some folding.
    spec = _layer_with_radix(radix, scale_bits=30, seed=radix, shift=41)
    serial = spec.serial_output_stage
    digits = {1: 30, 2: 16, 3: 11, 4: 8, 5: 7, 6: 6, 7: 5, 8: 4}   # Booth from 2: 31 bits
    assert serial == (radix, digits[radix])
    assert serial[1] + 1 <= spec.simd_folds
    assert radix == 1 or digits[radix - 1] + 1 > spec.simd_folds
    assert spec.serial_tree_levels == {1: 0, 2: 0, 3: 1, 4: 1, 5: 2, 6: 2, 7: 2, 8: 2}[radix]
    assert not spec.serial_stage_shared
    assert spec.back_stages == spec.serial_stage_cycles == (
        spec.output_stage.stages + 2 + spec.serial_tree_levels + serial[1])
    scales, shift = spec.serial_scales
    assert shift == max(spec.output_stage.shift)
    for c in range(spec.out_channels):
        assert scales[c] == spec.output_stage.scale[c] << (shift - spec.output_stage.shift[c])
    result = _check(spec)
    one = simulate(Conv2d(spec), [np.zeros(spec.input_shape, dtype=int)])
    assert one.cycles == spec.cycles_per_frame
    assert result.cycles == spec.cycles_per_frame + spec.frame_interval


@pytest.mark.parametrize("radix", [1, 2, 3, 4, 5, 6, 8])   # 29 bits: 7 takes 5 digits, as 6
def test_serial_stage_28_bit_aligned_scales_under_stalls(radix):
    # 22-bit scales, shifts 6 apart: aligned to 28 bits; signed inputs (negative sums), the
    # clamp reached at both ends, frames back to back with stalls on both sides.
    spec = _layer_with_radix(radix, scale_bits=22, seed=radix + 10, in_signed=True,
                             shift=[33, 28, 31, 27], bias=[-2000, 2500, 0, 900])
    assert max(v.bit_length() for v in spec.serial_scales[0]) == 28
    result = _check(spec, stall=0.3, seed=radix, frames=3)
    values = np.concatenate([np.ravel(f) for f in result.frames])
    assert values.min() == -100 and values.max() == 127 and len(set(values)) > 20


def _drive_lane(spec, lane, gaps, seed):
    """Start the lane's serial stage once per gap (cycles), with random and extreme
    accumulators and channels; every result must be the golden one, ``serial_stage_cycles``
    later."""
    rng = np.random.default_rng(seed)
    stage = spec.output_stage
    channels = list(range(lane, spec.out_channels, spec.pe))
    lo = min(spec.acc_ranges[c][0] for c in channels)
    hi = max(spec.acc_ranges[c][1] for c in channels)
    out_lo = min(stage.out_ranges[c][0] for c in channels)
    out_hi = max(stage.out_ranges[c][1] for c in channels)
    acc = Signal(signed(signed_bits(lo, hi)))
    select, start = Signal(range(len(channels) + 1)), Signal()
    m = Module()
    result = serial_requantize(m, Term(acc, lo, hi), spec, channels, select=select, start=start)
    inputs = []      # (accumulator, channel index): each channel's extremes, then random
    for n in range(len(gaps)):
        index = n % len(channels) if n < 6 * len(channels) else int(rng.integers(len(channels)))
        c_lo, c_hi = spec.acc_ranges[channels[index]]
        special = [c_lo, c_hi, 0, -1, c_lo + 1, c_hi - 1]
        pick = n // len(channels)
        inputs.append((special[pick] if n < 6 * len(channels) else
                       int(rng.integers(c_lo, c_hi + 1)), index))
    expected, got = {}, {}

    async def bench(ctx):
        cycle = 0
        for (value, index), gap in zip(inputs, gaps):
            c = channels[index]
            expected[cycle + spec.serial_stage_cycles] = min(max(
                stage.round(c, value + stage.bias[c]), out_lo), out_hi)
            for step in range(gap):
                ctx.set(acc, value if step == 0 else int(rng.integers(lo, hi + 1)))
                ctx.set(select, index if step == 0 else int(rng.integers(len(channels))))
                ctx.set(start, step == 0)
                got[cycle] = ctx.get(result)
                await ctx.tick()
                cycle += 1
        for _ in range(spec.serial_stage_cycles + 1):
            got[cycle] = ctx.get(result)
            await ctx.tick()
            cycle += 1

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for cycle, value in expected.items():
        assert got[cycle] == value, (cycle, got[cycle], value)
    return expected


@pytest.mark.parametrize("radix", range(1, 9))
@pytest.mark.parametrize("shifts, rounding", [((3, 0, 1, 2), "half-even"), ((3, 0, 1, 2), "half-up"),
                                              ((0, 0, 0, 0), "half-up"), ((9, 7, 8, 6), "half-even")])
def test_serial_stage_every_product_bit(radix, shifts, rounding):
    # Small shifts and an output as wide as the rounded value: every bit of the product
    # shows (the scales are aligned to 30 bits; 31 Booth recoded). Starts come
    # back to back (digits + 1 cycles apart) and further apart.
    spec = _layer_with_radix(radix, scale_bits=30 - max(shifts) + min(shifts), seed=radix,
                             shift=list(shifts),
                             rounding=rounding, clamp=None, out_bits=None, in_signed=True)
    digits = spec.serial_output_stage[1]
    gaps = [digits + 1] * 30 + [digits + 2, digits + 5, digits + 1, digits + 1]
    for lane in range(spec.pe):
        expected = _drive_lane(spec, lane, gaps, seed=radix + lane)
        assert len(set(expected.values())) > 10


@pytest.mark.parametrize("radix", [1, 4, 8])
def test_serial_stage_saturates_at_both_ends(radix):
    spec = _layer_with_radix(radix, scale_bits=27, seed=radix, shift=[36, 34, 35, 33],
                             clamp=(-100, 90), in_signed=True)
    assert spec.output_stage.saturates
    values = set()
    for lane in range(spec.pe):
        gaps = [spec.serial_output_stage[1] + 1] * 60
        values |= set(_drive_lane(spec, lane, gaps, seed=radix + lane).values())
    assert -100 in values and 90 in values and len(values) > 5


def _extreme_layer(radix, rounding):
    """Weights of one sign per channel, so that constant images reach the accumulators'
    extremes."""
    weights = np.empty((4, 7, 3, 3), dtype=int)   # 63 inputs: every radix
    weights[0], weights[1], weights[2], weights[3] = -128, 127, -128, 127
    # The largest scale, then scales whose low digits reach -2**(r*k-1) for every radix r
    # (the high part of the product at its extremes).
    scales = [(1 << 30) - 1, (1 << 29) + (1 << 23) + 1, (1 << 29) + (1 << 24) + 1,
              (1 << 29) + (1 << 27) + 1]
    return _layer_with_radix(radix, scale_bits=30, seed=radix, weights=weights, bias=[0, 0, 0, 0],
                             scale=scales, shift=[42, 42, 42, 42], clamp=None, out_bits=12,
                             in_signed=True, rounding=rounding, padding=0)


@pytest.mark.parametrize("radix", range(1, 9))
@pytest.mark.parametrize("rounding", ["half-up", "half-even"])
def test_serial_stage_at_the_accumulators_extremes(radix, rounding):
    spec = _extreme_layer(radix, rounding)
    lo, hi = spec.pixel_range
    images = [np.full(spec.input_shape, v) for v in (lo, hi, lo, 0, hi)]
    result = simulate(Conv2d(spec), images, in_stall=0.2, out_stall=0.2, seed=radix)
    assert not result.errors, result.errors[:3]
    for image, got in zip(images, result.frames):
        expected = run_spec(spec, image)
        assert describe_mismatch(got, expected) is None, describe_mismatch(got, expected)
    # The products really are the extremes: the largest scale times each end of the range.
    acc_lo, acc_hi = spec.acc_ranges[0]
    assert spec.serial_output_stage[0] == radix
    assert run_spec(spec, images[0])[0, 0, 0] == round((acc_hi * ((1 << 30) - 1)) / 2**42)
    assert run_spec(spec, images[1])[0, 0, 0] == round((acc_lo * ((1 << 30) - 1)) / 2**42)


def test_serial_stage_under_stalls():
    spec = _layer(3, 5, 2, 3, scale_bits=20, pe=2, simd=2, relu=True, rounding="half-up")
    assert spec.serial_output_stage is not None
    _check(spec, stall=0.4, seed=7, frames=3)


def test_no_serial_stage_where_it_does_not_fit_or_is_not_needed():
    # simd_folds 2: no radix of at most 8 bits finishes 24-bit scales in time.
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
