"""The simulation harness: argument checks, reproducible stalls, cycle accounting, VCD output, and
a protocol checker that catches deliberately broken cores (so a clean run means something)."""

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from amaranth import *
from amaranth.lib import wiring

from convhw import Conv2d, ConvSpec
from convhw.gateware.core_io import core_signature
from convhw.golden import run_spec
from convhw.harness import budget, simulate, stimulus
from convhw.stalls import INPUT, OUTPUT, StallPattern, splitmix64

SPEC = ConvSpec(width=6, height=5, kernel=[[1, 2, 1], [0, 0, 0], [-1, -2, -1]], padding=1)
RUNTIME = ConvSpec(width=6, height=5, kernel_shape=(2, 2), in_signed=True)


def frames(spec, count, seed=0):
    lo, hi = spec.pixel_range
    rng = np.random.default_rng(seed)
    return [rng.integers(lo, hi, size=spec.frame_shape, endpoint=True) for _ in range(count)]


class Faulty(wiring.Component):
    """A Conv2d whose output stream breaks one rule on purpose."""

    def __init__(self, spec, fault):
        self.spec = spec
        self._fault = fault
        super().__init__(core_signature(spec))

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = Conv2d(self.spec)
        wiring.connect(m, wiring.flipped(self.i), core.i)
        m.d.comb += [
            self.o.payload.eq(core.o.payload),
            self.o.valid.eq(core.o.valid),
            core.o.ready.eq(self.o.ready),
        ]
        waited = Signal()
        m.d.sync += waited.eq(self.o.valid & ~self.o.ready)
        if self._fault == "valid_needs_ready":
            m.d.comb += self.o.valid.eq(core.o.valid & self.o.ready)
        elif self._fault == "payload_wobbles":
            with m.If(waited):
                m.d.comb += self.o.payload.data.eq(core.o.payload.data ^ 1)
        elif self._fault == "valid_drops":
            # Withdraw an offer that has waited one cycle (nothing is lost: the core holds it).
            m.d.comb += [self.o.valid.eq(core.o.valid & ~waited),
                         core.o.ready.eq(self.o.ready & ~waited)]
        elif self._fault == "last_missing":
            m.d.comb += self.o.payload.last.eq(0)
        elif self._fault == "first_everywhere":
            m.d.comb += self.o.payload.first.eq(1)
        else:
            assert self._fault == "stuck"
            m.d.comb += self.o.valid.eq(0)
        return m


@pytest.mark.parametrize("fault, message", [
    ("valid_needs_ready", r"^cycle \d+: output valid changed with ready$"),
    ("payload_wobbles", r"^cycle \d+: output valid or payload changed before the transfer$"),
    ("valid_drops", r"^cycle \d+: output valid or payload changed before the transfer$"),
    ("last_missing", r"^output 5: first=0 last=0 at \(0, 5\) of a 5x6 frame$"),
    ("first_everywhere", r"^output 1: first=1 last=0 at \(0, 1\) of a 5x6 frame$"),
])
def test_checker_catches_broken_core(fault, message):
    images = frames(SPEC, 2)
    result = simulate(Faulty(SPEC, fault), images, in_stall=0.3, out_stall=0.5, seed=3)
    assert result.errors, "the checker missed the fault"
    assert any(re.match(message, e) for e in result.errors), result.errors
    # The same rules hold for the real core under the same stalls.
    clean = simulate(Conv2d(SPEC), images, in_stall=0.3, out_stall=0.5, seed=3)
    assert clean.errors == []


def test_checker_data_still_exact_under_protocol_faults():
    """The faulty wrappers lose no data: only the checker can tell them from the real core."""
    images = frames(SPEC, 2, seed=1)
    for fault in ("valid_needs_ready", "valid_drops"):
        result = simulate(Faulty(SPEC, fault), images, out_stall=0.5, seed=2)
        for image, out in zip(images, result.frames):
            np.testing.assert_array_equal(out, run_spec(SPEC, image))


def test_hung_core_times_out():
    with pytest.raises(TimeoutError, match=r"^no progress: 0 of 30 outputs after 201 cycles$"):
        simulate(Faulty(SPEC, "stuck"), frames(SPEC, 1), max_cycles=200)


def test_budget_is_generous():
    images = frames(SPEC, 3)
    for stall in (0.0, 0.3, 0.9):
        result = simulate(Conv2d(SPEC), images, in_stall=stall, out_stall=stall, seed=5)
        assert result.total_cycles * 2 < budget(SPEC, images, stall, stall)


# --- cycle accounting, determinism, VCD ----------------------------------------------------------

def test_cycle_accounting():
    images = frames(SPEC, 2)
    result = simulate(Conv2d(SPEC), images)
    assert result.engine == "pysim" and result.errors == []
    assert result.cycles == SPEC.positions_per_frame + SPEC.cycles_per_frame
    assert result.total_cycles == result.cycles + 1  # the first pixel goes in at cycle 0
    # Runtime kernels are written (one coefficient per cycle) before the first pixel.
    kernel = np.array([[1, -2], [3, -4]])
    result = simulate(Conv2d(RUNTIME), frames(RUNTIME, 1), coefficients=[kernel])
    assert result.cycles == RUNTIME.cycles_per_frame
    assert result.total_cycles == result.cycles + 1 + RUNTIME.taps


def test_stalls_reproducible_and_seeded():
    images = frames(SPEC, 2)
    runs = [simulate(Conv2d(SPEC), images, in_stall=0.4, out_stall=0.4, seed=seed)
            for seed in (7, 7, 8)]
    assert runs[0].cycles == runs[1].cycles != runs[2].cycles
    for run in runs:
        assert run.errors == []
        for image, out in zip(images, run.frames):
            np.testing.assert_array_equal(out, run_spec(SPEC, image))
    slow = simulate(Conv2d(SPEC), images, in_stall=0.9, seed=7)
    assert slow.cycles > 5 * runs[0].cycles / 2


def test_stall_pattern():
    assert splitmix64(0) == 0xE220A8397B1DCDAF  # the published SplitMix64 sequence from 0
    for probability in (0.0, 0.3, 0.9):
        pattern = StallPattern(11, INPUT, probability)
        hits = sum(pattern(c) for c in range(20000))
        assert abs(hits / 20000 - probability) < 0.02
        assert [pattern(c) for c in range(64)] == [pattern(c) for c in range(64)]
    a, b = StallPattern(11, INPUT, 0.5), StallPattern(11, OUTPUT, 0.5)
    assert [a(c) for c in range(64)] != [b(c) for c in range(64)]
    with pytest.raises(ValueError, match=r"^stall probability must be from 0 up to \(not "
                                         r"including\) 1, not 1$"):
        StallPattern(0, INPUT, 1)


def test_vcd(tmp_path):
    path = tmp_path / "run.vcd"
    simulate(Conv2d(SPEC), frames(SPEC, 1), vcd=str(path))
    text = path.read_text()
    assert "$enddefinitions" in text and "i__valid" in text and "o__payload" in text


def test_markers_and_dtype():
    spec = ConvSpec(width=4, height=3, kernel=[[2**31 - 1]], in_bits=32, in_signed=True)
    assert spec.out_bits == 63
    lo, hi = spec.pixel_range
    image = np.array([[lo, hi, 0, 1]] * 3, dtype=object)
    result = simulate(Conv2d(spec), [image])
    assert result.errors == [] and result.frames[0].dtype == object
    assert result.frames[0].tolist() == (image * (2**31 - 1)).tolist()


# --- argument checks -----------------------------------------------------------------------------

@pytest.mark.parametrize("spec, images, options, error, message", [
    (SPEC, [np.zeros((6, 5))], {}, ValueError,
     r"^frame shape \(6, 5\) does not match the spec's \(height, width\) \(5, 6\)$"),
    (SPEC, [np.full((5, 6), 256)], {}, ValueError,
     r"^pixel values must lie in 0\.\.255 for 8-bit unsigned input$"),
    (RUNTIME, [np.full((5, 6), -129)], dict(coefficients=[np.ones((2, 2))]), ValueError,
     r"^pixel values must lie in -128\.\.127 for 8-bit signed input$"),
    (SPEC, [np.zeros((5, 6))], dict(coefficients=[np.ones((3, 3))]), ValueError,
     r"^'coefficients' are only for runtime-coefficient specs$"),
    (RUNTIME, [np.zeros((5, 6))], {}, ValueError,
     r"^a runtime-coefficient spec needs 'coefficients'$"),
    (RUNTIME, [np.zeros((5, 6))] * 3, dict(coefficients=[np.ones((2, 2))] * 2), ValueError,
     r"^'coefficients' must give one kernel, or one per frame \(3\), not 2$"),
    (RUNTIME, [np.zeros((5, 6))], dict(coefficients=[np.ones((3, 2))]), ValueError,
     r"^runtime kernel shape \(3, 2\) does not match 'kernel_shape' \(2, 2\)$"),
    (SPEC, [np.full((5, 6), 1.5)], {}, TypeError, r"^'frames' must hold integers, not float64 "
                                                    r"values$"),
    (SPEC, [np.full((5, 6), None)], {}, TypeError, r"^'frames' must hold integers, not object "
                                                   r"values$"),
    (RUNTIME, [np.zeros((5, 6), dtype=int)], dict(coefficients=[np.full((2, 2), 0.5)]),
     TypeError, r"^'coefficients' must hold integers, not float64 values$"),
    (RUNTIME, [np.zeros((5, 6), dtype=int)], dict(coefficients=[[[1, 128], [0, 0]]]),
     ValueError, r"^runtime coefficients must lie in -128\.\.127 for 'coeff_bits'=8$"),
    (SPEC, [np.zeros((5, 6))], dict(in_stall=1.0), ValueError,
     r"^'in_stall' must be a probability from 0 up to \(not including\) 1, not 1\.0$"),
    (SPEC, [np.zeros((5, 6))], dict(out_stall=-0.1), ValueError,
     r"^'out_stall' must be a probability from 0 up to \(not including\) 1, not -0\.1$"),
    (SPEC, [np.zeros((5, 6))], dict(out_stall="0.5"), ValueError,
     r"^'out_stall' must be a probability"),
    (SPEC, [np.zeros((5, 6))], dict(backend="verilog"), ValueError,
     r"^'backend' must be one of pysim, fast, not 'verilog'$"),
])
def test_wrong_arguments(spec, images, options, error, message, unelaborated_ok):
    dut = Conv2d(spec)
    with pytest.raises(error, match=message):
        simulate(dut, images, **options)


def test_stimulus_repeats_one_kernel():
    kernel = np.array([[1, 2], [3, 4]])
    images, kernels = stimulus(RUNTIME, frames(RUNTIME, 3), [kernel])
    assert len(images) == len(kernels) == 3
    assert all(k is kernels[0] for k in kernels)
    assert stimulus(SPEC, frames(SPEC, 2))[1] == [None, None]


def test_whole_valued_floats_accepted():
    image = frames(SPEC, 1)[0]
    result = simulate(Conv2d(SPEC), [image.astype(float)])
    np.testing.assert_array_equal(result.frames[0], run_spec(SPEC, image))
    kernel = np.array([[1.0, -2.0], [3.0, -128.0]])
    images, kernels = stimulus(RUNTIME, frames(RUNTIME, 1), [kernel])
    assert kernels[0].dtype == np.int64 and kernels[0].tolist() == [[1, -2], [3, -128]]


# --- the sim/ scenario ---------------------------------------------------------------------------

def load_sobel_scenario():
    path = Path(__file__).resolve().parents[1] / "sim" / "sobel.py"
    spec = importlib.util.spec_from_file_location("sobel_scenario", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sobel_scenario(tmp_path, capsys):
    sobel = load_sobel_scenario()
    vcd = tmp_path / "sobel.vcd"
    assert sobel.main(["--width", "9", "--height", "7", "--stall", "0.4", "--seed", "3",
                       "--vcd", str(vcd)]) == 0
    out = capsys.readouterr().out
    assert out.count("bit-exact") == 4 and "MISMATCH" not in out and out.endswith("PASS\n")
    assert f"(spec.cycles_per_frame {sobel.sobel_spec(9, 7, sobel.SOBEL_X).cycles_per_frame})" \
        in out
    assert "$enddefinitions" in vcd.read_text()
    picture = sobel.demo_picture(9, 7)
    assert picture.shape == (7, 9) and 0 <= picture.min() and picture.max() <= 255


def test_sobel_scenario_reports_a_mismatch(monkeypatch, capsys):
    """The scenario fails loudly when the golden model and the hardware disagree."""
    sobel = load_sobel_scenario()
    monkeypatch.setattr(sobel, "run_spec", lambda spec, image: run_spec(spec, image) + 1)
    assert sobel.main(["--width", "6", "--height", "5", "--stall", "0"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "30 outputs differ, first at (0, 0)" in out
    assert out.endswith("FAIL\n")


def test_sobel_scenario_bad_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_sobel_scenario().main(["--stall", "1"])
    assert exit_info.value.code == 2
    assert "argument --stall: must be from 0 up to (not including) 1, not 1" in \
        capsys.readouterr().err

