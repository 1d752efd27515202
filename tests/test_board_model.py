# amaranth: UnusedElaboratable=no
"""A network behind the UART: the digits classifier's chain on the simulated board design,
``convhw board run --model`` and ``python -m boards.<board> build --model`` (options)."""

import argparse
import json

import numpy as np
import pytest

pytest.importorskip("onnx")

from convhw.board import protocol                                       # noqa: E402
from convhw.board.accelerator import UARTAccelerator                    # noqa: E402
from convhw.board.host import BoardClient                               # noqa: E402
from convhw.board.protocol import Status                                # noqa: E402
from convhw.board.transport import SimulatedSerial                      # noqa: E402
from convhw.cli import main                                             # noqa: E402
from convhw.folding import balance_network                              # noqa: E402
from convhw.onnx import input_codes, read_model, run_network            # noqa: E402

DIGITS = "sim/models/digits.onnx"
CLK, BAUD, TIMEOUT = 1e6, 250_000, 300e-6


@pytest.fixture(scope="module")
def network():
    return read_model(DIGITS)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    data = load_digits()
    return data.images.astype(np.float32)[:, np.newaxis], data.target


def test_chain_protocol(network):
    board_chain = network.chain(balance_network(network, max_multipliers=8).foldings)
    host_chain = network.chain()
    # The folding changes no byte on the line: a host needs the model only.
    assert protocol.spec_id(board_chain) == protocol.spec_id(host_chain)
    other = network.chain()
    assert protocol.spec_id(other.replace(3, bias=[0] * 10)) != protocol.spec_id(host_chain)
    # One result per inference, after all 64 pixels; 10 9-bit scores in 12 bytes.
    assert protocol.pixels_needed(host_chain).tolist() == [64]
    assert protocol.window_pixels(host_chain) == 64
    assert protocol.pixel_bytes(host_chain) == 1 and protocol.result_bytes(host_chain) == 12
    assert protocol.header_prefix(host_chain)[3:7] == bytes([8, 0, 8, 0])


def test_pixels_needed_composes_layers():
    from convhw.chain import ChainSpec
    from convhw.spec import ConvSpec

    conv = ConvSpec(width=6, height=6, weights=np.ones((2, 1, 3, 3), int), padding=1,
                    out_bits=8, shift=4)
    pool = ConvSpec(width=6, height=6, operation="max-pool", kernel_shape=(2, 2),
                    in_channels=2, stride=2, in_bits=8, in_signed=True, out_bits=8)
    chain = ChainSpec([conv, pool])
    # Pool output (0, 0) needs conv outputs up to (1, 1), the 8th; that one needs the input
    # pixels up to (2, 2), the 15th (right padding reaches into the next row's start).
    inner = protocol.pixels_needed(conv)
    needed = protocol.pixels_needed(pool)
    assert needed[0] == 8 and inner[7] == 15
    assert protocol.pixels_needed(chain).tolist() == [inner[n - 1] for n in needed]
    assert protocol.pixels_needed(chain)[0] == 15


@pytest.mark.parametrize("build", ["fastest", "icebreaker"])
def test_digits_through_the_simulated_board(network, digits, build):
    """The chain at 8 multipliers, and the iCEBreaker build's (every layer 1x1, no link
    registers, small output queues in block RAM)."""
    images, labels = digits
    if build == "fastest":
        chain = network.chain(balance_network(network, max_multipliers=8).foldings)
    else:
        from convhw.board.defaults import board_model_from_args
        args = argparse.Namespace(model=DIGITS, max_multipliers=None, folding=None, baud=None)
        chain = board_model_from_args(args, build)[2]
        assert chain.multipliers == 3 and not any(chain.registered_links)
        assert chain.small_queues_in_block_ram
    dut = UARTAccelerator(chain, clk_freq=CLK, baud=BAUD, timeout=TIMEOUT)
    port = SimulatedSerial(dut, clk_freq=CLK, baud=BAUD, timeout=0.05)
    client = BoardClient(port, network.chain(), timeout=TIMEOUT)
    with port:
        for index in (0, 1):
            codes = input_codes(network, images[index])[0]
            result = client.run_frame(codes - network.input.zero_point)
            assert result.status == Status.OK and result.ok
            expected = run_network(network, images[index], codes=True) - \
                network.output.zero_point
            np.testing.assert_array_equal(result.output.reshape(-1), expected)
            assert int(np.argmax(expected)) == labels[index]
        assert port.line_errors == []


def test_board_folds_for_the_line_rate():
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from convhw.board.defaults import BOARD_CLOCKS, board_model_from_args, line_cycles
    assert BOARD_CLOCKS == {"icebreaker": ICEBreakerPlatform().default_clk_frequency,
                            "ulx3s": ULX3S_85F_Platform().default_clk_frequency}
    network = read_model(DIGITS)
    # 64 one-byte pixels of 10 bits at 2 Mbaud: 320 us, 3,840 cycles of the 12 MHz clock.
    assert line_cycles(network, "icebreaker") == 3840
    assert line_cycles(network, "icebreaker", 1_000_000) == 7680
    args = argparse.Namespace(model=DIGITS, max_multipliers=None, folding=None, baud=None)
    _, folding, _ = board_model_from_args(args, "icebreaker")
    fastest = balance_network(network, max_multipliers=8)
    assert folding.cycles_per_frame <= 3840 and folding.multipliers < fastest.multipliers
    # Each layer at its most folded (one multiplier) keeps up with the line here.
    assert folding.multipliers == 3 and folding.foldings == [(1, 1), None, (1, 1), (1, 1)]
    args.baud = 3_000_000             # 4 clocks a bit: 2,560 cycles, still enough
    assert board_model_from_args(args, "icebreaker")[1].cycles_per_frame <= 2560
    args.baud, args.max_multipliers = None, 8
    assert board_model_from_args(args, "icebreaker")[1].foldings == fastest.foldings


def _digit_png(tmp_path, image):
    from PIL import Image
    path = tmp_path / "digit.png"
    Image.fromarray(np.rint(image[0] * 255 / 16).astype(np.uint8), "L").save(path)
    return str(path)


def test_cli_classifies_a_png(tmp_path, capsys, digits):
    images, labels = digits
    path = _digit_png(tmp_path, images[5])
    assert main(["board", "run", "--port", "sim", "--model", DIGITS, "--input", path,
                 "--json", "--output", str(tmp_path / "scores.npy")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["class"] == labels[5] and report["match"] and report["status"] == "OK"
    scores = np.load(tmp_path / "scores.npy")
    assert scores.shape == (10,) and scores.dtype == np.float32
    assert report["scores"] == [float(v) for v in scores]


@pytest.mark.parametrize("args, message", [
    (["--kernel", "sobel-x"], "--kernel: not with --model (the model gives every layer)"),
    (["--max-multipliers", "2"], "--max-multipliers: the layers need at least 3 multipliers"),
    (["--input-shape"], None),
])
def test_cli_model_errors(tmp_path, capsys, args, message):
    if message is None:     # a picture of the wrong size
        from PIL import Image
        path = tmp_path / "big.png"
        Image.fromarray(np.zeros((9, 8), np.uint8), "L").save(path)
        status = main(["board", "run", "--port", "sim", "--model", DIGITS, "--input",
                       str(path)])
        err = capsys.readouterr().err
        assert status == 2 and err == ("convhw: error: --input: the picture is 1 channel(s) "
                                       "of 8x9 pixels; the model takes 1 channel(s) of 8x8\n")
        return
    png = tmp_path / "x.png"
    from PIL import Image
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(png)
    status = main(["board", "run", "--port", "sim", "--model", DIGITS, "--input", str(png),
                   *args])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith(f"convhw: error: {message}") and err.count("\n") == 1


def test_folding_options_go_with_model(tmp_path, capsys):
    assert main(["board", "run", "--port", "sim", "--input", "x.png", "--folding",
                 "f.json"]) == 2
    assert capsys.readouterr().err == "convhw: error: --folding: goes with --model\n"


def test_build_model_options_fail_before_any_tool(tmp_path, capsys):
    pytest.importorskip("amaranth_boards")
    from boards.icebreaker import ICEBREAKER
    from convhw.board.build import main as build_main

    assert build_main(ICEBREAKER, ["build", "--build-dir", str(tmp_path), "--model", DIGITS,
                                   "--stride", "2"]) == 2
    assert capsys.readouterr().err == ("python -m boards.icebreaker: error: --stride: not "
                                       "with --model (the model gives every layer)\n")
    assert build_main(ICEBREAKER, ["build", "--build-dir", str(tmp_path), "--model",
                                   "README.md"]) == 2
    assert "--model: README.md is not an ONNX model" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def _yosys_steps(plan):
    return [line.strip() for line in plan.files["convhw_board.ys"].splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_board_plans_synthesize_as_convhw_synth():
    """Amaranth's build script gets ``convhw synth``'s steps: memories marked ``no_rw_check``
    without collision logic (between the coarse steps and RAM mapping) and, for a chain on
    the iCE40, small clock enables in LUTs (the iCEBreaker digits build: 4,676 packed cells
    without them, 4,552 with them)."""
    pytest.importorskip("amaranth_boards")
    from boards.icebreaker import ICEBREAKER
    from boards.ulx3s import ULX3S
    from convhw.board.build import build_plan
    from convhw.board.defaults import board_model_from_args
    from convhw.spec import ConvSpec
    from convhw.toolchain.synth import DONT_CARE_COLLISIONS

    args = argparse.Namespace(model=DIGITS, max_multipliers=None, folding=None, baud=None)
    chain = board_model_from_args(args, "icebreaker")[2]
    synth = "synth_ice40 -dsp -dffe_min_ce_use 8"
    assert _yosys_steps(build_plan(ICEBREAKER, chain)[2]) == [
        "read_rtlil convhw_board.il",
        f"{synth} -run begin:map_ram -top convhw_board",
        DONT_CARE_COLLISIONS,
        f"{synth} -top convhw_board -run map_ram:",
        "write_json convhw_board.json"]
    filter_spec = ConvSpec(width=64, height=8, kernel=[[1, 0, -1]] * 3)
    steps = _yosys_steps(build_plan(ULX3S, filter_spec)[2])
    assert steps[1:4] == ["synth_ecp5 -run begin:map_ram -top convhw_board",
                          DONT_CARE_COLLISIONS, "synth_ecp5 -top convhw_board -run map_ram:"]
