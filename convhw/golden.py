"""Bit-exact NumPy golden models of the convolutions the hardware computes.

Everything is exact integer arithmetic: ``int64`` when the accumulator provably fits, Python
integers (``dtype=object``) otherwise. Vectorized over pixels; the only loop is over kernel taps.
"""

import numpy as np

__all__ = ["conv2d", "conv1d", "requantize", "run_spec"]


def _pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


def _pads(padding, spans):
    if isinstance(padding, str):
        if padding != "same":
            raise ValueError(f"padding must be an integer, a pair or 'same', not {padding!r}")
        return [((s - 1) // 2, (s - 1) - (s - 1) // 2) for s in spans]
    return [_pair(p) for p in _pair(padding)]


def _exact_dtype(image, kernel):
    big = int(np.abs(image).max(initial=0)) * int(np.abs(kernel).max(initial=0)) * kernel.size
    return np.int64 if big < 2**62 else object


def requantize(acc, *, shift=None, out_bits=None):
    """Round half up by ``shift`` bits (arithmetic shift), then saturate to signed ``out_bits``."""
    if shift:
        if shift > 62 and np.asarray(acc).dtype != object:
            acc = np.asarray(acc).astype(object)  # the rounding constant leaves int64
        acc = (acc + (1 << (shift - 1))) >> shift
    if out_bits is not None:
        acc = np.clip(acc, -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1)
    return acc


def conv2d(image, kernel, *, stride=1, padding=0, dilation=1, flip=False, shift=None,
           out_bits=None):
    """2-D convolution of ``image[y, x]`` with ``kernel[i, j]``, zero padded.

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
    dtype = _exact_dtype(image, kernel)
    (top, bottom), (left, right) = pads
    # Not np.pad: it fills object arrays with NumPy int64 zeros, which wrap on accumulation.
    padded = np.zeros((top + image.shape[0] + bottom, left + image.shape[1] + right), dtype)
    padded[top:top + image.shape[0], left:left + image.shape[1]] = image.astype(dtype)
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
           out_bits=None):
    """1-D convolution of a sequence; ``padding`` is ``P``, ``(left, right)`` or ``"same"``."""
    x = np.asarray(x)
    kernel = np.asarray(kernel)
    if x.ndim != 1 or kernel.ndim != 1:
        raise ValueError("sequence and kernel must be 1-D")
    if isinstance(padding, str):
        pad2 = padding
    else:
        pad2 = (0, padding)
    out = conv2d(x[np.newaxis, :], kernel[np.newaxis, :], stride=(1, stride), padding=pad2,
                 dilation=(1, dilation), flip=flip, shift=shift, out_bits=out_bits)
    return out[0]


def run_spec(spec, image, kernel=None):
    """The golden output of ``spec`` (2-D or 1-D) for one frame; ``kernel`` is needed at
    runtime only."""
    if kernel is None:
        kernel = spec.kernel
        if kernel is None:
            raise ValueError("a runtime-coefficient spec needs the kernel to compute its output")
    if len(spec.frame_shape) == 1:
        return conv1d(image, kernel, stride=spec.stride, padding=spec.padding,
                      dilation=spec.dilation, flip=spec.flip,
                      shift=spec.shift if spec.requantize else None,
                      out_bits=spec.out_bits if spec.requantize else None)
    return conv2d(image, kernel, stride=spec.stride, padding=spec.padding,
                  dilation=spec.dilation, flip=spec.flip,
                  shift=spec.shift if spec.requantize else None,
                  out_bits=spec.out_bits if spec.requantize else None)
