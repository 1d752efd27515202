"""Output stage: apply the root's sign and shift, round half up, then saturate.

One registered stage computes ``(acc + 2**(shift-1)) >> shift`` (arithmetic shift), exactly as
wide as the spec's rounded range. A second one clamps to signed ``out_bits``, only when some
accumulator value can fall outside it (``spec.saturates``): ``spec.back_stages`` in all.
"""

from amaranth import *

from ..spec import signed_bits

__all__ = ["requantize"]


def requantize(m, root, spec):
    """Register ``root`` (an adder-tree :class:`Term`) as the spec's output value."""
    lo, hi = spec.rounded_range
    rounded = Signal(signed(max(spec.out_bits, signed_bits(lo, hi))), name="rounded")
    value = root.value << root.shift
    acc = -value if root.negative else value
    half = (1 << spec.shift) >> 1
    m.d.sync += rounded.eq((acc + half) >> spec.shift)
    if not spec.saturates:
        return rounded[:spec.out_bits].as_signed()
    out_lo, out_hi = spec.out_range
    result = Signal(signed(spec.out_bits), name="saturated")
    with m.If(rounded < out_lo):
        m.d.sync += result.eq(out_lo)
    with m.Elif(rounded > out_hi):
        m.d.sync += result.eq(out_hi)
    with m.Else():
        m.d.sync += result.eq(rounded)
    return result
