"""Output stage of one channel: bias, scale, rounding, then ReLU and saturation.

The arithmetic is :mod:`convhw.requant`'s. When the spec needs it (a channel scales, or rounds
ties to even), a first registered stage computes ``x = (acc + bias) * scale``. The rounding stage
computes ``(x + 2**(shift-1)) >> shift`` (half up), or ``(x + 2**(shift-1) - 1 + x[shift]) >>
shift`` (ties to even: the kept part's lowest bit is a carry-in), exactly as wide as the
channel's rounded range; without the first stage the bias is part of the rounding constant. A
last stage clamps to the channel's output range (signed ``out_bits``, ReLU, clamp), only when
some channel can fall outside it (``spec.saturates``): ``spec.back_stages`` in all.
"""

from amaranth import *

from ..spec import signed_bits

__all__ = ["requantize"]


def requantize(m, root, spec, channel=0):
    """Register ``root`` (an adder-tree :class:`Term`) as output ``channel``'s value."""
    stage = spec.output_stage if hasattr(spec, "output_stage") else None
    if stage is None:  # a spec without per-channel stages (1-D, through its row spec)
        stage = spec.row_spec.output_stage
    bias, scale = stage.bias[channel], stage.scale[channel]
    shift, rounding = stage.shift[channel], stage.rounding
    value = root.value << root.shift
    acc = -value if root.negative else value
    acc_lo, acc_hi = root.total_range()
    name = f"_{channel}" if getattr(spec, "out_channels", 1) > 1 else ""

    if stage.pre_stages:
        lo, hi = sorted(((acc_lo + bias) * scale, (acc_hi + bias) * scale))
        x = Signal(signed(signed_bits(lo, hi)), name=f"scaled{name}")
        m.d.sync += x.eq((acc + bias) * scale)
        constant = 0
    else:
        x, constant = acc, bias
    half = (1 << shift) >> 1
    rlo, rhi = stage.rounded_ranges[channel]
    rounded = Signal(signed(max(stage.out_bits, signed_bits(rlo, rhi))), name=f"rounded{name}")
    if rounding == "half-even" and shift:
        assert stage.pre_stages
        m.d.sync += rounded.eq((x + (half - 1) + (x >> shift)[0]) >> shift)
    else:
        m.d.sync += rounded.eq((x + (constant + half)) >> shift)
    if not stage.saturates:
        return rounded[:stage.out_bits].as_signed()
    out_lo, out_hi = stage.out_ranges[channel]
    result = Signal(signed(stage.out_bits), name=f"saturated{name}")
    with m.If(rounded < out_lo):
        m.d.sync += result.eq(out_lo)
    with m.Elif(rounded > out_hi):
        m.d.sync += result.eq(out_hi)
    with m.Else():
        m.d.sync += result.eq(rounded)
    return result
