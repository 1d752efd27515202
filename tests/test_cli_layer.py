"""The command line for CNN layers (issue 10, part 4), and negative numbers typed with a space.

``--weights``, ``--groups``, ``--bias``, ``--relu``, ``--in-channels``/``--out-channels``,
``--pe``/``--simd`` on ``simulate``, ``generate`` and ``info``; every bad input is one line and
exit status 2 naming the option (and the shapes).
"""

import json
import re

import numpy as np
import pytest

from convhw import ConvSpec
from convhw.cli import main
from convhw.golden import run_spec

from test_cli import axis_ports, run_cli, verilog_ports


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "w": rng.integers(-20, 21, size=(4, 3, 3, 3)),
        "wg": rng.integers(-20, 21, size=(6, 2, 3, 2)),
        "b": rng.integers(-300, 300, size=4),
        "x": rng.integers(0, 256, size=(3, 6, 7)),
        "x8": rng.integers(0, 256, size=(8, 6, 7)),
        "gray": rng.integers(0, 256, size=(6, 7)),
        "w3d": rng.integers(-5, 5, size=(4, 3, 3)),
        "wfloat": rng.random((4, 3, 3, 3)),
        "b5": np.arange(5),
    }
    for name, array in arrays.items():
        np.save(tmp_path / f"{name}.npy", array)
    return tmp_path, arrays


def test_simulate_layer_writes_channels_and_json(files, capsys):
    tmp, arrays = files
    status, out, _ = run_cli(capsys, "simulate", "--input", tmp / "x.npy", "--weights",
                             tmp / "w.npy", "--bias", tmp / "b.npy", "--relu", "--shift", "4",
                             "--out-bits", "8", "--padding", "same", "--pe", "3", "--simd", "5",
                             "--frames", "2", "--stall", "0.3", "--output", tmp / "y.npy",
                             "--json")
    assert status == 0
    report = json.loads(out)
    assert report["match"] and report["out_shape"] == [4, 6, 7]
    assert {k: report[k] for k in ("in_channels", "out_channels", "pe", "simd",
                                   "cycles_per_output", "multipliers")} == \
        {"in_channels": 3, "out_channels": 4, "pe": 3, "simd": 5, "cycles_per_output": 2 * 6,
         "multipliers": 15}
    y = np.load(tmp / "y.npy")
    spec = ConvSpec(width=7, height=6, weights=arrays["w"], bias=arrays["b"], relu=True,
                    shift=4, out_bits=8, padding="same")
    assert y.shape == (2, 4, 6, 7)
    assert (y[0] == run_spec(spec, arrays["x"])).all()


def test_simulate_runtime_layer_and_depthwise_kernel(files, capsys):
    tmp, _ = files
    status, out, _ = run_cli(capsys, "simulate", "--input", tmp / "x.npy", "--weights",
                             tmp / "w.npy", "--runtime-coeffs", "--pe", "2", "--simd", "4",
                             "--json")
    assert status == 0 and json.loads(out)["match"]
    status, out, _ = run_cli(capsys, "simulate", "--input", tmp / "x.npy", "--kernel",
                             "gaussian3", "--shift", "4", "--padding", "same", "--output",
                             tmp / "blur.npy", "--json")
    assert status == 0 and json.loads(out)["out_channels"] == 3
    assert np.load(tmp / "blur.npy").shape == (3, 6, 7)
    # Runtime weights of a depthwise layer loaded from one --kernel.
    status, out, _ = run_cli(capsys, "simulate", "--input", tmp / "x.npy", "--kernel",
                             "-1,0,1;-2,0,2;-1,0,1", "--runtime-coeffs", "--json")
    assert status == 0 and json.loads(out)["match"]


def test_simulate_gray_input_is_one_channel(files, capsys):
    tmp, _ = files
    np.save(tmp / "w1.npy", np.ones((2, 1, 3, 3), dtype=int))
    status, out, _ = run_cli(capsys, "simulate", "--input", tmp / "gray.npy", "--weights",
                             tmp / "w1.npy", "--json")
    assert status == 0 and json.loads(out)["out_shape"] == [2, 4, 5]


def test_generate_layer_ports(files, capsys):
    tmp, _ = files
    status, _, _ = run_cli(capsys, "generate", "-o", tmp / "layer.v", "--width", "16",
                           "--height", "8", "--runtime-coeffs", "--kernel-size", "3x3",
                           "--in-channels", "8", "--out-channels", "16", "--relu", "--shift",
                           "8", "--out-bits", "8", "--pe", "8", "--simd", "1")
    assert status == 0
    text = (tmp / "layer.v").read_text()
    spec = ConvSpec(width=16, height=8, kernel_shape=(3, 3), in_channels=8, out_channels=16,
                    relu=True, shift=8, out_bits=8, pe=8, simd=1)
    expected = axis_ports(8 * 8, 16 * 8)
    expected.update({"coef_we": ("input", 1), "coef_addr": ("input", 11),
                     "coef_data": ("input", 8)})
    assert spec.coefficient_addresses == 144 << 3
    assert verilog_ports(text, "conv2d") == expected
    assert "144 cycles per output position (pe=8, simd=1)" in text


@pytest.mark.parametrize("argv, message", [
    (["--weights", "{tmp}/w3d.npy"], r"^convhw: error: --weights: .*w3d\.npy must hold \(Cout, "
                                     r"Cin/groups, KH, KW\) weights, not a 3-D array of shape "
                                     r"\(4, 3, 3\)$"),
    (["--weights", "{tmp}/wfloat.npy"], r"^convhw: error: --weights: .*must hold integers, not "
                                        r"float64 values \(shape \(4, 3, 3, 3\)\)$"),
    (["--weights", "{tmp}/w.npy", "--groups", "3"],
     r"^convhw: error: --input: has 3 channel\(s\) but --weights of shape \(4, 3, 3, 3\) with "
     r"--groups 3 take 9$"),
    (["--weights", "{tmp}/wg.npy", "--groups", "4", "--input", "{tmp}/x8.npy"],
     r"^convhw: error: --groups: 'groups' 4 must divide the output channels 6 \(weights shape "
     r"\(6, 2, 3, 2\)\)$"),
    (["--weights", "{tmp}/w.npy", "--in-channels", "4"],
     r"^convhw: error: --in-channels: 4 does not match --weights of shape \(4, 3, 3, 3\) with "
     r"--groups 1 \(3\)$"),
    (["--weights", "{tmp}/w.npy", "--bias", "{tmp}/b5.npy"],
     r"^convhw: error: --bias: 'bias' must have one value per output channel \(4\), not 5$"),
    (["--weights", "{tmp}/w.npy", "--pe", "5"],
     r"^convhw: error: --pe: 'pe' must be from 1 to 4 \(the output channels\), not 5$"),
    (["--weights", "{tmp}/w.npy", "--simd", "28"],
     r"^convhw: error: --simd: 'simd' must be from 1 to 27 \(the inputs of one output, "
     r"KH\*KW\*Cin/groups\), not 28$"),
    (["--weights", "{tmp}/w.npy", "--kernel", "box3"],
     r"^convhw: error: --weights: not with --kernel"),
    (["--kernel", "box3", "--out-channels", "2"],
     r"^convhw: error: --out-channels: takes --runtime-coeffs"),
])
def test_layer_errors_are_one_line(files, capsys, argv, message):
    tmp, _ = files
    argv = [a.format(tmp=tmp) for a in argv]
    if "--input" not in argv:
        argv += ["--input", str(tmp / "x.npy")]
    status, out, err = run_cli(capsys, "simulate", *argv)
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1, err
    assert re.match(message, err.strip()), err


@pytest.mark.parametrize("argv", [
    ["info", "--width", "8", "--height", "6", "--kernel", "-1,0,1;-2,0,2;-1,0,1"],
    ["info", "--width", "8", "--height", "6", "--kernel", "-1 0 1", "--json"],
    ["info", "--dims", "1", "--length", "9", "--kernel", "-1,2,-1"],
    ["generate", "-o", "-", "--width", "8", "--height", "6", "--kernel", "-1,-2;-3,-4"],
])
def test_negative_numbers_typed_with_a_space(argv, capsys):
    status, out, err = run_cli(capsys, *argv)
    assert status == 0, err


def test_negative_option_value_gets_its_own_error(capsys):
    status, _, err = run_cli(capsys, "info", "--width", "8", "--height", "6", "--kernel",
                             "box3", "--stride", "-1")
    assert status == 2
    assert err.strip() == "convhw: error: --stride: 'stride' must be >= 1, not -1"
