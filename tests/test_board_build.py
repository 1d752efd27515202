"""Bitstreams for both boards, built the way ``python -m boards.<board> build`` builds them.

Each build runs Yosys and nextpnr (YoWASP) once, on the boards' default spec (runtime 3x3
coefficients, "same" padding, 128x128 frames), and once more for the iCEBreaker on a folded
runtime-weight layer and on the digits network, and checks that the design fits and meets
timing at the board clock.
"""

import json
import os

import pytest

from boards.icebreaker import ICEBREAKER
from boards.ulx3s import ULX3S
from convhw.board.build import NAME, BuildError, BuildResult, main, program_board
from convhw.board.top import BoardTop
from convhw.spec import ConvSpec


def report(build_dir):
    with open(os.path.join(build_dir, f"{NAME}.report.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("board, bitstream, clock_mhz, dsp", [
    (ICEBREAKER, "bin", 12.0, "ICESTORM_DSP"),
    (ULX3S, "bit", 25.0, "MULT18X18D"),
])
def test_default_bitstream_fits_and_meets_timing(board, bitstream, clock_mhz, dsp, tmp_path,
                                                 capsys):
    build_dir = str(tmp_path / board.name)
    assert main(board, ["build", "--build-dir", build_dir]) == 0
    printed = capsys.readouterr().out
    path = os.path.join(build_dir, f"{NAME}.{bitstream}")
    assert os.path.getsize(path) > 10_000
    assert "board clock: met" in printed and path in printed
    nextpnr = report(build_dir)
    for name, entry in nextpnr["utilization"].items():
        assert entry["used"] <= entry["available"], name
    assert nextpnr["utilization"][dsp]["used"] > 0          # runtime taps use DSP blocks
    clocks = nextpnr["fmax"].values()
    assert clocks and all(clock["achieved"] >= clock_mhz for clock in clocks)


def test_bad_spec_option_fails_before_any_tool_runs(tmp_path, capsys):
    assert main(ICEBREAKER, ["build", "--build-dir", str(tmp_path), "--stride", "0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("python -m boards.icebreaker: error: --stride")
    assert not os.listdir(tmp_path)


def test_too_fast_baud_is_refused(tmp_path, capsys):
    assert main(ICEBREAKER, ["build", "--build-dir", str(tmp_path), "--baud", "4000000"]) == 2
    assert "'baud' 4000000 is too fast for a 1.2e+07 Hz clock" in capsys.readouterr().err


def test_program_without_the_programmer_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("ICEPROG", "no-such-iceprog")
    result = BuildResult(board="icebreaker", bitstream=str(tmp_path / f"{NAME}.bin"),
                         clock_mhz=12, fmax_mhz=30, build_dir=str(tmp_path))
    with pytest.raises(BuildError, match=r"^no-such-iceprog not found: install it \(e\.g\. "
                                         r"apt-get install fpga-icestorm\) or set ICEPROG"):
        program_board(ICEBREAKER, result)


def test_the_docs_example_of_another_board_gives_a_build_plan():
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "boards.md")) as f:
        docs = f.read()
    section = docs[docs.index("## Another amaranth-boards platform"):]
    start = section.index("```python\n") + len("```python\n")
    code = section[start:section.index("\n```", start)]
    namespace = {"__name__": "boards.hx8k"}
    exec(code, namespace)
    board = namespace["HX8K"]
    spec = ConvSpec(width=64, height=48, kernel=[[1, 0, -1], [2, 0, -2], [1, 0, -1]],
                    padding="same")
    top = BoardTop(board, board.fit(spec), baud=board.baud, fifo_depth=board.fifo_for(spec))
    plan = board.platform().build(top, name=NAME, do_build=False)
    assert f"{NAME}.il" in plan.files and f"{NAME}.pcf" in plan.files
    assert "set_io uart_0__rx__io B10" in plan.files[f"{NAME}.pcf"]


def test_missing_tool_is_named_with_the_extra_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEXTPNR_ICE40", "no-such-nextpnr")
    assert main(ICEBREAKER, ["build", "--build-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "NEXTPNR_ICE40='no-such-nextpnr' is not an executable" in error


def test_timing_not_met_fails_clearly(monkeypatch, tmp_path, capsys):
    import convhw.board.build as build

    def slow_build(board, spec, **options):
        return BuildResult(board=board.name, bitstream=str(tmp_path / f"{NAME}.bin"),
                           clock_mhz=12.0, fmax_mhz=9.5, utilization={"ICESTORM_LC": (10, 20)},
                           build_dir=str(tmp_path))

    monkeypatch.setattr(build, "build_board", slow_build)
    assert main(ICEBREAKER, ["build", "--build-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "Fmax 9.5 MHz at a 12 MHz board clock: NOT MET" in captured.out
    assert "error: timing NOT met: Fmax 9.5 MHz is below the 12 MHz board clock" in captured.err


def test_folded_runtime_layer_bitstream_for_the_icebreaker(tmp_path, capsys):
    # A 3 -> 2 channel layer, runtime weights folded to 3 multipliers (fold 18): 3 DSP blocks.
    build_dir = str(tmp_path / "layer")
    assert main(ICEBREAKER, ["build", "--build-dir", build_dir, "--runtime-coeffs",
                             "--kernel-size", "3x3", "--in-channels", "3", "--out-channels", "2",
                             "--pe", "1", "--simd", "3", "--width", "32", "--height", "32"]) == 0
    printed = capsys.readouterr().out
    assert "3->2 channels" in printed and "board clock: met" in printed
    assert os.path.getsize(os.path.join(build_dir, f"{NAME}.bin")) > 10_000
    nextpnr = report(build_dir)
    assert nextpnr["utilization"]["ICESTORM_DSP"]["used"] == 3
    assert all(clock["achieved"] >= 12.0 for clock in nextpnr["fmax"].values())


def test_digits_network_bitstream_for_the_icebreaker(tmp_path, capsys):
    """The digits classifier behind the iCEBreaker's UART: every layer 1x1 for the line rate,
    packed into at most 80% of the UP5K's cells (nextpnr does not place much more), and timing
    met at 12 MHz."""
    pytest.importorskip("onnx")
    build_dir = str(tmp_path / "digits")
    assert main(ICEBREAKER, ["build", "--build-dir", build_dir,
                             "--model", "sim/models/digits.onnx"]) == 0
    printed = capsys.readouterr().out
    assert "folding conv1 1x1, conv2 1x1, dense 1x1 (3 multipliers)" in printed
    assert "board clock: met" in printed
    assert os.path.getsize(os.path.join(build_dir, f"{NAME}.bin")) > 10_000
    cells = report(build_dir)["utilization"]["ICESTORM_LC"]
    assert cells["used"] <= 0.8 * cells["available"]
    assert report(build_dir)["utilization"]["ICESTORM_DSP"]["used"] == 3


def test_design_beyond_what_nextpnr_places_fails_before_placement(tmp_path, capsys):
    """The digits network at 8 multipliers behind the UART packs into about 91% of the UP5K:
    the build says so after packing (seconds), instead of letting nextpnr search for hours."""
    pytest.importorskip("onnx")
    build_dir = tmp_path / "digits8"
    assert main(ICEBREAKER, ["build", "--build-dir", str(build_dir), "--model",
                             "sim/models/digits.onnx", "--max-multipliers", "8"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("python -m boards.icebreaker: error: the design packs into ")
    assert ("of the icebreaker's 5280 logic cells" in error
            and "nextpnr does not place much beyond 80% of them: fold further "
                "(--max-multipliers N) or build a smaller spec" in error)
    assert error.count("\n") == 1
    assert not list(build_dir.glob(f"{NAME}.asc")) and not list(build_dir.glob(f"{NAME}.bin"))
