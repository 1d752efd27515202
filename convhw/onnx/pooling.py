"""Pooling on centred codes, as onnxruntime computes it for quantized tensors.

- Max pooling is exact: the largest code of each window (padding cells are skipped). It needs
  no requantization, so its input and output share scale and zero point.
- Average pooling of a quantized tensor runs onnxruntime's ``QLinearAveragePool`` (the QDQ form
  DequantizeLinear -> AveragePool -> QuantizeLinear is fused into it), which works in float32
  (``qlinear_pool.cc``): each code is dequantized as ``float32(x_scale * (q - x_zero_point))``;
  the window's in-frame values are summed in float32, row by row, left to right, from 0; the sum
  is divided by the count (the kernel size with ``count_include_pad``, else the in-frame cells);
  then ``q = saturate(rne(float32(float32(avg / y_scale) + y_zero_point)))``. For int8 QDQ
  models onnxruntime first moves the codes to uint8 (``y_zero_point + 128``), which changes how
  that float32 sum rounds (``AveragePoolLayer.onnxruntime_offset``).
  :func:`average_pool` repeats those float32 operations in the same order, so it is bit-exact.
- A window covering the whole map without padding (and GlobalAveragePool) takes MLAS's integer
  path instead: a :class:`~convhw.onnx.layers.ConvLayer` of kind ``global-average-pool``.

The exact average (what the hardware computes, :func:`exact_average_pool`): the integer sum of
the window's in-frame codes times the float32 multiplier
``S(n) = float32(x_scale / float32(y_scale * n))`` (the global path's formula) for the window's
divisor ``n``, rounded half to even once, exactly, then clamped. ``n`` is the kernel size with
``count_include_pad``, else the in-frame cells of the window. onnxruntime's float32 sum and
divisions differ from it only near ties (the outputs :func:`average_pool` tells apart).
"""

import numpy as np

__all__ = ["max_pool", "average_pool", "exact_average_pool", "average_multiplier",
           "window_counts"]


def _windows(shape, kernel, stride, padding):
    (kh, kw), (sy, sx) = kernel, stride
    (top, bottom), (left, right) = padding
    out_h = (shape[-2] + top + bottom - kh) // sy + 1
    out_w = (shape[-1] + left + right - kw) // sx + 1
    for i in range(kh):
        for j in range(kw):
            yield (i, j), (slice(i, i + (out_h - 1) * sy + 1, sy),
                           slice(j, j + (out_w - 1) * sx + 1, sx))


def _padded(v, padding, fill):
    (top, bottom), (left, right) = padding
    shape = v.shape[:-2] + (v.shape[-2] + top + bottom, v.shape[-1] + left + right)
    out = np.full(shape, fill, dtype=v.dtype)
    out[..., top:top + v.shape[-2], left:left + v.shape[-1]] = v
    return out


def max_pool(v, layer):
    """:class:`~convhw.onnx.layers.MaxPoolLayer` on centred codes ``v`` ``(..., H, W)``."""
    v = np.asarray(v, dtype=np.int64)
    padded = _padded(v, layer.padding, np.iinfo(np.int64).min)
    out = None
    for _, (rows, cols) in _windows(v.shape, layer.kernel, layer.stride, layer.padding):
        window = padded[..., rows, cols]
        out = window if out is None else np.maximum(out, window)
    return np.clip(out, *layer.clamp)


def average_pool(v, layer):
    """:class:`~convhw.onnx.layers.AveragePoolLayer` on centred codes ``v`` ``(..., H, W)``,
    bit-exact with onnxruntime's float32 arithmetic."""
    v = np.asarray(v, dtype=np.int64)
    values = layer.input.scale32 * v.astype(np.float32)
    padded = _padded(values, layer.padding, np.float32(0))
    inside = _padded(np.ones(v.shape[-2:], dtype=np.int64), layer.padding, 0)
    total = count = None
    for _, (rows, cols) in _windows(v.shape, layer.kernel, layer.stride, layer.padding):
        # Adding the 0.0 of a padding cell leaves a float32 sum unchanged, so summing every
        # tap in row-major order is onnxruntime's sum over the in-frame cells.
        window = padded[..., rows, cols]
        total = window if total is None else (total + window).astype(np.float32)
        cells = inside[rows, cols]
        count = cells if count is None else count + cells
    if layer.count_include_pad:
        count = np.full_like(count, layer.kernel[0] * layer.kernel[1])
    average = (total / count.astype(np.float32)).astype(np.float32)
    out, offset = layer.output, layer.onnxruntime_offset
    zero = out.zero_point + offset
    scaled = (average / out.scale32).astype(np.float32) + np.float32(zero)
    codes = np.clip(np.rint(scaled.astype(np.float32)).astype(np.int64),
                    out.qmin + offset, out.qmax + offset)
    return np.clip(codes - zero, *layer.clamp)


def window_counts(shape, layer):
    """The in-frame cells of each window: ``(OH, OW)`` integers."""
    inside = _padded(np.ones(shape[-2:], dtype=np.int64), layer.padding, 0)
    count = None
    for _, (rows, cols) in _windows(shape, layer.kernel, layer.stride, layer.padding):
        cells = inside[rows, cols]
        count = cells if count is None else count + cells
    return count


def average_multiplier(layer, count):
    """``S(count) = float32(x_scale / float32(y_scale * count))``: a float32."""
    return np.float32(layer.input.scale32 / np.float32(layer.output.scale32 * np.float32(count)))


def exact_average_pool(v, layer):
    """The exact average of :class:`~convhw.onnx.layers.AveragePoolLayer` on centred codes ``v``
    ``(..., H, W)``: ``clamp(rne(sum * S(n)))`` (module docstring), as the hardware computes."""
    from .multiplier import exact_requantize

    v = np.asarray(v, dtype=np.int64)
    padded = _padded(v, layer.padding, 0)
    total = None
    for _, (rows, cols) in _windows(v.shape, layer.kernel, layer.stride, layer.padding):
        window = padded[..., rows, cols]
        total = window if total is None else total + window
    if layer.count_include_pad:
        counts = np.full(total.shape[-2:], layer.kernel[0] * layer.kernel[1])
    else:
        counts = window_counts(v.shape, layer)
    out = np.zeros(total.shape, dtype=np.int64)
    for count in np.unique(counts):
        where = np.broadcast_to(counts == count, total.shape)
        rounded = exact_requantize(total, [average_multiplier(layer, count)], layer.clamp)
        out[where] = rounded[where]
    return out
