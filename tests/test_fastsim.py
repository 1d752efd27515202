"""The fast backend (a Verilator model) against pysim, cycle for cycle, and against the golden
model on full-size frames.

Each distinct spec costs one Verilator build (seconds), so the specs here are few and small;
models are cached in the user cache dir across runs (``$CONVHW_CACHE`` to move it).
"""

import re
import threading

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring

from convhw import Conv1d, Conv1dSpec, Conv2d, ConvSpec, fastsim
from convhw.fastsim import model as fastsim_model
from convhw.fastsim.run import marker_errors as fast_marker_errors
from convhw.gateware.core_io import core_signature
from convhw.golden import run_spec
from convhw.harness import marker_errors, pysim, simulate


needs_engine = pytest.mark.skipif(not fastsim.available(),
                                  reason=str(fastsim_model._missing()))


def core(spec):
    return Conv1d(spec) if isinstance(spec, Conv1dSpec) else Conv2d(spec)


def random_frames(rng, spec, count):
    lo, hi = spec.pixel_range
    return [rng.integers(lo, hi, spec.frame_shape, endpoint=True) for _ in range(count)]


def random_kernels(rng, spec, count):
    lo, hi = -(1 << (spec.coeff_bits - 1)), (1 << (spec.coeff_bits - 1)) - 1
    return [rng.integers(lo, hi, spec.kernel_shape, endpoint=True) for _ in range(count)]


def assert_same(slow, fast, engines=("pysim", "verilator")):
    """Every field of two SimResults but ``engine`` is equal, dtypes included."""
    assert (slow.engine, fast.engine) == engines
    assert len(fast.frames) == len(slow.frames)
    for index, (expected, got) in enumerate(zip(slow.frames, fast.frames)):
        assert got.dtype == expected.dtype and got.shape == expected.shape, f"frame {index}"
        np.testing.assert_array_equal(got, expected, err_msg=f"frame {index}")
    assert (fast.cycles, fast.total_cycles) == (slow.cycles, slow.total_cycles)
    assert fast.errors == slow.errors


SPECS = {
    "3x3 same": (ConvSpec(width=16, height=10, kernel=[[1, 2, 1], [2, 4, 2], [1, 2, 1]],
                          padding="same"), 2, False),
    "strided dilated non-square": (ConvSpec(width=15, height=11,
                                            kernel=[[1, -2, 3], [4, 5, -6]], stride=(2, 3),
                                            dilation=(2, 1), padding=(1, 2)), 2, False),
    "runtime coefficients": (ConvSpec(width=9, height=7, kernel_shape=(3, 3), padding="same",
                                      in_signed=True), 3, True),
    "requantized": (ConvSpec(width=10, height=8, kernel=[[5, 9, -3], [7, 11, 13], [-17, 19, 23]],
                             shift=3, out_bits=6, padding="same"), 2, False),
    "1-D": (Conv1dSpec(length=40, kernel=[3, -1, 4, 1, -5], stride=2, padding=(2, 1)), 3, False),
    "wider than 64 bits": (ConvSpec(width=7, height=5, kernel=[[2**31 - 1, -2**31]] * 2,
                                    in_bits=32, in_signed=True, padding=1), 2, False),
}
STALLS = [(0.0, 0.0, 0), (0.3, 0.5, 1), (0.6, 0.2, 2)]


@needs_engine
@pytest.mark.parametrize("name", SPECS)
def test_same_as_pysim(name):
    spec, count, runtime = SPECS[name]
    rng = np.random.default_rng(sorted(SPECS).index(name))
    dut = core(spec)
    frames = random_frames(rng, spec, count)
    kernels = random_kernels(rng, spec, count) if runtime else None
    for in_stall, out_stall, seed in STALLS:
        stalls = dict(in_stall=in_stall, out_stall=out_stall, seed=seed)
        slow = pysim(dut, frames, coefficients=kernels, **stalls)
        fast = simulate(dut, frames, coefficients=kernels, backend="fast", **stalls)
        assert_same(slow, fast)
        assert fast.errors == []
        for index, frame in enumerate(frames):
            kernel = None if kernels is None else kernels[index]
            np.testing.assert_array_equal(fast.frames[index], run_spec(spec, frame, kernel))
        if not (in_stall or out_stall) and not runtime:
            assert fast.cycles == (count - 1) * spec.positions_per_frame + spec.cycles_per_frame


class Unruly(wiring.Component):
    """A broken core: its output ``valid`` follows ``ready`` (and the input's ``valid``),
    its payload changes while it waits, and its markers are wrong."""

    def __init__(self, spec):
        self.spec = spec
        super().__init__(core_signature(spec))

    def elaborate(self, platform):
        m = Module()
        count = Signal(8)
        m.d.sync += count.eq(count + 1)
        m.d.comb += [
            self.i.ready.eq(count[0]),
            self.o.valid.eq((count[1] & self.o.ready) ^ (self.i.valid & count[2]) | count[3]),
            self.o.payload.data.eq(count),
            self.o.payload.first.eq(count[3]),
            self.o.payload.last.eq(count[4]),
        ]
        return m


@needs_engine
def test_same_protocol_errors_and_timeouts_as_pysim():
    dut = Unruly(ConvSpec(width=4, height=3, kernel=[[1, 2]]))
    frames = [np.arange(12).reshape(3, 4)] * 2
    for seed in range(3):
        slow = pysim(dut, frames, in_stall=0.3, out_stall=0.4, seed=seed)
        fast = fastsim.simulate(dut, frames, in_stall=0.3, out_stall=0.4, seed=seed)
        assert_same(slow, fast)
        for kind in ("valid changed with ready", "changed before the transfer", "output "):
            assert any(kind in error for error in fast.errors), kind
    for limit in (5, 30):
        with pytest.raises(TimeoutError) as slow_timeout:
            pysim(dut, frames, out_stall=0.4, seed=1, max_cycles=limit)
        with pytest.raises(TimeoutError) as fast_timeout:
            fastsim.simulate(dut, frames, out_stall=0.4, seed=1, max_cycles=limit)
        assert str(fast_timeout.value) == str(slow_timeout.value)


def test_marker_errors_vectorized_like_harness():
    rng = np.random.default_rng(5)
    for out_shape in ((3, 4), (7,), (2, 1)):
        out_h, out_w = (1, *out_shape) if len(out_shape) == 1 else out_shape
        index = np.arange(3 * out_h * out_w)
        good = ((index % (out_h * out_w) == 0).astype(np.uint8)
                | 2 * (index % out_w == out_w - 1).astype(np.uint8))
        for flips in (0, 1, 3, len(index)):
            markers = good.copy()
            where = rng.choice(len(index), flips, replace=False)
            markers[where] ^= rng.integers(1, 4, flips).astype(np.uint8)
            pairs = [(int(m) & 1, int(m) >> 1) for m in markers]
            expected = marker_errors(pairs, out_shape)
            assert len(expected) == min(flips, 11)
            assert fast_marker_errors(markers, out_shape) == expected


def _vcd_samples(path, names):
    """``{name: [value at each time]}`` of single-bit ``names``, sampled at every timestamp."""
    ids, values, samples, times = {}, {}, {name: [] for name in names}, []
    with open(path) as vcd:
        text = vcd.read()
    header, _, body = text.partition("$enddefinitions")
    for code, name in re.findall(r"\$var \w+\s+1 (\S+) (\w+) \$end", header):
        if name in names and name not in ids.values():
            ids[code] = name
    for line in body.splitlines():
        if line.startswith("#"):
            if times:
                for name in names:
                    samples[name].append(values.get(name, 0))
            times.append(int(line[1:]))
        elif line[:1] in ("0", "1") and line[1:] in ids:
            values[ids[line[1:]]] = int(line[0])
    for name in names:
        samples[name].append(values.get(name, 0))
    return times, samples


@needs_engine
def test_vcd(tmp_path):
    spec, count, _ = SPECS["3x3 same"]
    dut = core(spec)
    frames = random_frames(np.random.default_rng(0), spec, count)
    plain = fastsim.simulate(dut, frames, out_stall=0.3, seed=4)
    traced = fastsim.simulate(dut, frames, out_stall=0.3, seed=4, vcd=tmp_path / "run.vcd")
    assert_same(plain, traced, ("verilator", "verilator"))
    names = ["m_axis_tvalid", "m_axis_tready", "s_axis_tvalid", "s_axis_tready"]
    times, samples = _vcd_samples(tmp_path / "run.vcd", names)
    # Time 10*c has cycle c's settled inputs and outputs, what the driver samples at the edge.
    edges = [k for k, t in enumerate(times) if t % 10 == 0]
    taken = [times[k] // 10 for k in edges
             if samples["m_axis_tvalid"][k] and samples["m_axis_tready"][k]]
    accepted = [times[k] // 10 for k in edges
                if samples["s_axis_tvalid"][k] and samples["s_axis_tready"][k]]
    assert len(taken) == count * spec.out_shape[0] * spec.out_shape[1]
    assert len(accepted) == count * spec.width * spec.height
    assert (accepted[0], taken[-1]) == (plain.total_cycles - 1 - plain.cycles,
                                        plain.total_cycles - 1)


@needs_engine
def test_cache_hit_and_concurrent_builds(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVHW_CACHE", str(tmp_path))
    dut = Conv2d(ConvSpec(width=4, height=3, kernel=[[1, -1]]))
    models = [None, None]

    def build(index):
        models[index] = fastsim.build(dut)

    threads = [threading.Thread(target=build, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert models[0].path == models[1].path
    assert models[0].built or models[1].built
    stamp = models[0].path.stat().st_mtime_ns
    # A new core of the same spec finds the model through the spec index, without an export.
    monkeypatch.setattr(fastsim_model, "_verilog", None)
    again = fastsim.build(Conv2d(ConvSpec(width=4, height=3, kernel=[[1, -1]])))
    assert (again.built, again.path) == (False, models[0].path)
    assert again.path.stat().st_mtime_ns == stamp
    names = [p.name for p in (tmp_path / "fastsim").iterdir()]
    assert not [name for name in names if name.startswith(".")], "a temporary build was left"
    assert [name for name in names if name != "index" and not name.startswith("runtime-")] \
        == [again.key]
    assert len(list((tmp_path / "fastsim" / "index").iterdir())) == 1
    result = fastsim.simulate(dut, [np.arange(12).reshape(3, 4)])
    np.testing.assert_array_equal(result.frames[0], [[-1] * 3] * 3)


def test_spec_index_tells_specs_apart(unelaborated_ok):
    one_d = Conv1dSpec(length=10, kernel=[1, 2, 3], shift=1)
    two_d = ConvSpec(width=5, height=4, kernel_shape=(2, 2), max_dsps=4)
    ids = {fastsim_model._design_id(core(spec)) for spec in
           (one_d, one_d.replace(shift=2), two_d, two_d.replace(max_dsps=3))}
    assert len(ids) == 4
    assert fastsim_model._design_id(core(one_d)) in ids
    assert fastsim_model._design_id(Unruly(two_d)) is None


def test_engine_missing(monkeypatch, unelaborated_ok):
    monkeypatch.setenv("VERILATOR", "no-such-verilator")
    assert not fastsim.available()
    dut = Conv2d(ConvSpec(width=4, height=3, kernel=[[1]]))
    with pytest.raises(fastsim.EngineMissing, match=r"install Verilator.*apt-get install "
                                                    r"verilator.*\.ci/run"):
        simulate(dut, [np.zeros((3, 4), dtype=int)], backend="fast")


def test_bad_arguments(unelaborated_ok):
    dut = Conv2d(ConvSpec(width=4, height=3, kernel=[[1]]))
    with pytest.raises(ValueError, match=r"^'frames' must hold at least one frame"):
        fastsim.simulate(dut, [])
    with pytest.raises(ValueError, match=r"^'out_stall' must be a probability"):
        fastsim.simulate(dut, [np.zeros((3, 4), dtype=int)], out_stall=1.0)
    with pytest.raises(ValueError, match=r"^frame shape \(4, 3\) does not match"):
        fastsim.simulate(dut, [np.zeros((4, 3), dtype=int)])
    with pytest.raises(TypeError, match=r"^'vcd' must be a file path for the fast backend"):
        fastsim.simulate(dut, [np.zeros((3, 4), dtype=int)], vcd=object())


FULL_SIZE = {
    3: dict(kernel=[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], padding="same"),
    5: dict(kernel_shape=(5, 5), in_signed=True, padding=2),
    7: dict(kernel=(np.arange(49).reshape(7, 7) % 11 - 5).tolist(), shift=6, out_bits=8),
}


@needs_engine
@pytest.mark.parametrize("size", sorted(FULL_SIZE))
def test_full_size_frame_bit_exact(size):
    spec = ConvSpec(width=640, height=480, **FULL_SIZE[size])
    rng = np.random.default_rng(size)
    runtime = spec.runtime_coeffs
    frames = random_frames(rng, spec, 2 if runtime else 1)
    kernels = random_kernels(rng, spec, len(frames)) if runtime else None
    stalls = dict(in_stall=0.1, out_stall=0.2, seed=size) if size == 3 else {}
    result = simulate(Conv2d(spec), frames, coefficients=kernels, backend="fast", **stalls)
    assert result.engine == "verilator" and result.errors == []
    for index, frame in enumerate(frames):
        kernel = None if kernels is None else kernels[index]
        np.testing.assert_array_equal(result.frames[index], run_spec(spec, frame, kernel))
    if not stalls and not runtime:
        assert result.cycles == spec.cycles_per_frame
