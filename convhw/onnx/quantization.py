"""Quantization parameters of a tensor, and ONNX's QuantizeLinear and DequantizeLinear.

Both are reproduced as onnxruntime computes them on a CPU (MLAS):

- QuantizeLinear: ``q = saturate(rne(float32(x / scale)) + zero_point)``, the division in
  float32 and ``rne`` rounding half to even;
- DequantizeLinear: ``float32(q - zero_point) * scale`` in float32.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["Quantization", "DTYPES", "quantize_linear", "dequantize_linear"]

#: Integer types of quantized activations and weights, with their ranges.
DTYPES = {"int8": (-128, 127), "uint8": (0, 255)}


@dataclass(frozen=True)
class Quantization:
    """Per-tensor quantization ``real = scale * (q - zero_point)``.

    Parameters
    ----------
    scale : float
        A float32 value (stored as the Python float that equals it).
    zero_point : int
    dtype : "int8" or "uint8"
    """

    scale: float
    zero_point: int
    dtype: str

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"'dtype' must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if float(np.float32(self.scale)) != self.scale or not self.scale > 0:
            raise ValueError(f"'scale' must be a positive float32 value, not {self.scale!r}")
        lo, hi = DTYPES[self.dtype]
        if not lo <= self.zero_point <= hi:
            raise ValueError(f"'zero_point' {self.zero_point} is outside {self.dtype} "
                             f"({lo}..{hi})")

    @property
    def qmin(self):
        return DTYPES[self.dtype][0]

    @property
    def qmax(self):
        return DTYPES[self.dtype][1]

    @property
    def centred_range(self):
        """``(qmin - zero_point, qmax - zero_point)``: the range of ``q - zero_point``."""
        return (self.qmin - self.zero_point, self.qmax - self.zero_point)

    @property
    def scale32(self):
        return np.float32(self.scale)


def quantize_linear(x, quant):
    """``x`` (real values) quantized as onnxruntime's QuantizeLinear does: ``int64`` codes."""
    x = np.asarray(x, dtype=np.float32)
    lo, hi = quant.centred_range
    # MLAS divides, clamps to the centred range in float, rounds half to even, adds the zero point.
    scaled = np.clip(x / quant.scale32, np.float32(lo), np.float32(hi))
    return np.rint(scaled).astype(np.int64) + quant.zero_point


def dequantize_linear(q, quant):
    """Codes ``q`` as real float32 values, as onnxruntime's DequantizeLinear computes them."""
    centred = np.asarray(q, dtype=np.int64) - quant.zero_point
    return centred.astype(np.float32) * quant.scale32
