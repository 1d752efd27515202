"""Quantized ONNX models as chains of exact integer layers.

:func:`read_model` reads a model written by ``onnxruntime.quantization.quantize_static`` (QDQ or
QOperator format) into a :class:`Network` of :class:`ConvLayer`, :class:`MaxPoolLayer` and
:class:`AveragePoolLayer`; each conv/dense layer gives its :class:`~convhw.spec.ConvSpec` with
:meth:`ConvLayer.spec`. :func:`run_network` is the exact integer reference (and, with
``onnxruntime_rounding=True``, onnxruntime's own results bit for bit). Needs the ``onnx``
package (the ``onnx`` extra). See ``docs/onnx.md``.
"""

from .errors import UnsupportedModelError
from .layers import AveragePoolLayer, ConvLayer, MaxPoolLayer, Network
from .multiplier import exact_requantize, multiplier, onnxruntime_requantize, scale_and_shift
from .quantization import Quantization, dequantize_linear, quantize_linear
from .reader import SUPPORTED_OPS, read_model
from .reference import input_codes, output_values, run_layer, run_network

__all__ = ["read_model", "run_network", "run_layer", "input_codes", "output_values", "Network", "ConvLayer",
           "MaxPoolLayer", "AveragePoolLayer", "Quantization", "UnsupportedModelError",
           "SUPPORTED_OPS", "quantize_linear", "dequantize_linear", "multiplier",
           "scale_and_shift", "exact_requantize", "onnxruntime_requantize"]
