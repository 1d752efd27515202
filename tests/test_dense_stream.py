"""Dense layers as a streaming multiply-accumulate (``ConvSpec.accumulates_positions``).

A folded layer whose kernel covers its frame (no padding, no dilation, one output) multiplies
each pixel as it arrives, ``simd`` channels by ``pe`` output channels per cycle, into
accumulators kept across the frame: no line buffer, window or rotator. Each case: bit-exact
with the golden model under random stalls on both sides, frames back to back; without stalls
exactly ``cycles_per_frame`` for one frame and ``frame_interval`` per frame after it;
malformed frames as ``tests/test_malformed.py`` documents them; and the digits network with
its dense layer in this form equal to the integer reference, in both simulators.
"""

import os

import numpy as np
import pytest

import test_malformed as malformed
from convhw import Conv2d, ConvSpec, fastsim
from convhw.folding import balance_network
from convhw.gateware import Chain
from convhw.golden import run_spec
from convhw.harness import describe_mismatch, simulate
from convhw.onnx import input_codes, output_values, read_model, run_network
from convhw.stimulus import unpack_beats
from streaming import run_stream

needs_engine = pytest.mark.skipif(not fastsim.available(), reason="needs Verilator")
MODEL = os.path.join(os.path.dirname(__file__), "..", "sim", "models", "digits.onnx")


def _weights(seed, shape):
    return np.random.default_rng(seed).integers(-90, 91, size=shape)


CASES = {
    # The digits network's dense layer: 16x2x2 -> 10, pe = simd = 1, a serial output stage.
    "digits-like-serial": dict(width=2, height=2, weights=_weights(1, (10, 16, 2, 2)), pe=1,
                               simd=1, scale=[3, 5, 7, 9, 11, 13, 15, 17, 19, 23],
                               shift=[9, 9, 9, 9, 9, 9, 9, 9, 9, 10], out_bits=9),
    # pe and simd dividing neither Cout nor C; signed inputs, bias, ReLU, per-channel output
    # stages shared by the lanes (same scale and shift).
    "pe3-simd2-signed": dict(width=3, height=2, weights=_weights(2, (7, 5, 2, 3)), pe=3,
                             simd=2, in_signed=True, bias=[5, -3, 100, 0, 7, -60, 1],
                             relu=True, shift=6, out_bits=8),
    # Lanes whose channels scale differently (not serial: an output stage per channel).
    "pe2-simd3-per-channel": dict(width=2, height=3, weights=_weights(3, (5, 3, 3, 2)), pe=2,
                                  simd=3, scale=[1, 2, 3, 1, 2], shift=[4, 5, 6, 4, 5],
                                  out_bits=10, in_bits=6),
    # A 1x1 map: one position a frame (every position emits).
    "1x1-map": dict(width=1, height=1, weights=_weights(4, (6, 4, 1, 1)), pe=2, simd=1,
                    shift=3, out_bits=9, in_signed=True),
    # One channel group and one chunk: a position per cycle, no fold gap.
    "one-cycle-positions": dict(width=3, height=3, weights=_weights(5, (3, 2, 3, 3)), pe=3,
                                simd=2, shift=5, out_bits=9),
    # pe = Cout, chunks only; stride given (irrelevant: one output).
    "pe-all-stride2": dict(width=2, height=2, weights=_weights(6, (4, 6, 2, 2)), pe=4, simd=4,
                           stride=2, shift=7, out_bits=8, rounding="half-even", scale=3),
}


def _frames(spec, count, seed):
    rng = np.random.default_rng(seed)
    lo, hi = spec.pixel_range
    return [rng.integers(lo, hi + 1, size=spec.input_shape) for _ in range(count)]


def test_cases_are_in_the_accumulating_form():
    for name, args in CASES.items():
        spec = ConvSpec(**args)
        assert spec.accumulates_positions and spec.form == "accumulating", name
        assert spec.line_buffer_bits == 0 and not spec.window_in_line_buffer
    digits = ConvSpec(**CASES["digits-like-serial"])
    assert digits.serial_output_stage is not None
    assert not ConvSpec(**CASES["pe2-simd3-per-channel"]).serial_output_stage


@pytest.mark.parametrize("stall", [0.0, 0.3, 0.5])
@pytest.mark.parametrize("name", CASES)
def test_matches_golden_back_to_back(name, stall):
    spec = ConvSpec(**CASES[name])
    frames = _frames(spec, 4, seed=len(name))
    result = simulate(Conv2d(spec), frames, in_stall=stall, out_stall=stall,
                      seed=int(stall * 10) + 1)
    assert not result.errors, result.errors[:3]
    assert len(result.frames) == 4
    for got, frame in zip(result.frames, frames):
        assert describe_mismatch(got, run_spec(spec, frame)) is None


@pytest.mark.parametrize("name", CASES)
def test_cycles_as_predicted(name):
    spec = ConvSpec(**CASES[name])
    assert spec.frame_interval == spec.positions_per_frame * spec.fold_per_position
    one = simulate(Conv2d(spec), _frames(spec, 1, seed=1))
    assert one.cycles == spec.cycles_per_frame
    four = simulate(Conv2d(spec), _frames(spec, 4, seed=2))
    assert four.cycles == spec.cycles_per_frame + 3 * spec.frame_interval


def test_old_form_still_selectable():
    args = CASES["pe3-simd2-signed"]
    new, old = ConvSpec(**args), ConvSpec(**args, accumulate_positions=False)
    assert new != old and not old.accumulates_positions and old.form == "2-d"
    assert old.line_buffer_bits > 0 and new.line_buffer_bits == 0
    frames = _frames(new, 2, seed=5)
    for spec in (new, old):
        result = simulate(Conv2d(spec), frames, in_stall=0.3, out_stall=0.3, seed=2)
        assert not result.errors
        for got, frame in zip(result.frames, frames):
            assert describe_mismatch(got, run_spec(spec, frame)) is None
    assert ConvSpec(**args, accumulate_positions=True) == new


def test_when_the_form_applies():
    weights = _weights(7, (4, 3, 2, 2))
    dense = dict(width=2, height=2, weights=weights)
    assert ConvSpec(**dense, pe=1, simd=3).accumulates_positions
    assert not ConvSpec(**dense).accumulates_positions                 # unfolded
    assert not ConvSpec(**dense, pe=1, simd=4).accumulates_positions   # simd > C
    assert not ConvSpec(width=3, height=2, weights=weights, pe=1,
                        simd=1).accumulates_positions                  # kernel != frame
    assert not ConvSpec(width=3, height=3, weights=weights, padding=((0, 1), (1, 0)), pe=1,
                        simd=1).accumulates_positions                  # padding
    with pytest.raises(ValueError, match=r"^'accumulate_positions' True: .*kernel 2x2 must "
                                         r"cover the 3x2 frame"):
        ConvSpec(width=2, height=3, weights=weights, pe=1, simd=1, accumulate_positions=True)
    with pytest.raises(ValueError, match=r"^'accumulate_positions' True: runtime weights .*"
                                         r"'weights' must be given"):
        ConvSpec(width=2, height=2, kernel_shape=(2, 2), in_channels=3, out_channels=4, pe=1,
                 simd=1, accumulate_positions=True)
    # Runtime weights take the windowed form automatically.
    assert not ConvSpec(width=2, height=2, kernel_shape=(2, 2), in_channels=3, out_channels=4,
                        pe=1, simd=1).accumulates_positions
    with pytest.raises(TypeError, match=r"^'accumulate_positions' must be None"):
        ConvSpec(**dense, pe=1, simd=1, accumulate_positions="yes")
    # A folding the balancer tries keeps the automatic choice.
    spec = ConvSpec(**dense, pe=1, simd=1)
    assert spec.with_folding(2, 3).accumulates_positions
    assert not spec.with_folding(2, 5).accumulates_positions
    assert spec.with_folding(2, 3) == ConvSpec(**dense, pe=2, simd=3)
    with pytest.raises(ValueError, match=r"^'accumulate_positions' True: 'simd' 5"):
        ConvSpec(**dense, pe=1, simd=1, accumulate_positions=True).with_folding(2, 5)


# --- malformed frames ------------------------------------------------------------------------

MALFORMED_KINDS = {
    "dense pe3 simd2 signed": malformed.Kind(ConvSpec(**CASES["pe3-simd2-signed"]), Conv2d),
    "dense serial": malformed.Kind(ConvSpec(**CASES["digits-like-serial"]), Conv2d),
    "dense one-cycle positions": malformed.Kind(ConvSpec(**CASES["one-cycle-positions"]),
                                                Conv2d),
}


@pytest.mark.parametrize("case", malformed.CASES, ids=lambda case: case.__name__)
@pytest.mark.parametrize("name", MALFORMED_KINDS)
def test_malformed_stream(name, case):
    kind = MALFORMED_KINDS[name]
    spec = kind.spec
    rng = np.random.default_rng([sorted(MALFORMED_KINDS).index(name),
                                 malformed.CASES.index(case)])
    pixels, firsts, lasts = case(kind, rng)
    expected, markers = malformed.expected_outputs(kind, pixels, firsts, None)
    assert expected
    for stall, seed in ((0.0, 0), (0.5, malformed.CASES.index(case) + 1)):
        values, got_markers, _, _, errors = run_stream(
            Conv2d(spec), kind.beats(pixels), len(expected), firsts=firsts, lasts=lasts,
            in_stall=stall, out_stall=stall, seed=seed)
        assert errors == []
        values = unpack_beats([int(v) for v in values], spec.out_bits, kind.out_channels)
        assert [tuple(row) for row in values.tolist()] == expected, f"stall {stall}"
        assert [(bool(f), bool(l)) for f, l in got_markers] == markers, f"stall {stall}"


# --- compiled backend and the digits network ---------------------------------------------------

@needs_engine
@pytest.mark.parametrize("name", ["digits-like-serial", "pe2-simd3-per-channel"])
def test_compiled_backend_equals_pysim(name):
    spec = ConvSpec(**CASES[name])
    frames = _frames(spec, 3, seed=9)
    runs = [simulate(Conv2d(spec), frames, in_stall=0.4, out_stall=0.4, seed=4, backend=backend)
            for backend in ("pysim", "fast")]
    for run in runs:
        assert not run.errors
        for got, frame in zip(run.frames, frames):
            assert describe_mismatch(got, run_spec(spec, frame)) is None
    assert runs[0].cycles == runs[1].cycles


def _digits_chain():
    network = read_model(MODEL)
    chain = network.chain(balance_network(network, max_multipliers=8).foldings)
    return network, chain


def test_digits_dense_layer_accumulates():
    _, chain = _digits_chain()
    dense = chain.specs[-1]
    assert dense.accumulates_positions and (dense.pe, dense.simd) == (1, 1)
    c, h, w = dense.input_shape
    assert dense.frame_interval == h * w * dense.out_channels * c
    assert all(not spec.accumulates_positions for spec in chain.specs[:-1])


@pytest.mark.parametrize("backend", [
    "pysim", pytest.param("fast", marks=needs_engine)])
def test_digits_chain_equals_reference(backend):
    network, chain = _digits_chain()
    rng = np.random.default_rng(17)
    x = (rng.random((3, *network.input_shape)) * 16).astype(np.float32)
    frames = list(input_codes(network, x) - network.input.zero_point)
    result = simulate(Chain(chain), frames, in_stall=0.3, out_stall=0.3, seed=5,
                      backend=backend)
    assert result.errors == []
    np.testing.assert_array_equal(output_values(network, np.stack(result.frames)),
                                  run_network(network, x))
