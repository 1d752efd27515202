"""Folded layers whose lanes take turns in one serial output stage
(``ConvSpec.serial_stage_shared``): chosen only where it keeps up, bit-exact against the
golden model under backpressure, frames back to back, on the cycle the spec says."""

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from amaranth.back import rtlil

from convhw import Conv2d, ConvSpec
from convhw.golden import run_spec
from convhw.harness import describe_mismatch, simulate


def _layer(seed, cout, cin, *, scale_bits, pe, simd, k=3, **changes):
    rng = np.random.default_rng(seed)
    args = dict(width=5, height=4, weights=rng.integers(-128, 128, (cout, cin, k, k)),
                bias=rng.integers(-3000, 3000, cout), padding=k // 2, pe=pe, simd=simd,
                scale=[int(v) | 1 for v in rng.integers(1 << (scale_bits - 1),
                                                        1 << scale_bits, cout)],
                shift=[int(v) for v in rng.integers(scale_bits + 8, scale_bits + 11, cout)],
                rounding="half-even", out_bits=8, clamp=(-100, 127))
    args.update(changes)
    return ConvSpec(**args)


def _check(spec, stall, seed, frames=3):
    rng = np.random.default_rng(seed)
    lo, hi = spec.pixel_range
    images = [rng.integers(lo, hi + 1, size=spec.input_shape) for _ in range(frames)]
    result = simulate(Conv2d(spec), images, in_stall=stall, out_stall=stall, seed=seed)
    assert not result.errors, result.errors[:3]
    assert len(result.frames) == frames
    for image, got in zip(images, result.frames):
        mismatch = describe_mismatch(got, run_spec(spec, image))
        assert mismatch is None, mismatch
    return result


def _digits(spec, radix):
    bits = max(v.bit_length() for v in spec.serial_scales[0])
    return -(-(bits + (radix > 1)) // radix)


def test_shared_stage_chosen_with_the_smallest_radix_that_keeps_up():
    # 27 chunks, pe 2 .. 5: the smallest radix whose digits + 1, pe times, fit in 27 cycles.
    for pe in range(2, 6):
        spec = _layer(pe, 7, 3, scale_bits=20, pe=pe, simd=1)
        radix, digits = spec.serial_output_stage
        assert spec.serial_stage_shared
        assert digits == _digits(spec, radix)
        assert pe * (digits + 1) <= spec.simd_folds
        assert radix == 1 or pe * (_digits(spec, radix - 1) + 1) > spec.simd_folds
        last_lanes = 7 - (spec.pe_folds - 1) * pe
        assert spec.back_stages == (1 + (last_lanes - 1) * (digits + 1)
                                    + spec.serial_stage_cycles)
        assert spec.serial_stage_cycles == (spec.output_stage.stages + 2
                                            + spec.serial_tree_levels + digits)


def test_per_lane_stages_where_one_stage_cannot_keep_up(monkeypatch):
    # 9 chunks, pe 2, scales aligned to 26 bits: a shared stage would need at most 3 digits
    # (no radix up to 8); a lane's own stage takes radix 4 (7 digits: 27 bits Booth recoded).
    spec = _layer(1, 4, 1, scale_bits=24, pe=2, simd=1)
    assert spec.simd_folds == 9
    assert spec.serial_output_stage == (4, 7) and not spec.serial_stage_shared
    assert spec.back_stages == spec.serial_stage_cycles
    # One lane: nothing to share. The accumulating (dense) form keeps its own stages.
    assert not _layer(1, 4, 3, scale_bits=20, pe=1, simd=1).serial_stage_shared
    # A shared stage of more Booth rows than lanes costs more than the lanes' own: pe 2 with
    # 14 chunks and 28-bit scales would need radix 5 (3 rows).
    wide = _layer(2, 4, 3, scale_bits=28, pe=2, simd=2, shift=36)
    assert wide.simd_folds == 14
    assert 2 * (_digits(wide, 4) + 1) > 14 and 2 * (_digits(wide, 5) + 1) <= 14
    assert not wide.serial_stage_shared and wide.serial_output_stage == (3, 10)
    # Per-lane stages stay selectable.
    monkeypatch.setattr(ConvSpec, "SHARED_SERIAL_STAGE", False)
    spec = _layer(5, 7, 3, scale_bits=20, pe=5, simd=1)
    assert not spec.serial_stage_shared
    assert spec.serial_output_stage == (1, _digits(spec, 1))
    assert spec.back_stages == spec.serial_stage_cycles
    _check(spec, 0.3, seed=2, frames=2)


def test_digits_conv2_with_lanes_shares_one_stage():
    # The digits network's conv2 (36 chunks per output): folded with lanes (pe 3, as many
    # cycles as the balance's pe 1, simd 3), its lanes share one stage, bit-exact.
    from convhw.folding import balance_network
    from convhw.onnx import read_model
    net = read_model("sim/models/digits.onnx")
    chain = net.chain(balance_network(net, max_multipliers=8).foldings)
    chosen = chain.specs[chain.names.index("conv2")]
    assert chosen.pe > 1 or not chosen.serial_stage_shared
    conv2 = chosen.with_folding(3, 1)
    assert conv2.simd_folds == 36
    radix, digits = conv2.serial_output_stage
    assert conv2.serial_stage_shared and 3 * (digits + 1) <= 36
    assert radix == 1 or 3 * (_digits(conv2, radix - 1) + 1) > 36
    verilog = rtlil.convert(Conv2d(conv2))
    assert "serial_a_shared" in verilog and "serial_a_lane" not in verilog
    _check(conv2, 0.3, seed=4, frames=2)


@pytest.mark.parametrize("pe, cout, stall", [(2, 7, 0.3), (3, 7, 0.5), (4, 7, 0.4), (5, 7, 0.3),
                                             (5, 12, 0.5), (3, 6, 0.4)])
def test_shared_stage_exact_under_stalls(pe, cout, stall):
    spec = _layer(pe + cout, cout, 3, scale_bits=20, pe=pe, simd=1, in_signed=True)
    assert spec.serial_stage_shared
    result = _check(spec, stall, seed=pe)
    values = np.concatenate([np.ravel(f) for f in result.frames])
    assert len(set(values)) > 20


@pytest.mark.parametrize("pe, cout, simd", [(2, 5, 2), (3, 7, 1), (5, 7, 1)])
def test_shared_stage_on_time(pe, cout, simd):
    # Without stalls, one frame and two back to back take exactly the cycles the spec says.
    spec = _layer(pe, cout, 3, scale_bits=16, pe=pe, simd=simd, relu=True, clamp=None)
    assert spec.serial_stage_shared
    images = [np.random.default_rng(pe).integers(0, 256, spec.input_shape) for _ in range(2)]
    one = simulate(Conv2d(spec), images[:1])
    assert one.cycles == spec.cycles_per_frame
    two = simulate(Conv2d(spec), images)
    assert two.cycles == spec.cycles_per_frame + spec.frame_interval
    for image, got in zip(images, two.frames):
        assert describe_mismatch(got, run_spec(spec, image)) is None


def test_shared_stage_at_the_accumulators_extremes():
    # Weights of one sign per channel: constant images reach every lane's extremes, the
    # lanes' totals differ (and their channels' scales), so a lane taken out of turn shows.
    weights = np.empty((5, 7, 3, 3), dtype=int)
    for c, v in enumerate([-128, 127, -128, 127, 1]):
        weights[c] = v
    spec = _layer(3, 5, 7, scale_bits=22, pe=2, simd=1, weights=weights,
                  bias=[0, 5, -5, 0, 9], shift=[33, 32, 31, 34, 20], clamp=None,
                  out_bits=16, in_signed=True, padding=0)
    assert spec.serial_stage_shared
    lo, hi = spec.pixel_range
    images = [np.full(spec.input_shape, v) for v in (lo, hi, lo, 0, hi)]
    result = simulate(Conv2d(spec), images, in_stall=0.3, out_stall=0.4, seed=1)
    assert not result.errors, result.errors[:3]
    for image, got in zip(images, result.frames):
        assert describe_mismatch(got, run_spec(spec, image)) is None


@st.composite
def shared_layers(draw):
    cout, cin = draw(st.integers(2, 7)), draw(st.integers(1, 3))
    pe = draw(st.integers(2, min(cout, 5)))
    changes = dict(in_signed=draw(st.booleans()), relu=draw(st.booleans()),
                   rounding=draw(st.sampled_from(["half-up", "half-even"])))
    if draw(st.booleans()):
        changes["clamp"] = None
    return _layer(draw(st.integers(0, 2**16)), cout, cin, scale_bits=draw(st.integers(2, 20)),
                  pe=pe, simd=draw(st.integers(1, 2)), **changes)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(shared_layers())
def test_random_shared_layers(spec):
    assume(spec.serial_stage_shared)
    _check(spec, stall=0.4, seed=5, frames=2)
