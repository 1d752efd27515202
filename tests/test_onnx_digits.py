"""The shipped digits classifier, sim/models/digits.onnx, on all 1,797 images of
scikit-learn's digits: accuracy, and convhw's reference against onnxruntime."""

import os

import numpy as np
import onnx
import pytest

from convhw.onnx import read_model, run_network
from convhw.onnx.layers import ConvLayer

from onnx_models import assert_double_rounding_only, run_onnxruntime

MODEL = os.path.join(os.path.dirname(__file__), "..", "sim", "models", "digits.onnx")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images.astype(np.float32)[:, np.newaxis], data.target


@pytest.fixture(scope="module")
def model():
    return onnx.load(MODEL)


def test_model_shape(model):
    network = read_model(model)
    assert network.input_shape == (1, 8, 8) and network.output_shape == (10,)
    assert network.output_dequantized
    assert [layer.kind for layer in network.layers] == ["conv", "max-pool", "conv", "dense"]
    # Small enough for an iCE40 UP5K: 644 8-bit weights.
    weights = sum(layer.weights.size for layer in network.layers if isinstance(layer, ConvLayer))
    assert weights == 644
    assert [layer.macs for layer in network.layers if isinstance(layer, ConvLayer)] == \
        [4 * 64 * 9, 8 * 4 * 36, 10 * 32]


def test_accuracy_and_agreement(model, digits):
    images, labels = digits
    expected = run_onnxruntime(model, images)
    assert expected.shape == (1797, 10) and expected.dtype == np.float32
    network = read_model(model)
    np.testing.assert_array_equal(run_network(network, images, onnxruntime_rounding=True),
                                  expected)
    exact = run_network(network, images)
    assert_double_rounding_only(network, images)
    assert np.mean(expected.argmax(1) == labels) >= 0.95
    assert np.mean(exact.argmax(1) == labels) >= 0.95
