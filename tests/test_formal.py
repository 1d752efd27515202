"""Formal proofs of the cores (``convhw.formal``, ``convhw prove``) and the mutants they catch.

Small specs of every core kind must come out ``proven`` (k-induction). A proof that cannot fail
is worth nothing, so for each property a deliberately broken core (a wrapper that corrupts the
output stream, or a core with a FIFO one entry too small) must fail with a counterexample.
The mutants use specs whose first output leaves within a few cycles, so that the base case (BMC)
reaches the failure.
"""

import json
import math
import re

import pytest
from amaranth import *
from amaranth.lib import wiring

from convhw import Conv1d, Conv1dSpec, Conv2d, ConvSpec
from convhw.cli import main
from convhw.cli import prove as prove_cli
from convhw.formal import EXTERNAL, FormalHarness, response_bound
from convhw.formal import sby
from convhw.formal.sby import FormalToolMissing, choose_solver, prove, sby_command
from convhw.gateware.core_io import OutputQueue

SOBEL = [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]

PROVEN = {
    "conv2d-4x4": lambda: Conv2d(ConvSpec(width=4, height=4, kernel=SOBEL)),
    "conv2d-stride-padding": lambda: Conv2d(ConvSpec(width=5, height=5, kernel=SOBEL,
                                                     stride=2, padding=1)),
    "conv2d-dilation-same": lambda: Conv2d(ConvSpec(width=5, height=5, kernel=SOBEL,
                                                    dilation=2, padding="same")),
    "conv2d-runtime": lambda: Conv2d(ConvSpec(width=4, height=3, kernel_shape=(3, 3),
                                              padding=1)),
    "layer-folded-runtime": lambda: Conv2d(ConvSpec(width=4, height=3, kernel_shape=(3, 3),
                                                    in_channels=2, out_channels=2, pe=1,
                                                    simd=3)),
    "layer-fully-folded-pointwise": lambda: Conv2d(ConvSpec(
        width=4, height=3, weights=[[[[1]], [[-2]]], [[[3]], [[4]]]], bias=[5, -6], relu=True,
        pe=1, simd=1)),
    "layer-grouped-border-reflect-101": lambda: Conv2d(ConvSpec(
        width=4, height=3, weights=[[[[1, 2, 1]]], [[[-1, 0, 1]]]], groups=2, padding=(0, 1),
        border="reflect-101")),
    "conv1d-bounded": lambda: Conv1d(Conv1dSpec(length=8, kernel=[1, 2, 1], padding="same")),
    "conv1d-unbounded": lambda: Conv1d(Conv1dSpec(length=None, kernel=[1, 4, 6, 4, 1],
                                                  stride=2)),
}


@pytest.mark.parametrize("name", sorted(PROVEN))
def test_small_specs_are_proven(name, tmp_path):
    result = prove(PROVEN[name](), build_dir=tmp_path)
    assert result.result == "proven", (result.failed, result.notes, result.log)
    assert result.failed == [] and result.counterexample is None and result.notes == []
    # Unbounded streams have no frames to count input beats in.
    unframed = {"input_beats_per_frame"} if name == "conv1d-unbounded" else set()
    assert set(result.properties) == set(EXTERNAL) - unframed


def test_accumulating_dense_is_only_bounded(tmp_path):
    """Not in :data:`PROVEN`: the harness's induction invariants count one cycle per position
    from the scheduler's graph, and the accumulating form of a dense layer
    (``ConvSpec.accumulates_positions``) takes ``fold_per_position`` cycles for every position,
    with its accumulators kept across the frame. Its bounded check finds no counterexample."""
    spec = ConvSpec(width=2, height=1, weights=[[[[1, -2]], [[3, 4]]], [[[5, -6]], [[-7, 8]]]],
                    bias=[3, -4], relu=True, pe=1, simd=1)
    assert spec.accumulates_positions
    result = prove(Conv2d(spec), build_dir=tmp_path)
    assert result.result == "bounded" and result.counterexample is None, result.log
    assert any("accumulating form" in note for note in result.notes)


# --- mutants ----------------------------------------------------------------------------------

class _CorruptOutput(wiring.Component):
    """``core`` with its output stream passed through :meth:`corrupt`."""

    def __init__(self, core):
        self._core = core
        super().__init__(core.signature)

    @property
    def spec(self):
        return self._core.spec

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        wiring.connect(m, wiring.flipped(self.i), core.i)
        if hasattr(self, "coef"):
            wiring.connect(m, wiring.flipped(self.coef), core.coef)
        waited = Signal()           # the core's beat was offered and not taken last cycle
        m.d.sync += waited.eq(core.o.valid & ~core.o.ready)
        m.d.comb += [self.o.valid.eq(core.o.valid), self.o.payload.eq(core.o.payload),
                     core.o.ready.eq(self.o.ready)]
        self.corrupt(m, core.o, waited)
        return m


class DropsValidWhileWaiting(_CorruptOutput):
    def corrupt(self, m, inner, waited):
        m.d.comb += [self.o.valid.eq(inner.valid & ~waited),
                     inner.ready.eq(self.o.ready & ~waited)]


class ChangesDataWhileWaiting(_CorruptOutput):
    def corrupt(self, m, inner, waited):
        m.d.comb += self.o.payload.data.eq(inner.payload.data ^ waited)


class FrameOneBeatShort(_CorruptOutput):
    """``first`` one beat early: the first frame has one beat too few."""

    def corrupt(self, m, inner, waited):
        frame = math.prod(self.spec.out_shape)
        count = Signal(range(frame))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += count.eq(Mux(count == frame - 1, 0, count + 1))
        m.d.comb += self.o.payload.first.eq(count == frame - 2)


class FifoOneEntryShort(Conv2d):
    """A core whose output FIFO (and so its credits) is one entry smaller than the spec's."""

    def output_queue(self, m):
        spec = self.spec
        depth = getattr(spec, "output_queue_depth", spec.latency + 1) - 1
        m.submodules.output = output = OutputQueue(bits=len(Value.cast(self.o.payload.data)),
                                                   depth=depth)
        m.d.comb += [self.o.payload.eq(output.o.payload.as_value()),
                     self.o.valid.eq(output.o.valid), output.o.ready.eq(self.o.ready)]
        return output


# Specs whose outputs leave early (and, for the FIFO, at every position).
TINY_2D = ConvSpec(width=3, height=2, kernel=[[1, -1]])
DENSE_2D = ConvSpec(width=4, height=2, kernel=[[1, 2, 1]], padding="same")
TINY_1D = Conv1dSpec(length=4, kernel=[1, 1])

MUTANTS = {
    "valid dropped while waiting": (lambda: DropsValidWhileWaiting(Conv2d(TINY_2D)),
                                    "output_valid_held"),
    "data changed while waiting": (lambda: ChangesDataWhileWaiting(Conv2d(TINY_2D)),
                                   "output_payload_stable"),
    "FIFO one entry too small": (lambda: FifoOneEntryShort(DENSE_2D), "credit_free_under_ready"),
    "frame one beat short (2-D)": (lambda: FrameOneBeatShort(Conv2d(TINY_2D)), "frame_first"),
    "frame one beat short (1-D)": (lambda: FrameOneBeatShort(Conv1d(TINY_1D)), "frame_first"),
}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_fails_with_counterexample(name, tmp_path):
    build, broken = MUTANTS[name]
    result = prove(build(), depth=16, build_dir=tmp_path)
    assert result.result == "failed", (result.result, result.failed)
    assert broken in result.failed
    assert result.counterexample == str(tmp_path / "counterexample.vcd")
    assert (tmp_path / "counterexample.vcd").read_text().startswith("$")
    assert result.step is not None


# --- harness and runner -----------------------------------------------------------------------

def test_response_bound_from_spec():
    spec = ConvSpec(width=4, height=4, kernel=SOBEL)
    # Outputs at positions 10, 11, 14, 15 of 16: the longest gap crosses the frame's end.
    assert response_bound(spec) == (16 - 15 + 10) + spec.latency + 2
    fir = Conv1dSpec(length=None, kernel=[1, 4, 6, 4, 1], stride=2)
    assert response_bound(fir) == 5 + fir.latency


def test_harness_needs_streams(unelaborated_ok):
    with pytest.raises(TypeError, match=r"^'core' must have stream members 'i' and 'o'"):
        FormalHarness(object())


def test_solver_choice(monkeypatch):
    assert choose_solver(None) in ("yices", "z3")
    with pytest.raises(ValueError, match=r"^'solver' must be one of yices, z3, not 'cvc9'$"):
        choose_solver("cvc9")
    monkeypatch.setattr(sby, "_script", lambda name, env: None)
    with pytest.raises(FormalToolMissing, match=r"^prove needs the yices-smt2 or z3 SMT solver: "
                                                r"pip install 'convhw\[formal\]'$"):
        choose_solver(None)


def test_missing_tools_name_the_extra(tmp_path):
    with pytest.raises(FormalToolMissing, match=r"^SBY='/nonexistent/sby' is not an executable"):
        sby_command({"PATH": "", "SBY": "/nonexistent/sby"})


# --- convhw prove ------------------------------------------------------------------------------

def test_cli_proven_json(tmp_path, capsys):
    status = main(["prove", "--dims", "1", "--length", "6", "--kernel", "1,2,1", "--json",
                   "--build-dir", str(tmp_path)])
    report = json.loads(capsys.readouterr().out)
    assert status == 0
    assert report["result"] == "proven" and report["counterexample"] is None
    assert set(report["properties"]) == set(EXTERNAL)
    assert isinstance(report["depth"], int) and report["seconds"] >= 0
    assert {"result", "properties", "depth", "seconds", "counterexample"} <= set(report)


def test_cli_failed_names_property_and_writes_vcd(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(prove_cli, "build_core",
                        lambda spec: DropsValidWhileWaiting(Conv2d(spec)))
    status = main(["prove", "--width", "3", "--height", "2", "--kernel", "1,-1", "--depth", "16",
                   "--build-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 1
    assert re.match(r"FAILED: .*output_valid_held.* at cycle \d+; counterexample: ", out)
    assert (tmp_path / "counterexample.vcd").exists()


def test_cli_failed_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(prove_cli, "build_core",
                        lambda spec: ChangesDataWhileWaiting(Conv2d(spec)))
    status = main(["prove", "--width", "3", "--height", "2", "--kernel", "1,-1", "--json",
                   "--depth", "16", "--build-dir", str(tmp_path)])
    report = json.loads(capsys.readouterr().out)
    assert status == 1
    assert report["result"] == "failed"
    assert report["counterexample"] == str(tmp_path / "counterexample.vcd")


@pytest.mark.parametrize("argv, message", [
    (["--depth", "0"], r"--depth: must be a positive number of cycles, not 0"),
    (["--width", "4"], r"--width and --height are required"),
    (["--width", "100", "--height", "100"], r"--width/--height: a frame of 10000 stream "
                                            r"positions is too large to prove"),
])
def test_cli_bad_options(argv, message, tmp_path, capsys):
    base = ["prove", "--kernel", "sobel-x", "--build-dir", str(tmp_path)]
    if "--width" not in argv:
        base += ["--width", "4", "--height", "4"]
    status = main(base + argv)
    err = capsys.readouterr().err
    assert status == 2
    assert re.match(rf"convhw: error: {message}", err), err
    assert len(err.strip().splitlines()) == 1


def test_cli_missing_tool(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SBY", str(tmp_path / "no-sby"))
    status = main(["prove", "--width", "4", "--height", "4", "--kernel", "sobel-x",
                   "--build-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert "pip install 'convhw[formal]'" in err and len(err.strip().splitlines()) == 1
