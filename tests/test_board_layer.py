# amaranth: UnusedElaboratable=no
"""Multi-channel layers on the board design: the protocol's bytes of a layer, round trips
through the whole simulated design (constant weights, folded runtime weights, a colour
depthwise filter) and ``convhw board run`` with (C, H, W) inputs and ``--weights``."""

import json

import numpy as np
import pytest

from convhw.board import protocol
from convhw.board.accelerator import UARTAccelerator
from convhw.board.host import BoardClient
from convhw.board.protocol import Status
from convhw.board.transport import SimulatedSerial
from convhw.cli import main
from convhw.golden import run_spec
from convhw.kernels import parse_kernel
from convhw.spec import ConvSpec
from convhw.stimulus import coefficient_writes, pack_beats

CLK, BAUD, TIMEOUT = 1e6, 250_000, 300e-6        # 4 clocks per bit, as tests/test_board.py


def board(spec):
    dut = UARTAccelerator(spec, clk_freq=CLK, baud=BAUD, timeout=TIMEOUT)
    port = SimulatedSerial(dut, clk_freq=CLK, baud=BAUD, timeout=0.05)
    return dut, port, BoardClient(port, spec, timeout=TIMEOUT)


def feature_map(spec, seed):
    lo, hi = spec.pixel_range
    return np.random.default_rng(seed).integers(lo, hi, size=spec.input_shape, endpoint=True)


def check_frame(client, spec, frame, weights=None):
    result = client.run_frame(frame, weights)
    expected = run_spec(spec, frame, weights)
    assert result.output.shape == spec.output_shape
    np.testing.assert_array_equal(result.output, expected)
    assert result.status == Status.OK and result.ok
    return result


def test_layer_pixels_are_packed_beats_and_single_channel_bytes_are_unchanged():
    spec = ConvSpec(width=3, height=2, kernel_shape=(3, 3), in_channels=3, out_channels=2,
                    in_bits=5, in_signed=True, padding="same")
    frame = feature_map(spec, 1)
    assert protocol.pixel_bits(spec) == 15 and protocol.pixel_bytes(spec) == 2
    expected = b"".join(beat.to_bytes(2, "little") for beat in pack_beats(spec, frame))
    assert protocol.encode_pixels(spec, frame) == expected
    plain = ConvSpec(width=3, height=2, kernel=[[1, 2], [3, 4]])
    image = feature_map(plain, 2)
    assert protocol.encode_pixels(plain, image) == bytes(image.reshape(-1).astype(np.uint8))
    assert protocol.spec_id(plain) == protocol.spec_id(ConvSpec(width=3, height=2,
                                                                kernel=[[1, 2], [3, 4]]))
    # One-channel layers keep the single value's bytes; results unpack channel by channel.
    one = ConvSpec(width=3, height=2, kernel=[[1, 2], [3, 4]], in_channels=1)
    assert protocol.encode_pixels(one, image[np.newaxis]) == protocol.encode_pixels(plain, image)
    assert protocol.spec_id(one) != protocol.spec_id(plain)
    out = np.array([[[-3, 7]], [[100, -128]]])          # (Cout 2, 1, 2), 8-bit
    data = bytes([0xFD, 0x64, 0x07, 0x80])
    small = ConvSpec(width=2, height=1, kernel_shape=(1, 1), in_channels=1, out_channels=2,
                     out_bits=8, shift=0)
    np.testing.assert_array_equal(protocol.decode_results(small, data), out)


def test_folded_layer_header_carries_every_address_in_order():
    spec = ConvSpec(width=4, height=3, kernel_shape=(3, 3), in_channels=2, out_channels=2,
                    pe=1, simd=5, coeff_bits=6, padding="same")
    weights = np.random.default_rng(0).integers(-32, 31, size=(2, 2, 3, 3))
    values = protocol.coefficient_values(spec, weights)
    assert len(values) == spec.coefficient_addresses > spec.coefficient_count
    placed = dict(coefficient_writes(spec, weights))
    assert values.tolist() == [placed.get(addr, 0) for addr in range(len(values))]
    header = protocol.encode_header(spec, weights)
    assert len(header) == protocol.header_length(spec) == \
        protocol.HEADER_PREFIX_LEN + spec.coefficient_addresses + 2
    with pytest.raises(ValueError, match=r"weights \(2, 2, 3, 3\)"):
        protocol.encode_header(spec, weights[0])


def test_constant_layer_three_to_two_channels_with_bias_and_relu():
    weights = np.random.default_rng(5).integers(-4, 4, size=(2, 3, 3, 3), endpoint=True)
    spec = ConvSpec(width=5, height=4, weights=weights.tolist(), bias=[-300, 50], relu=True,
                    padding="same", shift=2, out_bits=9)
    dut, port, client = board(spec)
    with port:
        for seed in (1, 2):
            check_frame(client, spec, feature_map(spec, seed))
        assert port.line_errors == []


def test_folded_runtime_layer_two_weight_sets():
    spec = ConvSpec(width=4, height=4, kernel_shape=(3, 3), in_channels=2, out_channels=3,
                    pe=1, simd=6, coeff_bits=6, stride=(1, 2), padding=1)
    assert spec.folded
    dut, port, client = board(spec)
    rng = np.random.default_rng(7)
    with port:
        for seed in (3, 4):
            weights = rng.integers(-32, 31, size=(3, 2, 3, 3), endpoint=True)
            check_frame(client, spec, feature_map(spec, seed), weights)


def _colour_png(tmp_path, rng):
    from PIL import Image
    rgb = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    path = tmp_path / "colour.png"
    Image.fromarray(rgb, "RGB").save(path)
    return rgb.transpose(2, 0, 1).astype(np.int64), str(path)


def test_cli_colour_depthwise_filter_from_a_png(tmp_path, capsys):
    frame, path = _colour_png(tmp_path, np.random.default_rng(11))
    output = tmp_path / "out.npy"
    assert main(["board", "run", "--port", "sim", "--input", path, "--runtime-coeffs",
                 "--kernel-size", "3x3", "--groups", "3", "--kernel", "sobel-x",
                 "--output", str(output), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["match"] and report["status"] == "OK" and report["out_shape"] == [3, 5, 6]
    spec = ConvSpec(width=6, height=5, kernel_shape=(3, 3), in_channels=3, groups=3,
                    padding="same")
    weights = np.broadcast_to(parse_kernel("sobel-x"), (3, 1, 3, 3))
    np.testing.assert_array_equal(np.load(output), run_spec(spec, frame, weights))


def test_cli_folded_runtime_weights_and_constant_weights_from_npy(tmp_path, capsys):
    rng = np.random.default_rng(12)
    frame = rng.integers(0, 256, size=(2, 4, 5))
    weights = rng.integers(-8, 8, size=(2, 2, 3, 3))
    np.save(tmp_path / "x.npy", frame)
    np.save(tmp_path / "w.npy", weights)
    common = ["board", "run", "--port", "sim", "--input", str(tmp_path / "x.npy"),
              "--weights", str(tmp_path / "w.npy"), "--json"]
    for extra in (["--runtime-coeffs", "--pe", "1", "--simd", "9"], []):
        output = tmp_path / "y.npy"
        assert main(common + extra + ["--output", str(output)]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["match"] and report["out_shape"] == [2, 4, 5]
        spec = ConvSpec(width=5, height=4, weights=weights.tolist(), padding="same")
        np.testing.assert_array_equal(np.load(output), run_spec(spec, frame))
