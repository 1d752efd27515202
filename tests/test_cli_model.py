"""``--model M.onnx`` on ``generate``, ``simulate`` and ``synth`` (issue 11, part 4): the whole
network's chain; ``simulate`` quantizes the model's float input as its QuantizeLinear does
(integers are codes), writes what onnxruntime returns, checks every output against the golden
model and reports cycles and inferences per second. Bad input is one line, exit status 2.
"""

import json
import os

import numpy as np
import onnx
import pytest

from convhw import fastsim
from convhw.fastsim import model as fastsim_model
from convhw.onnx import input_codes, read_model

from onnx_models import quantized, random_input, run_onnxruntime
from test_cli import run_cli

DIGITS = os.path.join(os.path.dirname(__file__), "..", "sim", "models", "digits.onnx")
needs_engine = pytest.mark.skipif(not fastsim.available(), reason=str(fastsim_model._missing()))


@pytest.fixture(scope="module")
def dense_model(tmp_path_factory):
    """The small ``dense`` test model (Conv, Clip, MaxPool, MatMul, Gemm) in a file, and an
    input batch."""
    model, shape = quantized("dense", "qdq", "uint8", "int8", True)
    folder = tmp_path_factory.mktemp("model")
    path = folder / "dense.onnx"
    onnx.save(model, str(path))
    x = random_input(shape, 3, seed=8)
    np.save(folder / "x.npy", x)
    np.save(folder / "x1.npy", x[0])
    return model, path, folder, x


def test_simulate_model_pysim_writes_onnxruntime_output(dense_model, capsys):
    model, path, folder, x = dense_model
    out_path = folder / "y.npy"
    status, out, err = run_cli(capsys, "simulate", "--model", path, "--input", folder / "x.npy",
                               "--output", out_path, "--stall", 0.3, "--clock-mhz", 50)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "3 inference(s) (1, 8, 8) -> (5,), 4 layers, engine pysim, stall 0.3"
    assert lines[1].startswith("folding: conv1 pe=")
    assert lines[2].startswith("cycles: ") and "per inference back to back" in lines[2]
    assert lines[3].startswith("inferences per second: ") and lines[3].endswith(
        " at 50 MHz (given)")
    assert "match: yes, bit-exact" in lines
    y = np.load(out_path)
    expected = run_onnxruntime(model, x)
    assert y.shape == expected.shape == (3, 5) and y.dtype == expected.dtype
    np.testing.assert_array_equal(y, expected)


def test_simulate_model_one_inference_json(dense_model, capsys):
    model, path, folder, x = dense_model
    out_path = folder / "y1.npy"
    status, out, err = run_cli(capsys, "simulate", "--model", path, "--input",
                               folder / "x1.npy", "--output", out_path, "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["match"] and report["inferences"] == 1 and report["errors"] == []
    assert report["cycles_per_inference"] == report["cycles"]
    from convhw.folding import balance_network
    folding = balance_network(read_model(model), max_multipliers=8)   # the UP5K's DSPs
    assert report["folding"] == folding.to_dict()
    assert report["bottleneck_cycles_per_inference"] == folding.cycles_per_frame
    assert report["inferences_per_second"] is None and report["written"] == [str(out_path)]
    y = np.load(out_path)
    assert y.shape == (5,)
    np.testing.assert_array_equal(y, run_onnxruntime(model, x[:1])[0])


def test_simulate_model_integer_input_is_codes(dense_model, capsys):
    model, path, folder, x = dense_model
    codes = input_codes(read_model(model), x).astype(np.uint8)
    np.save(folder / "codes.npy", codes)
    status, out, err = run_cli(capsys, "simulate", "--model", path, "--input",
                               folder / "codes.npy", "--output", folder / "yc.npy", "--json")
    assert status == 0, err
    np.testing.assert_array_equal(np.load(folder / "yc.npy"), run_onnxruntime(model, x))


@needs_engine
def test_simulate_digits_fast(tmp_path, capsys):
    from sklearn.datasets import load_digits

    x = load_digits().images[:40].astype(np.float32)[:, np.newaxis]
    np.save(tmp_path / "x.npy", x)
    status, out, err = run_cli(capsys, "simulate", "--model", DIGITS, "--input",
                               tmp_path / "x.npy", "--output", tmp_path / "y.npy",
                               "--backend", "fast", "--json", "--clock-mhz", 60)
    assert status == 0, err
    report = json.loads(out)
    assert report["match"] and report["engine"] == "verilator" and report["inferences"] == 40
    assert report["inferences_per_second"] == round(60e6 / report["cycles_per_inference"], 1)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"),
                                  run_onnxruntime(onnx.load(DIGITS), x))


def test_generate_model(dense_model, capsys):
    model, path, folder, _ = dense_model
    target = folder / "net.v"
    status, out, err = run_cli(capsys, "generate", "--model", path, "-o", target)
    assert status == 0 and out == ""
    from convhw.folding import balance_network
    chain = read_model(model).chain(balance_network(read_model(model), max_multipliers=8).foldings)
    assert err.strip() == (f"wrote {target}: module convnet, {chain.in_bits}-bit in, "
                           f"{chain.out_bits}-bit out, 4 layers, {chain.cycles_per_frame} "
                           f"cycles per inference")
    text = target.read_text()
    assert "a chain of 4 streaming layers" in text.splitlines()[0]
    assert "module convnet(" in text


@pytest.mark.parametrize("argv, message", [
    (["generate", "-o", "-", "--model", "{model}", "--kernel", "box3"],
     "--kernel: not with --model (the model gives every layer)"),
    (["generate", "-o", "-", "--model", "{model}", "--width", "8"],
     "--width: not with --model (the model gives every layer)"),
    (["synth", "--target", "ice40-up5k", "--model", "{model}", "--pe", "2"],
     "--pe: not with --model (the model gives every layer)"),
    (["generate", "-o", "-", "--model", "{folder}/missing.onnx"],
     "--model: cannot read '{folder}/missing.onnx'"),
    (["generate", "-o", "-", "--model", "{folder}/x.npy"],
     "--model: {folder}/x.npy is not an ONNX model (it does not parse as one)"),
    (["simulate", "--model", "{model}", "--input", "{folder}/x.npy", "--frames", "2"],
     "--frames: not with --model (the inferences are the input's batch N)"),
    (["simulate", "--model", "{model}", "--input", "{folder}/x.npy", "--output", "y.png"],
     "--output: with --model, a .npy file (the model's output), not 'y.png'"),
    (["simulate", "--model", "{model}", "--input", "{folder}/bad.npy"],
     "--input: input of shape (2, 8, 8) does not fit the network's input (N, 1, 8, 8) or "
     "(1, 8, 8)"),
    (["simulate", "--model", "{model}", "--input", "{folder}/x.npy", "--clock-mhz", "0"],
     "--clock-mhz: must be a positive number of MHz, not 0.0"),
    (["simulate", "--input", "{folder}/x.npy", "--kernel", "box3", "--clock-mhz", "5"],
     "--clock-mhz: goes with --model"),
    (["generate", "-o", "-", "--kernel", "box3", "--width", "4", "--height", "4",
      "--max-multipliers", "3"], "--max-multipliers: goes with --model"),
    (["generate", "-o", "-", "--model", "{model}", "--max-multipliers", "1"],
     "--max-multipliers: the layers need at least 6 multipliers"),
])
def test_model_errors(dense_model, capsys, argv, message):
    _, path, folder, _ = dense_model
    np.save(folder / "bad.npy", np.zeros((2, 8, 8), np.float32))
    argv = [a.format(model=path, folder=folder) for a in argv]
    status, out, err = run_cli(capsys, *argv)
    assert status == 2
    assert err.startswith(f"convhw: error: {message.format(folder=folder)}")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
