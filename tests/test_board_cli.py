"""``convhw board run`` end to end, against the simulated board (``--port sim``)."""

import json

import numpy as np
import pytest

from convhw.cli import main
from convhw.golden import run_spec
from convhw.kernels import parse_kernel
from convhw.spec import ConvSpec


@pytest.fixture
def frame_file(tmp_path):
    frame = np.random.default_rng(3).integers(0, 256, size=(5, 7))
    path = tmp_path / "frame.npy"
    np.save(path, frame)
    return frame, str(path)


def test_default_runtime_board_with_sobel_matches(frame_file, tmp_path, capsys):
    frame, path = frame_file
    output = tmp_path / "out.npy"
    assert main(["board", "run", "--port", "sim", "--input", path, "--output", str(output),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["match"] and report["status"] == "OK" and report["out_shape"] == [5, 7]
    assert report["in_crc_ok"] and report["out_crc_ok"] and report["mismatches"] == 0
    spec = ConvSpec(width=7, height=5, kernel_shape=(3, 3), padding="same")
    np.testing.assert_array_equal(np.load(output), run_spec(spec, frame, parse_kernel("sobel-x")))


def test_constant_kernel_board_with_stride_prints_a_summary(frame_file, capsys):
    _, path = frame_file
    assert main(["board", "run", "--port", "sim", "--input", path, "--kernel", "1,2;3,4",
                 "--padding", "0", "--stride", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("board: MATCH with the golden model (0 of 6 results differ)")
    assert "status OK" in printed and "results/s" in printed


@pytest.mark.parametrize("argv, message", [
    (["--port", "/dev/no-such-port"], "cannot open serial port '/dev/no-such-port'"),
    (["--port", "sim", "--stride", "0"], "--stride"),
    (["--port", "sim", "--in-bits", "4"], "--input: pixel values must lie in 0..15"),
    (["--port", "sim", "--timeout", "0"], "--timeout: must be a positive number"),
])
def test_bad_options_exit_2_with_one_line(frame_file, capsys, argv, message):
    _, path = frame_file
    assert main(["board", "run", "--input", path] + argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("convhw: error: ") and message in error
    assert error.count("\n") == 1
