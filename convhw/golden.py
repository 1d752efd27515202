"""Bit-exact NumPy golden models of the convolutions the hardware computes.

Everything is exact integer arithmetic: ``int64`` when the accumulator provably fits, Python
integers (``dtype=object``) otherwise. Vectorized over pixels; the only loop is over kernel taps.
"""

import numpy as np

from .border import MODES, NUMPY_MODES

__all__ = ["conv2d", "conv1d", "conv_layer", "max_pool", "requantize", "run_spec"]


def _pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


def _pads(padding, spans):
    if isinstance(padding, str):
        if padding != "same":
            raise ValueError(f"padding must be an integer, a pair or 'same', not {padding!r}")
        return [((s - 1) // 2, (s - 1) - (s - 1) // 2) for s in spans]
    return [_pair(p) for p in _pair(padding)]


def _exact_dtype(image, kernel, border_value=0):
    peak = max(int(np.abs(image).max(initial=0)), abs(int(border_value)))
    big = peak * int(np.abs(kernel).max(initial=0)) * kernel.size
    return np.int64 if big < 2**62 else object


def _pad(x, pads, border, border_value, dtype):
    """``x`` (``(..., H, W)``) padded on its last two axes as ``border`` says, in ``dtype``.

    ``constant`` is not ``np.pad``: that fills object arrays with NumPy int64 values, which wrap
    on accumulation. The other modes copy pixels, so ``np.pad`` keeps them exact.
    """
    if border not in MODES:
        raise ValueError(f"border must be one of {', '.join(MODES)}, not {border!r}")
    (top, bottom), (left, right) = pads
    x = x.astype(dtype)
    if border != "constant":
        widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
        return np.pad(x, widths, mode=NUMPY_MODES[border])
    fill = int(border_value) if dtype is object else border_value
    padded = np.full(x.shape[:-2] + (top + x.shape[-2] + bottom, left + x.shape[-1] + right),
                     fill, dtype)
    padded[..., top:top + x.shape[-2], left:left + x.shape[-1]] = x
    return padded


def _channel_values(value, acc, axis):
    """A per-channel parameter as an array that broadcasts against ``acc`` along ``axis``."""
    value = np.asarray(value, dtype=object if acc.dtype == object else np.int64)
    if value.ndim == 0:
        return value
    shape = [1] * acc.ndim
    shape[axis] = len(value)
    return value.reshape(shape)


def requantize(acc, *, shift=None, out_bits=None, bias=None, relu=False, scale=None,
               rounding="half-up", clamp=None, channel_axis=0):
    """The output stage of :mod:`convhw.requant`: add ``bias``, ReLU, multiply by ``scale``,
    round by ``shift`` bits (``half-up``, or ``half-even`` ties), saturate to signed
    ``out_bits`` and into ``clamp = (lo, hi)``. ``bias``, ``scale`` and ``shift`` may give one value per channel along
    ``channel_axis``."""
    acc = np.asarray(acc)
    shifts = np.atleast_1d(np.asarray(0 if shift is None else shift, dtype=object))
    growth = max(abs(int(v)) for v in np.ravel(scale)) if scale is not None else 1
    peak = int(np.abs(acc).max(initial=0)) + (0 if bias is None else
                                               max(abs(int(b)) for b in np.ravel(bias)))
    widened = (bias is not None or scale is not None) and peak * growth >= 2**62
    if acc.dtype != object and (widened or max(shifts) > 62):
        acc = acc.astype(object)  # products or rounding constants leave int64
    if bias is not None:
        acc = acc + _channel_values(bias, acc, channel_axis)
    if relu:
        acc = np.maximum(acc, 0)
    if scale is not None:
        acc = acc * _channel_values(scale, acc, channel_axis)
    if any(shifts):
        dtype = object if acc.dtype == object else np.int64
        s = _channel_values([int(v) for v in shifts] if len(shifts) > 1 else int(shifts[0]),
                            acc, channel_axis)
        halves = [(1 << (int(v) - 1)) if v else 0 for v in shifts]
        half = _channel_values(halves if len(shifts) > 1 else halves[0], acc, channel_axis)
        if rounding == "half-even":
            below = np.asarray([max(h - 1, 0) for h in halves], dtype=dtype)
            below = _channel_values(below if len(shifts) > 1 else below[0], acc, channel_axis)
            odd = (acc >> s) & 1
            active = np.asarray(s != 0) if dtype != object else np.asarray(s != 0, dtype=object)
            acc = (acc + below + odd * active) >> s
        elif rounding == "half-up":
            acc = (acc + half) >> s
        else:
            raise ValueError(f"rounding must be 'half-up' or 'half-even', not {rounding!r}")
    if out_bits is not None:
        acc = np.clip(acc, -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1)
    if clamp is not None:
        acc = np.clip(acc, *clamp)
    return acc


def conv2d(image, kernel, *, stride=1, padding=0, dilation=1, flip=False, shift=None,
           out_bits=None, border="constant", border_value=0):
    """2-D convolution of ``image[y, x]`` with ``kernel[i, j]``, padded as ``border`` says
    (``constant`` with ``border_value``, ``replicate``, ``reflect`` or ``reflect-101``:
    :mod:`convhw.border`).

    ``flip=False`` is cross-correlation (what CNNs call convolution); ``flip=True`` rotates the
    kernel 180 degrees first (mathematical convolution). ``padding`` is ``P``, ``(PY, PX)``,
    ``((top, bottom), (left, right))`` or ``"same"``.
    """
    image = np.asarray(image)
    kernel = np.asarray(kernel)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError("image and kernel must be 2-D")
    if flip:
        kernel = kernel[::-1, ::-1]
    (sy, sx), (dy, dx) = _pair(stride), _pair(dilation)
    kh, kw = kernel.shape
    spans = (dy * (kh - 1) + 1, dx * (kw - 1) + 1)
    pads = _pads(padding, spans)
    dtype = _exact_dtype(image, kernel, border_value)
    padded = _pad(image, pads, border, border_value, dtype)
    out_h = (padded.shape[0] - spans[0]) // sy + 1
    out_w = (padded.shape[1] - spans[1]) // sx + 1
    if out_h < 1 or out_w < 1:
        raise ValueError("image too small for the kernel")
    acc = np.zeros((out_h, out_w), dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            coeff = kernel[i, j]
            if coeff:
                window = padded[i * dy: i * dy + (out_h - 1) * sy + 1: sy,
                                j * dx: j * dx + (out_w - 1) * sx + 1: sx]
                acc += window * (int(coeff) if dtype is object else coeff.astype(dtype))
    return requantize(acc, shift=shift, out_bits=out_bits)


def conv1d(x, kernel, *, stride=1, padding=0, dilation=1, flip=False, shift=None,
           out_bits=None, border="constant", border_value=0):
    """1-D convolution of a sequence; ``padding`` is ``P``, ``(left, right)`` or ``"same"``,
    ``border`` as for :func:`conv2d`."""
    x = np.asarray(x)
    kernel = np.asarray(kernel)
    if x.ndim != 1 or kernel.ndim != 1:
        raise ValueError("sequence and kernel must be 1-D")
    if isinstance(padding, str):
        pad2 = padding
    else:
        pad2 = (0, padding)
    out = conv2d(x[np.newaxis, :], kernel[np.newaxis, :], stride=(1, stride), padding=pad2,
                 dilation=(1, dilation), flip=flip, shift=shift, out_bits=out_bits,
                 border=border, border_value=border_value)
    return out[0]


def conv_layer(x, weights, *, bias=None, groups=1, stride=1, padding=0, dilation=1,
               flip=False, border="constant", border_value=0):
    """Exact accumulators ``(Cout, OH, OW)`` of a CNN layer, bias added.

    ``x`` is ``(Cin, H, W)``; ``weights`` is ``(Cout, Cin/groups, KH, KW)`` (PyTorch's layout);
    output channel ``co`` correlates the input channels of its group,
    ``co // (Cout/groups)``. ``stride``, ``padding``, ``dilation``, ``flip`` and ``border``
    are as for :func:`conv2d` (every channel padded alike). Vectorized over pixels and
    channels; the only loop is over kernel taps.
    """
    x, weights = np.asarray(x), np.asarray(weights)
    if x.ndim != 3 or weights.ndim != 4:
        raise ValueError(f"x must be (Cin, H, W) and weights (Cout, Cin/groups, KH, KW), not "
                         f"shapes {x.shape} and {weights.shape}")
    cin, cout = x.shape[0], weights.shape[0]
    if cin != weights.shape[1] * groups or cout % groups:
        raise ValueError(f"weights {weights.shape} with groups={groups} do not fit {cin} input "
                         f"channels")
    if flip:
        weights = weights[:, :, ::-1, ::-1]
    (sy, sx), (dy, dx) = _pair(stride), _pair(dilation)
    kh, kw = weights.shape[2:]
    spans = (dy * (kh - 1) + 1, dx * (kw - 1) + 1)
    (top, bottom), (left, right) = _pads(padding, spans)
    products = max(int(np.abs(x).max(initial=0)), abs(int(border_value))) \
        * int(np.abs(weights).max(initial=0)) * weights[0].size
    peak = products + (0 if bias is None else int(np.abs(np.asarray(bias)).max(initial=0)))
    dtype = np.int64 if peak < 2**62 else object
    padded = _pad(x, ((top, bottom), (left, right)), border, border_value, dtype)
    out_h = (padded.shape[1] - spans[0]) // sy + 1
    out_w = (padded.shape[2] - spans[1]) // sx + 1
    if out_h < 1 or out_w < 1:
        raise ValueError("image too small for the kernel")
    # (groups, Cout/groups, Cin/groups) weights per tap, times (groups, Cin/groups, pixels).
    grouped = weights.astype(dtype).reshape(groups, cout // groups, cin // groups, kh, kw)
    acc = np.zeros((groups, cout // groups, out_h * out_w), dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            window = padded[:, i * dy: i * dy + (out_h - 1) * sy + 1: sy,
                            j * dx: j * dx + (out_w - 1) * sx + 1: sx]
            acc += np.matmul(grouped[:, :, :, i, j],
                             window.reshape(groups, cin // groups, out_h * out_w))
    acc = acc.reshape(cout, out_h, out_w)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=dtype).reshape(cout, 1, 1)
    return acc


def run_spec(spec, image, kernel=None):
    """The golden output of ``spec`` (2-D, 1-D or a layer) for one frame; ``kernel`` (the
    weights of a layer) is needed at runtime only. A :class:`~convhw.chain.ChainSpec` runs its
    layers in turn."""
    if hasattr(spec, "specs"):   # a chain
        return spec.run(image)
    if getattr(spec, "out_channels", 1) != 1 or getattr(spec, "is_layer", False):
        return _run_layer(spec, image, kernel)
    if kernel is None:
        kernel = spec.kernel
        if kernel is None:
            raise ValueError("a runtime-coefficient spec needs the kernel to compute its output")
    if len(spec.frame_shape) == 1:
        return conv1d(image, kernel, stride=spec.stride, padding=spec.padding,
                      dilation=spec.dilation, flip=spec.flip, border=spec.border,
                      border_value=spec.border_value,
                      shift=spec.shift if spec.requantize else None,
                      out_bits=spec.out_bits if spec.requantize else None)
    return conv2d(image, kernel, stride=spec.stride, padding=spec.padding,
                  dilation=spec.dilation, flip=spec.flip, border=spec.border,
                  border_value=spec.border_value,
                  shift=spec.shift if spec.requantize else None,
                  out_bits=spec.out_bits if spec.requantize else None)


def max_pool(x, kernel_shape, *, stride=1, padding=0, dilation=1):
    """The maximum of each window of ``x`` ``(..., H, W)``; padding cells never win (every
    window must hold a pixel of the frame)."""
    x = np.asarray(x)
    (kh, kw), (sy, sx), (dy, dx) = _pair(kernel_shape), _pair(stride), _pair(dilation)
    spans = (dy * (kh - 1) + 1, dx * (kw - 1) + 1)
    pads = _pads(padding, spans)
    dtype = object if x.dtype == object else np.int64
    low = int(np.min(x, initial=0)) - 1
    padded = _pad(x, pads, "constant", low, dtype)
    out_h = (padded.shape[-2] - spans[0]) // sy + 1
    out_w = (padded.shape[-1] - spans[1]) // sx + 1
    if out_h < 1 or out_w < 1:
        raise ValueError("image too small for the kernel")
    out = None
    for i in range(kh):
        for j in range(kw):
            window = padded[..., i * dy: i * dy + (out_h - 1) * sy + 1: sy,
                            j * dx: j * dx + (out_w - 1) * sx + 1: sx]
            out = window if out is None else np.maximum(out, window)
    return out


def _run_layer(spec, image, weights):
    image = np.asarray(image)
    x = image if spec.is_layer else image[np.newaxis]
    if getattr(spec, "operation", "conv") == "max-pool":
        stage = spec.output_stage
        out = requantize(max_pool(x, spec.kernel_shape, stride=spec.stride,
                                  padding=spec.padding, dilation=spec.dilation),
                         relu=stage.relu, out_bits=spec.out_bits, clamp=stage.clamp)
        return out if spec.is_layer else out[0]
    if weights is None:
        weights = spec.weights
        if weights is None:
            raise ValueError("a runtime-coefficient spec needs the weights to compute its output")
    weights = np.asarray(weights)
    if weights.ndim == 2:  # one kernel on every channel
        weights = np.broadcast_to(weights, (spec.out_channels, 1, *weights.shape))
    acc = conv_layer(x, weights, groups=spec.groups, stride=spec.stride, padding=spec.padding,
                     dilation=spec.dilation, flip=spec.flip, border=spec.border,
                     border_value=spec.border_value)
    stage = spec.output_stage
    windows = getattr(spec, "window_scales", None)
    if windows is not None:
        rows, cols = spec.window_counts()
        cells = np.outer(rows, cols)
        out = np.zeros(acc.shape, dtype=object if acc.dtype == object else np.int64)
        for count, (scale, shift) in windows.items():
            where = np.broadcast_to(cells == count, acc.shape)
            value = requantize(acc, scale=scale, shift=shift, rounding=stage.rounding,
                               out_bits=spec.out_bits, clamp=stage.clamp)
            out[where] = np.asarray(value)[where]
        return out if spec.is_layer else out[0]
    out = requantize(acc, bias=stage.bias if any(stage.bias) else None, relu=stage.relu,
                     scale=stage.scale if any(s != 1 for s in stage.scale) else None,
                     shift=stage.shift, rounding=stage.rounding, out_bits=spec.out_bits,
                     clamp=stage.clamp)
    return out if spec.is_layer else out[0]
