"""``convhw info --model``: the layers of an ONNX model, their balanced folding, the errors."""

import json
import re

import pytest

from convhw.cli import main

pytest.importorskip("onnx")

DIGITS = "sim/models/digits.onnx"


def run_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_info_model_table(capsys):
    status, out, err = run_cli(capsys, "info", "--model", DIGITS, "--clock-mhz", 50)
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == (f"model {DIGITS}: input 1x8x8 -> output 10, 4 layers; budget 8 "
                        f"multipliers (the DSP blocks of ice40-up5k, the default target)")
    assert lines[1].split()[:4] == ["layer", "kind", "in", "->"]
    names = [line.split()[0] for line in lines[3:7]]
    assert names == ["conv1", "pool1", "conv2", "dense"]
    assert lines[4].split()[:6] == ["pool1", "max-pool", "4x8x8", "->", "4x4x4", "-"]
    cycles = {line.split()[0]: int(line.split()[-4]) for line in lines[3:7]}
    assert lines[-2].startswith(f"bottleneck: {max(cycles, key=cycles.get)} (")
    assert lines[-1].startswith("at 50 MHz: ") and lines[-1].endswith(" inferences/s")


def test_info_model_json(capsys, tmp_path):
    status, out, _ = run_cli(capsys, "info", "--model", DIGITS, "--target", "ecp5-25k",
                             "--json", "--clock-mhz", 100)
    facts = json.loads(out)
    assert status == 0 and facts["max_multipliers"] == 28 and facts["multipliers"] <= 28
    layers = {layer["name"]: layer for layer in facts["layers"]}
    assert facts["cycles_per_frame"] == max(layer["cycles"] for layer in facts["layers"])
    assert facts["bottleneck"] in layers
    assert facts["inferences_per_second"] == pytest.approx(1e8 / facts["cycles_per_frame"])
    assert layers["conv1"]["weight_bits"] == 4 * 9 * 8
    assert layers["conv1"]["line_buffer_bits"] == 2 * 8 * 1 * 8
    assert layers["pool1"]["pe"] is None and layers["pool1"]["multipliers"] == 0
    assert facts["weight_bits"] == sum(layer["weight_bits"] for layer in facts["layers"])

    overrides = tmp_path / "folding.json"
    overrides.write_text(json.dumps({"conv2": {"pe": 4, "simd": 2}}))
    status, out, _ = run_cli(capsys, "info", "--model", DIGITS, "--json", "--folding",
                             overrides, "--max-multipliers", 12)
    layers = {layer["name"]: layer for layer in json.loads(out)["layers"]}
    assert status == 0 and (layers["conv2"]["pe"], layers["conv2"]["simd"]) == (4, 2)
    assert layers["conv2"]["overridden"] and not layers["conv1"]["overridden"]


@pytest.mark.parametrize("args, message", [
    (["--model", "tests/missing.onnx"],
     r"--model: cannot read 'tests/missing.onnx': No such file or directory"),
    (["--model", "README.md"], r"--model: README.md is not an ONNX model \(it does not parse "
                               r"as one\)"),
    (["--model", DIGITS, "--max-multipliers", 2],
     r"--max-multipliers: the layers need at least 3 multipliers \(pe x simd summed over 3 "
     r"layers at their most folded\), more than the budget 'max_multipliers' 2"),
    (["--model", DIGITS, "--max-multipliers", 0],
     r"--max-multipliers: must be a positive integer, not 0"),
    (["--model", DIGITS, "--target", "ice40-hx8k"],
     r"--target: ice40-hx8k has no DSP blocks; give the multiplier budget with "
     r"--max-multipliers N \(multipliers built from logic\)"),
    (["--model", DIGITS, "--clock-mhz", 0], r"--clock-mhz: must be a positive number of MHz, "
                                            r"not 0.0"),
    (["--kernel", "sobel-x", "--width", 8, "--height", 8, "--max-multipliers", 3],
     r"--max-multipliers: goes with --model"),
])
def test_info_model_errors(capsys, args, message):
    status, out, err = run_cli(capsys, "info", *args)
    assert status == 2 and out == ""
    assert err.count("\n") == 1
    assert re.fullmatch(f"convhw: error: {message}\n", err), err


@pytest.mark.parametrize("content, message", [
    ('{"conv9": {"pe": 2}}', r"--folding: folding override for unknown layer 'conv9'; layers: "
                             r"conv1, pool1, conv2, dense"),
    ('{"pool1": {"pe": 2}}', r"--folding: folding override for layer 'pool1' \(max-pool\), "
                             r"which does not fold; layers that fold: conv1, conv2, dense"),
    ('{"conv2": {"pe": 13}}', r"--folding: folding override for layer 'conv2': 'pe' must be "
                              r"from 1 to 8 \(the output channels\), not 13"),
    ('{"conv2": 3}', r"--folding: folding override for layer 'conv2' must be an object with "
                     r"'pe' and/or 'simd', not 3"),
    ('[', r"--folding: .*folding.json is not valid JSON: .*"),
])
def test_info_folding_errors(capsys, tmp_path, content, message):
    path = tmp_path / "folding.json"
    path.write_text(content)
    status, out, err = run_cli(capsys, "info", "--model", DIGITS, "--folding", path)
    assert status == 2 and out == ""
    assert re.fullmatch(f"convhw: error: {message}\n", err), err


def test_info_unsupported_model(capsys, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], name="softmax")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])])
    path = tmp_path / "soft.onnx"
    onnx.save(helper.make_model(graph), str(path))
    status, out, err = run_cli(capsys, "info", "--model", path)
    assert status == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"convhw: error: --model: {path}: ")
