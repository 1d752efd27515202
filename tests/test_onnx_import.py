"""The integer graph an import produces: layers, numbers, and the ConvSpec of each layer."""

import numpy as np
import pytest
from onnx import numpy_helper

from convhw.golden import run_spec
from convhw.onnx import (ConvLayer, MaxPoolLayer, AveragePoolLayer, Quantization, input_codes,
                         multiplier, read_model, run_layer)

from onnx_models import quantized, random_input


def _initializers(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_conv_layer_numbers():
    model, shape = quantized("conv_attributes", "qoperator", "uint8", "uint8", True)
    network = read_model(model)
    inits = _initializers(model)
    conv_nodes = [n for n in model.graph.node if n.op_type == "QLinearConv"]
    assert len(network.layers) == len(conv_nodes) == 3
    assert network.input_shape == shape
    for layer, node in zip(network.layers, conv_nodes):
        x_s, x_z, w, w_s, w_z, y_s, y_z = (inits[name] for name in node.input[1:8])
        assert isinstance(layer, ConvLayer) and layer.kind == "conv"
        assert layer.input == Quantization(float(x_s), int(x_z), "uint8")
        assert layer.output == Quantization(float(y_s), int(y_z), "uint8")
        np.testing.assert_array_equal(
            layer.weights, w.astype(np.int64) - w_z.astype(np.int64).reshape(-1, 1, 1, 1))
        np.testing.assert_array_equal(layer.multipliers, multiplier(x_s, w_s, y_s))
        bias = inits[node.input[8]] if len(node.input) > 8 else np.zeros(len(w), np.int32)
        np.testing.assert_array_equal(layer.bias, bias)
        assert layer.clamp == (0 - int(y_z), 255 - int(y_z)) or layer.clamp[0] == 0
    first, second, third = network.layers
    assert (first.in_shape, first.out_shape) == ((3, 11, 9), (6, 6, 8))
    assert first.stride == (2, 1) and first.padding == ((1, 2), (0, 1))
    assert second.groups == 3 and second.dilation == (2, 1)
    assert second.padding == ((2, 2), (1, 0)) and second.out_shape == (6, 6, 8)
    assert third.kernel_shape == (1, 1) and third.clamp[0] == 0      # the removed Relu
    assert [layer.in_shape for layer in network.layers[1:]] == \
        [layer.out_shape for layer in network.layers[:-1]]


def test_pool_and_dense_layers():
    network = read_model(quantized("pooling", "qdq", "int8", "int8", False)[0])
    kinds = [layer.kind for layer in network.layers]
    assert kinds == ["conv", "max-pool", "conv", "average-pool", "average-pool", "conv",
                     "global-average-pool", "dense"]
    pool = network.layers[1]
    assert isinstance(pool, MaxPoolLayer) and pool.input == pool.output
    assert pool.kernel == (3, 3) and pool.stride == (2, 2) and pool.padding == ((1, 1), (1, 0))
    average = network.layers[4]
    assert isinstance(average, AveragePoolLayer) and average.count_include_pad
    assert average.padding == ((0, 1), (1, 0)) and average.onnxruntime_offset == 128
    gap = network.layers[6]
    assert gap.groups == gap.in_channels == 6 and gap.kernel_shape == (5, 1)
    assert np.all(gap.weights == 1) and gap.out_shape == (6, 1, 1)
    size = np.float32(5 * 1)
    assert gap.multipliers[0] == np.float32(gap.input.scale32
                                            / np.float32(gap.output.scale32 * size))
    dense = network.layers[7]
    assert dense.in_shape == (6, 1, 1) and dense.weights.shape == (3, 6, 1, 1)
    assert network.output_shape == (3,)


def test_dense_kernel_covers_the_map():
    model = quantized("dense", "qdq", "uint8", "int8", True)[0]
    network = read_model(model)
    matmul = network.layers[2]
    assert matmul.kind == "dense" and matmul.in_shape == (3, 3, 3)
    assert matmul.weights.shape == (8, 3, 3, 3) and matmul.out_shape == (8, 1, 1)
    codes = _initializers(model)["mm_w_quantized"]               # (K, N) = (27, 8)
    np.testing.assert_array_equal(matmul.weights.reshape(8, 27), codes.T)


@pytest.mark.parametrize("name", ["pooling", "dense", "global_average"])
def test_layer_specs_compute_the_layers(name):
    """Each conv/dense layer's ConvSpec, through convhw's golden model, gives the layer's
    output."""
    network = read_model(quantized(name, "qdq", "uint8", "int8", True)[0])
    x = random_input(network.input_shape, 6, seed=9)
    v = input_codes(network, x) - network.input.zero_point
    specs = 0
    for layer in network.layers:
        out = run_layer(layer, v)
        if isinstance(layer, ConvLayer):
            spec = layer.spec()
            assert spec.in_channels == layer.in_channels
            assert spec.out_channels == layer.out_channels
            assert spec.rounding == "half-even" and spec.clamp == layer.clamp
            assert (spec.out_channels, *spec.out_shape) == layer.out_shape
            np.testing.assert_array_equal(np.stack([run_spec(spec, image) for image in v]), out)
            specs += 1
        v = out
    assert specs == len(network.specs()) >= 2


def test_spec_folding_and_overrides():
    network = read_model(quantized("pooling", "qdq", "uint8", "int8", True)[0])
    spec = network.layers[0].spec(pe=2, simd=3)
    assert (spec.pe, spec.simd) == (2, 3)


def test_spec_takes_asymmetric_padding():
    """ONNX pads (top, left, bottom, right) become ConvSpec's ((top, bottom), (left, right))."""
    network = read_model(quantized("conv_attributes", "qdq", "uint8", "int8", True)[0])
    layer = network.layers[0]
    spec = layer.spec()
    assert spec.padding == ((1, 2), (0, 1))
    x = random_input(network.input_shape, 2, seed=4)
    v = input_codes(network, x) - network.input.zero_point
    out = run_layer(layer, v)
    np.testing.assert_array_equal(np.stack([run_spec(spec, image) for image in v]), out)


@pytest.mark.parametrize("arguments, message", [
    ((0.5, 0, "int16"), r"^'dtype' must be one of int8, uint8, not 'int16'$"),
    ((0.1, 0, "int8"), r"^'scale' must be a positive float32 value, not 0.1$"),
    ((-0.5, 0, "int8"), r"^'scale' must be a positive float32 value, not -0.5$"),
    ((0.5, 200, "int8"), r"^'zero_point' 200 is outside int8 \(-128..127\)$"),
])
def test_quantization_wrong(arguments, message):
    with pytest.raises(ValueError, match=message):
        Quantization(*arguments)


def test_read_from_path(tmp_path):
    import onnx

    model = quantized("dense", "qoperator", "uint8", "int8", False)[0]
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    assert read_model(path).describe() == read_model(model).describe()
    assert read_model(str(path)).describe().splitlines()[1].startswith("conv ")


def test_to_dict_is_json():
    import json

    network = read_model(quantized("pooling", "qdq", "int8", "int8", True)[0])
    facts = json.loads(json.dumps(network.to_dict()))
    assert facts["input_shape"] == [2, 12, 10] and facts["output_shape"] == [3]
    assert [layer["kind"] for layer in facts["layers"]] == [layer.kind for layer in
                                                             network.layers]
    conv = facts["layers"][0]
    assert conv["out_shape"] == [4, 12, 10] and conv["weights"] == 4 * 2 * 9
    assert conv["macs"] == 4 * 12 * 10 * 2 * 9 and conv["input"]["dtype"] == "int8"
    assert facts["layers"][3]["count_include_pad"] is False
