"""The output stage of a convolution: bias, ReLU, scale, rounding and saturation, per channel.

Each output channel ``c`` turns its exact accumulator ``acc`` into an output in this order:

1. ``v = acc + bias[c]``;
2. ReLU (optional): ``v = max(v, 0)``;
3. ``v = v * scale[c]`` (a positive integer, 1 unless given);
4. round by ``shift[c]`` bits: ``half-up`` is ``(v + 2**(s-1)) >> s`` (arithmetic shift), and
   ``half-even`` rounds ties to the even neighbour (ONNX's and onnxruntime's rounding);
5. saturate to signed ``out_bits``, and into ``clamp = (lo, hi)`` when given (a quantized
   network's activation range, less its zero point).

Scaling and rounding are monotone and map 0 to 0, so the ReLU commutes with them: the hardware
applies it as the lower bound of the saturation. :class:`OutputStage` holds the parameters and
derives the ranges that size the hardware; :func:`convhw.golden.requantize` computes the values.
"""

import numbers

from .bits import signed_bits, validate_int

__all__ = ["ROUNDING_MODES", "OutputStage", "round_shift"]

ROUNDING_MODES = ("half-up", "half-even")


def round_shift(value, shift, rounding):
    """``value / 2**shift`` rounded as ``rounding`` says (Python integers)."""
    if shift == 0:
        return value
    if rounding == "half-up":
        return (value + (1 << (shift - 1))) >> shift
    # Ties to even: add one less than a half, plus one when the kept part is odd.
    return (value + (1 << (shift - 1)) - 1 + ((value >> shift) & 1)) >> shift


def _per_channel(name, value, channels, *, default, minimum, maximum=None):
    """``value`` (``None``, an integer or one per channel) as a tuple of ``channels`` ints."""
    if value is None:
        return (default,) * channels
    if isinstance(value, (numbers.Number, str, bool)):
        return (validate_int(name, value, minimum=minimum, maximum=maximum),) * channels
    try:
        values = list(value)
    except TypeError:
        raise TypeError(f"'{name}' must be an integer or one integer per output channel, "
                        f"not {value!r}") from None
    if len(values) != channels:
        raise ValueError(f"'{name}' must give one value per output channel ({channels}), "
                         f"not {len(values)}")
    return tuple(validate_int(name, v, minimum=minimum, maximum=maximum) for v in values)


class OutputStage:
    """Per-channel output arithmetic for accumulators in ``acc_ranges`` (one ``(lo, hi)`` each).

    Parameters
    ----------
    acc_ranges : list of (int, int)
        Exact range of each channel's accumulator, bias not included.
    bias : sequence of int, optional
    relu : bool
    scale, shift : int or sequence of int, optional
        Per channel or for all; ``scale >= 1``, ``0 <= shift <= 64``.
    rounding : "half-up" or "half-even"
    out_bits : int, optional
        Signed output width; by default the width of the rounded range, clamped (nothing
        saturates but the ReLU and the clamp).
    clamp : (int, int), optional
        Outputs saturate into ``[lo, hi]`` too.
    """

    def __init__(self, acc_ranges, *, bias=None, relu=False, scale=None, shift=None,
                 rounding="half-up", out_bits=None, clamp=None):
        channels = len(acc_ranges)
        if bias is None:
            self._bias = (0,) * channels
        else:
            try:
                bias = [int(b) if isinstance(b, numbers.Integral) or float(b).is_integer()
                        else b for b in bias]
            except (TypeError, ValueError):
                raise TypeError(f"'bias' must be a sequence of integers, not {bias!r}") from None
            if len(bias) != channels:
                raise ValueError(f"'bias' must have one value per output channel ({channels}), "
                                 f"not {len(bias)}")
            if not all(isinstance(b, numbers.Integral) for b in bias):
                raise TypeError(f"'bias' must hold integers, not {bias!r}")
            self._bias = tuple(int(b) for b in bias)
        if not isinstance(relu, bool):
            raise TypeError(f"'relu' must be a bool, not {relu!r}")
        self._relu = relu
        self._scale = _per_channel("scale", scale, channels, default=1, minimum=1)
        self._shift = _per_channel("shift", shift, channels, default=0, minimum=0, maximum=64)
        if rounding not in ROUNDING_MODES:
            raise ValueError(f"'rounding' must be one of {', '.join(map(repr, ROUNDING_MODES))}, "
                             f"not {rounding!r}")
        self._rounding = rounding
        if clamp is not None:
            try:
                lo, hi = clamp
            except (TypeError, ValueError):
                raise TypeError(f"'clamp' must be a pair of integers (lo, hi), not {clamp!r}") \
                    from None
            lo, hi = (validate_int("clamp", v, minimum=-(1 << 64)) for v in (lo, hi))
            if lo > hi:
                raise ValueError(f"'clamp' must have lo <= hi, not {clamp!r}")
            clamp = (lo, hi)
        self._clamp = clamp
        self._biased = tuple((lo + b, hi + b) for (lo, hi), b in zip(acc_ranges, self._bias))
        self._rounded = tuple(
            (self.round(c, lo), self.round(c, hi)) for c, (lo, hi) in enumerate(self._biased))
        if out_bits is None:
            unbounded = max(max(abs(lo), abs(hi)) for lo, hi in self._rounded) + 1
            floor, ceiling = self._bounds(-unbounded, unbounded)
            lows = [min(max(lo, floor), ceiling) for lo, _ in self._rounded]
            highs = [max(min(hi, ceiling), floor) for _, hi in self._rounded]
            self._out_bits = signed_bits(min(lows), max(highs))
        else:
            self._out_bits = validate_int("out_bits", out_bits, maximum=64)

    bias = property(lambda self: self._bias, doc="Per-channel bias.")
    relu = property(lambda self: self._relu)
    scale = property(lambda self: self._scale, doc="Per-channel multiplier.")
    shift = property(lambda self: self._shift, doc="Per-channel rounding shift.")
    rounding = property(lambda self: self._rounding)
    out_bits = property(lambda self: self._out_bits)
    clamp = property(lambda self: self._clamp, doc="``(lo, hi)`` or ``None``.")

    def _bounds(self, lo, hi):
        """``[lo, hi]`` narrowed by the ReLU and the clamp."""
        if self._relu:
            lo = max(lo, 0)
        if self._clamp is not None:
            lo, hi = max(lo, self._clamp[0]), min(hi, self._clamp[1])
        return lo, hi

    def round(self, channel, value):
        """Steps 3 and 4 for one value of ``channel`` (Python integers)."""
        return round_shift(value * self._scale[channel], self._shift[channel], self._rounding)

    @property
    def biased_ranges(self):
        """Per channel: range of ``acc + bias``."""
        return self._biased

    @property
    def rounded_ranges(self):
        """Per channel: range after scaling and rounding, before ReLU and saturation."""
        return self._rounded

    @property
    def out_ranges(self):
        """Per channel: range of the outputs."""
        lo, hi = self._bounds(-(1 << (self._out_bits - 1)), (1 << (self._out_bits - 1)) - 1)
        return tuple((min(max(lo, rlo), hi), max(min(hi, rhi), lo)) for rlo, rhi in self._rounded)

    @property
    def saturates(self):
        """Whether some channel's rounded value can fall outside its output range."""
        return any(out != rounded for out, rounded in zip(self.out_ranges, self._rounded))

    @property
    def pre_stages(self):
        """1 when a stage computes ``(acc + bias) * scale`` before rounding: some channel
        scales, or rounds ties to even (its carry-in is a bit of the biased value)."""
        return int(any(s != 1 for s in self._scale) or
                   (self._rounding == "half-even" and any(self._shift)))

    @property
    def stages(self):
        """Registered stages: the pre-stage, rounding, and saturation when it can happen."""
        return self.pre_stages + 1 + int(self.saturates)

    def _key(self):
        return (self._bias, self._relu, self._scale, self._shift, self._rounding, self._out_bits,
                self._clamp)
