"""The running max pool (``ConvSpec.pool_form == "running"``, :mod:`convhw.gateware.pool`):
windows that tile the frame keep one partial maximum per output column, no line buffer.

Each case: frames back to back, bit-exact with the golden model and with an independent
oracle (the maximum of the cropped frame's reshaped windows) under random stalls on both sides,
exactly ``cycles_per_frame`` / ``frame_interval`` cycles without stalls, the same outputs as
the window form, malformed streams as tests/test_malformed.py says, and the Verilator model
equal to pysim.
"""

import numpy as np
import pytest

from convhw import Conv2d, ConvSpec
from convhw import fastsim
from convhw.golden import run_spec
from convhw.harness import describe_mismatch, simulate

from test_malformed import CASES as MALFORMED, Kind, expected_outputs
from streaming import run_stream
from convhw.stimulus import unpack_beats


#: name -> ConvSpec arguments of a running max pool (operation and stride added)
POOLS = {
    # The digits network's pool1: 8 channels, 4 output columns in registers.
    "2x2-8x8x8-signed": dict(width=8, height=8, kernel_shape=2, in_channels=8, in_signed=True),
    # Tails: a column and two rows beyond the last whole window; one channel, unsigned.
    "3x3-10x8-tail": dict(width=10, height=8, kernel_shape=3, in_channels=1),
    "2x3-7x5-tail-signed": dict(width=7, height=5, kernel_shape=(2, 3), in_channels=3,
                                in_signed=True, in_bits=6),
    # Memory of partial maxima (more than 4 output columns), with a tail, and with KW = 1.
    "2x2-14x6-memory": dict(width=14, height=6, kernel_shape=2, in_channels=2, in_signed=True),
    "3x2-11x7-memory-tail": dict(width=11, height=7, kernel_shape=(3, 2), in_channels=1,
                                 in_bits=5),
    "2x1-6x5-memory-kw1": dict(width=6, height=5, kernel_shape=(2, 1), in_channels=2),
    # Registers with KW = 1; one output column; one-row windows (one register).
    "3x1-4x7-kw1": dict(width=4, height=7, kernel_shape=(3, 1), in_channels=2, in_signed=True),
    "2x2-3x4-one-column": dict(width=3, height=4, kernel_shape=2, in_channels=2),
    "1x2-9x3-one-row": dict(width=9, height=3, kernel_shape=(1, 2), in_channels=2,
                            in_signed=True),
    # Saturation in the result register: ReLU and a clamp, and a narrower output.
    "2x2-6x4-relu-clamp": dict(width=6, height=4, kernel_shape=2, in_channels=2, in_signed=True,
                               relu=True, clamp=(-5, 40)),
    "2x2-8x4-out-bits": dict(width=8, height=4, kernel_shape=2, in_channels=1, out_bits=6,
                             in_signed=True),
}


def _spec(name, **changes):
    args = dict(POOLS[name])
    kernel = args["kernel_shape"]
    return ConvSpec(operation="max-pool", stride=kernel, **{**args, **changes})


def _frames(spec, count, seed):
    rng = np.random.default_rng(seed)
    lo, hi = spec.pixel_range
    return [rng.integers(lo, hi + 1, size=spec.input_shape) for _ in range(count)]


def oracle(spec, frame, relu=False, clamp=None, out_bits=None):
    """Max pool by reshaping the frame cropped to whole windows, then the saturation."""
    (kh, kw), (oh, ow) = spec.kernel_shape, spec.out_shape
    c = frame.shape[0]
    out = frame[:, :oh * kh, :ow * kw].reshape(c, oh, kh, ow, kw).max(axis=(2, 4))
    if relu:
        out = np.maximum(out, 0)
    if clamp is not None:
        out = np.clip(out, *clamp)
    if out_bits is not None:
        out = np.clip(out, -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1)
    return out


def _oracle(name, spec, frame):
    args = POOLS[name]
    return oracle(spec, frame, relu=args.get("relu", False), clamp=args.get("clamp"),
                  out_bits=args.get("out_bits"))


def test_form_chosen_by_the_spec():
    spec = _spec("2x2-8x8x8-signed")
    assert spec.pool_form == "running" and spec.pool_partials == "registers"
    assert spec.pipeline_depth == 3 and spec.latency == 5
    assert spec.output_queue_depth == 8    # (the queue memory's rows: 6 results need 8)
    assert spec.line_buffer_bits == 4 * 8 * 8
    window = _spec("2x2-8x8x8-signed", pool_form="window")
    assert window.pool_form == "window" and window.pool_partials is None
    assert window.line_buffer_bits == 8 * 8 * 8 > spec.line_buffer_bits
    assert spec != window
    assert _spec("2x2-14x6-memory").pool_partials == "memory"
    assert _spec("2x2-14x6-memory").line_buffer_bits == 7 * 2 * 8
    assert _spec("1x2-9x3-one-row").line_buffer_bits == 0
    args = dict(width=8, height=8, in_channels=2, operation="max-pool")
    for other in (dict(kernel_shape=3, stride=2), dict(kernel_shape=2, stride=2, padding=1),
                  dict(kernel_shape=2, stride=2, dilation=2), dict(kernel_shape=2)):
        assert ConvSpec(**args, **other).pool_form == "window"
        with pytest.raises(ValueError, match=r"^'pool_form' 'running' needs windows that tile "
                                             r"the frame"):
            ConvSpec(**args, **other, pool_form="running")
    assert ConvSpec(width=4, height=4, kernel=[[1, 2]]).pool_form is None
    with pytest.raises(ValueError, match=r"^'pool_form' 'running' applies to "
                                         r"'operation'='max-pool' only$"):
        ConvSpec(width=4, height=4, kernel=[[1, 2]], pool_form="running")
    with pytest.raises(ValueError, match=r"^'pool_form' must be None \(automatic\), 'running' "
                                         r"or 'window', not 'tree'$"):
        ConvSpec(**args, kernel_shape=2, stride=2, pool_form="tree")


def test_oracle_itself():
    """The reshape oracle on a hand-worked frame with a tail."""
    spec = ConvSpec(operation="max-pool", width=5, height=3, kernel_shape=2, stride=2,
                    in_channels=1)
    frame = np.array([[[1, 9, 2, 3, 99], [4, 0, 8, 1, 99], [99, 99, 99, 99, 99]]])
    np.testing.assert_array_equal(oracle(spec, frame), [[[9, 8]]])


@pytest.mark.parametrize("stall", [0.0, 0.3, 0.6])
@pytest.mark.parametrize("name", POOLS)
def test_running_pool_matches_golden_and_oracle(name, stall):
    spec = _spec(name)
    assert spec.pool_form == "running"
    frames = _frames(spec, 4, seed=sorted(POOLS).index(name))
    result = simulate(Conv2d(spec), frames, in_stall=stall, out_stall=stall,
                      seed=int(stall * 10) + 1)
    assert not result.errors, result.errors[:3]
    assert len(result.frames) == len(frames)
    for got, frame in zip(result.frames, frames):
        assert describe_mismatch(got, run_spec(spec, frame)) is None
        np.testing.assert_array_equal(got, _oracle(name, spec, frame))


@pytest.mark.parametrize("name", POOLS)
def test_running_pool_cycles_as_predicted(name):
    spec = _spec(name)
    one = simulate(Conv2d(spec), _frames(spec, 1, seed=1))
    assert one.cycles == spec.cycles_per_frame
    four = simulate(Conv2d(spec), _frames(spec, 4, seed=2))
    assert four.cycles == spec.cycles_per_frame + 3 * spec.frame_interval
    assert spec.frame_interval == spec.width * spec.height


@pytest.mark.parametrize("name", ["2x2-8x8x8-signed", "3x2-11x7-memory-tail",
                                  "2x2-6x4-relu-clamp"])
def test_running_pool_equals_window_form(name):
    """Both forms give the same frames; the running form's results come a cycle earlier
    (the window form's tree level and rounding register, the running form's result stage)."""
    running, window = _spec(name), _spec(name, pool_form="window")
    frames = _frames(running, 3, seed=5)
    a = simulate(Conv2d(running), frames, in_stall=0.2, out_stall=0.2, seed=4)
    b = simulate(Conv2d(window), frames, in_stall=0.2, out_stall=0.2, seed=4)
    assert not a.errors and not b.errors
    for x, y in zip(a.frames, b.frames):
        np.testing.assert_array_equal(x, y)
    assert window.latency - running.latency == window.tree_depth + window.back_stages - 1


def test_all_negative_frames():
    """Every pixel below zero (a stale zero must never win), partial maxima left from an
    earlier frame with larger values."""
    spec = _spec("2x2-14x6-memory")
    rng = np.random.default_rng(9)
    high = np.full(spec.input_shape, 127)
    low = -128 + rng.integers(0, 5, size=spec.input_shape)
    result = simulate(Conv2d(spec), [high, low, low[:, ::-1].copy()], in_stall=0.3,
                      out_stall=0.3, seed=2)
    for got, frame in zip(result.frames, [high, low, low[:, ::-1]]):
        np.testing.assert_array_equal(got, oracle(spec, frame))
    assert result.frames[1].max() < 0


@pytest.mark.parametrize("case", MALFORMED, ids=lambda case: case.__name__)
@pytest.mark.parametrize("name", ["2x3-7x5-tail-signed", "3x2-11x7-memory-tail",
                                  "2x2-3x4-one-column"])
def test_running_pool_malformed_streams(name, case):
    """Early and missing ``first``, over-long frames, misplaced ``last``: tests/test_malformed.py's
    rule (a frame cut short gets zeros), under stalls, never hangs."""
    spec = _spec(name)
    kind = Kind(spec, Conv2d)
    rng = np.random.default_rng([sorted(POOLS).index(name), MALFORMED.index(case)])
    pixels, firsts, lasts = case(kind, rng)
    expected, markers = expected_outputs(kind, pixels, firsts, None)
    for stall, seed in ((0.0, 0), (0.5, MALFORMED.index(case) + 1)):
        values, got_markers, _, _, errors = run_stream(
            Conv2d(spec), kind.beats(pixels), len(expected), firsts=firsts, lasts=lasts,
            in_stall=stall, out_stall=stall, seed=seed)
        assert errors == []
        values = unpack_beats([int(v) for v in values], spec.out_bits, kind.out_channels)
        assert [tuple(row) for row in values.tolist()] == expected, f"stall {stall}"
        assert [(bool(f), bool(l)) for f, l in got_markers] == markers, f"stall {stall}"


def test_malformed_golden_is_the_zero_filled_frame():
    """The expectation above: a frame cut short by a ``first`` gives the golden outputs of
    that frame zero-filled (here by the reshape oracle)."""
    spec = _spec("2x3-7x5-tail-signed")
    kind = Kind(spec, Conv2d)
    rng = np.random.default_rng(3)
    pixels = [tuple(p) for p in rng.integers(-32, 32, size=(20 + 35, 3)).tolist()]
    expected, _ = expected_outputs(kind, pixels, [0, 20], None)
    cut = np.zeros((35, 3), dtype=np.int64)
    cut[:20] = pixels[:20]
    frame = cut.T.reshape(spec.input_shape)
    want = oracle(spec, frame).reshape(3, -1).T
    assert expected[:len(want)] == [tuple(r) for r in want.tolist()]


@pytest.mark.skipif(not fastsim.available(), reason="no Verilator")
@pytest.mark.parametrize("name", ["2x2-8x8x8-signed", "3x2-11x7-memory-tail",
                                  "2x2-6x4-relu-clamp"])
def test_fast_backend_equals_pysim(name):
    spec = _spec(name)
    frames = _frames(spec, 4, seed=8)
    slow = simulate(Conv2d(spec), frames, in_stall=0.3, out_stall=0.3, seed=6)
    fast = simulate(Conv2d(spec), frames, in_stall=0.3, out_stall=0.3, seed=6, backend="fast")
    assert not slow.errors and not fast.errors
    assert (slow.cycles, slow.total_cycles) == (fast.cycles, fast.total_cycles)
    for a, b, frame in zip(slow.frames, fast.frames, frames):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, run_spec(spec, frame))
