"""The exact integer reference of an imported network, and onnxruntime's results bit for bit.

:func:`run_network` computes what the hardware computes: the input QuantizeLinear, then per
layer the exact accumulators (:func:`convhw.golden.conv_layer`) and the exact requantization
``clamp(rne(acc * S))`` (:func:`convhw.golden.requantize` with the integer ``scale``/``shift``
of ``S``), exact max pooling, exact average pooling (:func:`convhw.onnx.pooling.exact_average_pool`), and
the final DequantizeLinear.

With ``onnxruntime_rounding=True`` each conv, dense and global-average layer rounds
``float32(float32(acc) * S)`` instead, as onnxruntime does
(:func:`convhw.onnx.multiplier.onnxruntime_requantize`), and average pools run onnxruntime's
float32 arithmetic (:func:`convhw.onnx.pooling.average_pool`): that is onnxruntime's output bit for
bit, and where the two differ, the difference is onnxruntime's double rounding.
"""

import numpy as np

from ..golden import conv_layer
from .layers import AveragePoolLayer, ConvLayer, MaxPoolLayer
from .multiplier import exact_requantize, onnxruntime_requantize
from .pooling import average_pool, exact_average_pool, max_pool
from .quantization import dequantize_linear, quantize_linear

__all__ = ["run_network", "input_codes", "run_layer", "output_values"]


def input_codes(network, x):
    """The network's input codes ``(N, C, H, W)``: a float input quantized as the model's
    QuantizeLinear does, or an integer input taken as codes already."""
    x = np.asarray(x)
    given = x.shape
    if x.ndim == 3:
        x = x[np.newaxis]
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(network.input_shape):
        raise ValueError(f"input of shape {given} does not fit the network's input "
                         f"(N, {', '.join(map(str, network.input_shape))}) or "
                         f"{network.input_shape}")
    if x.dtype.kind in "iu":
        quant = network.input
        if x.size and (x.min() < quant.qmin or x.max() > quant.qmax):
            raise ValueError(f"integer input holds values from {x.min()} to {x.max()}, "
                             f"outside the input's {quant.dtype} codes "
                             f"({quant.qmin}..{quant.qmax})")
        return x.astype(np.int64)
    if x.dtype.kind != "f":
        raise TypeError(f"input must hold floats (real values) or integers (codes), "
                        f"not {x.dtype}")
    return quantize_linear(x, network.input)


def run_layer(layer, v, *, onnxruntime_rounding=False):
    """One layer on centred codes ``v`` ``(N, C, H, W)``: centred output codes."""
    if isinstance(layer, ConvLayer):
        acc = np.stack([conv_layer(image, layer.weights, bias=layer.bias, groups=layer.groups,
                                   stride=layer.stride, padding=layer.padding,
                                   dilation=layer.dilation) for image in v])
        requantize = onnxruntime_requantize if onnxruntime_rounding else exact_requantize
        return requantize(acc, layer.multipliers, layer.clamp, channel_axis=1)
    if isinstance(layer, MaxPoolLayer):
        return max_pool(v, layer)
    if isinstance(layer, AveragePoolLayer):
        return average_pool(v, layer) if onnxruntime_rounding else exact_average_pool(v, layer)
    raise TypeError(f"not a layer: {layer!r}")


def run_network(network, x, *, onnxruntime_rounding=False, codes=False):
    """The network's output for input ``x``, as onnxruntime returns it.

    Parameters
    ----------
    network : Network
    x : array
        ``(N, C, H, W)`` or ``(C, H, W)``: floats (the model's own input) or integer codes.
    onnxruntime_rounding : bool
        Round conv/dense/global-average outputs as onnxruntime does (float32 double rounding)
        instead of exactly.
    codes : bool
        Return the final codes (``q``, int64) instead of the final DequantizeLinear's floats.

    Returns
    -------
    numpy.ndarray
        ``(N, *network.output_shape)`` (no batch axis when ``x`` had none): float32 when the
        graph ends in a DequantizeLinear (and ``codes`` is false), else the codes in the
        output's dtype.
    """
    batched = np.ndim(x) == 4
    v = input_codes(network, x) - network.input.zero_point
    for layer in network.layers:
        v = run_layer(layer, v, onnxruntime_rounding=onnxruntime_rounding)
    result = output_values(network, v, codes=codes)
    return result if batched else result[0]


def output_values(network, v, *, codes=False):
    """The network's output ``(N, *output_shape)`` from the last layer's centred codes ``v``
    (``(N, C, H, W)``, e.g. what the hardware gives): the final DequantizeLinear's float32
    values, or the codes in the output's dtype (``codes``: int64 codes)."""
    v = np.asarray(v, dtype=np.int64)
    v = v.reshape((v.shape[0],) + tuple(network.output_shape))
    out = network.output
    if codes:
        result = v + out.zero_point
    elif network.output_dequantized:
        result = dequantize_linear(v + out.zero_point, out)
    else:
        result = (v + out.zero_point).astype(out.dtype)
    return result
