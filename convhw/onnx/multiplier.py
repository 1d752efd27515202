"""The requantization multiplier of a quantized layer: exact, and as onnxruntime rounds it.

A quantized conv or dense layer turns its int32 accumulator ``acc`` (input and weight zero points
subtracted, bias added) into an output code. ONNX defines
``y = saturate(rne(acc * S) + y_zero_point)`` with ``S = x_scale * w_scale[c] / y_scale`` and
``rne`` rounding half to even. onnxruntime computes ``S`` in float32, in this order
(``qlinearconv.cc``, ``quantize_linear_matmul.cc``, ``quant_gemm.cc``)::

    S = float32(float32(x_scale * w_scale[c]) / y_scale)

:func:`multiplier` reproduces it. A float32 ``S`` is exactly ``scale * 2**-shift`` with an
integer ``scale`` below ``2**24`` (:func:`scale_and_shift`), so ``rne(acc * S)`` is exact integer
arithmetic: ``convhw.golden.requantize(acc, scale=..., shift=..., rounding="half-even")``. That is
what the hardware and the reference compute.

Double rounding
---------------
onnxruntime (MLAS ``MlasRequantizeOutput``) does not round ``acc * S`` once. It converts ``acc``
to float32, multiplies in float32 (a first rounding, to 24 significant bits), and then rounds the
float32 product half to even::

    y = rne(float32(float32(acc) * S))

Where the exact product lies within half a float32 ulp of a tie (``k + 0.5``), the two roundings
can give different integers. That happens for a few accumulators per million.
:func:`onnxruntime_requantize` computes onnxruntime's result bit for bit, so tests (and users)
can tell exactly which outputs differ from the exact definition and why. convhw's hardware
computes the exact value.
"""

import math

import numpy as np

from ..golden import requantize

__all__ = ["multiplier", "scale_and_shift", "exact_requantize", "onnxruntime_requantize",
           "MAX_SHIFT"]

#: The largest rounding shift a ``ConvSpec`` takes.
MAX_SHIFT = 64


def multiplier(x_scale, w_scales, y_scale):
    """Per output channel, ``S`` as onnxruntime computes it: a float32 array."""
    product = np.float32(x_scale) * np.asarray(w_scales, dtype=np.float32)
    return (product / np.float32(y_scale)).astype(np.float32)


def scale_and_shift(multipliers):
    """Each float32 ``S`` as an exact ``(scale, shift)``: ``S == scale * 2**-shift``.

    ``scale`` is the smallest such odd integer (below ``2**24``) and ``0 <= shift <= 64``.

    Parameters
    ----------
    multipliers : array of float32
        Positive and finite.

    Returns
    -------
    scales, shifts : tuple of int
        One each per multiplier.

    Notes
    -----
    A multiplier below ``2**-64 * 2**24`` would need a larger shift. Every product
    ``acc * S`` with ``|acc| < 2**31`` then lies below ``2**-9``, rounds to 0, and so does
    ``acc * 1 * 2**-64``: that is the pair returned.
    """
    scales, shifts = [], []
    for value in np.asarray(multipliers, dtype=np.float32).ravel():
        value = float(value)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"a requantization multiplier must be positive and finite, "
                             f"not {value!r}")
        fraction, exponent = math.frexp(value)     # value = fraction * 2**exponent
        scale, shift = int(fraction * (1 << 24)), 24 - exponent
        while scale % 2 == 0 and shift > 0:
            scale, shift = scale // 2, shift - 1
        if shift < 0:
            scale, shift = scale << -shift, 0
        if shift > MAX_SHIFT:
            scale, shift = 1, MAX_SHIFT
        scales.append(scale)
        shifts.append(shift)
    return tuple(scales), tuple(shifts)


def exact_requantize(acc, multipliers, clamp, *, channel_axis=0):
    """``clamp(rne(acc * S))``, exactly, per channel along ``channel_axis`` (int64 result)."""
    scales, shifts = scale_and_shift(multipliers)
    out = requantize(np.asarray(acc), scale=scales, shift=shifts, rounding="half-even",
                     clamp=clamp, channel_axis=channel_axis)
    return np.asarray(out).astype(np.int64)


def onnxruntime_requantize(acc, multipliers, clamp, *, channel_axis=0):
    """``clamp(rne(float32(float32(acc) * S)))``: onnxruntime's double rounding, bit for bit.

    ``acc`` holds int32 accumulators; ``clamp = (lo, hi)`` are the zero-point-centred bounds
    ``(qmin - y_zero_point, qmax - y_zero_point)`` (MLAS clamps in float, then rounds).
    """
    acc = np.asarray(acc)
    s = np.asarray(multipliers, dtype=np.float32)
    if s.ndim:
        shape = [1] * acc.ndim
        shape[channel_axis] = s.size
        s = s.reshape(shape)
    product = acc.astype(np.float32) * s
    lo, hi = clamp
    return np.rint(np.clip(product, np.float32(lo), np.float32(hi))).astype(np.int64)
