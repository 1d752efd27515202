"""Output stage: bias, scale, rounding, then ReLU and saturation.

The arithmetic is :mod:`convhw.requant`'s. When the spec needs it (a channel scales, or rounds
ties to even), a first registered stage computes ``x = (acc + bias) * scale``. The rounding stage
computes ``(x + 2**(shift-1)) >> shift`` (half up), or ``(x + 2**(shift-1) - 1 + x[shift]) >>
shift`` (ties to even: the kept part's lowest bit is a carry-in), exactly as wide as the rounded
range; without the first stage the bias is part of the rounding constant. A last stage clamps
to the output range (signed ``out_bits``, ReLU, clamp), only when some channel can fall outside
it (``spec.saturates``): ``spec.back_stages`` in all. Whether the rounded value falls below or
above the range is decided in the rounding stage, from ``x`` and constants (``rounded < lo``
exactly when ``x < lo * 2**shift - offset``), so the clamp stage is a multiplexer driven by two
flip-flops, not a comparator behind the rounding adder.

One stage serves one channel, or several channels in turn (a folded layer's lane, which computes
channel ``channels[select]`` in each cycle): those share ``scale`` and ``shift``, and their bias
is picked by ``select``.
"""

from amaranth import *

from ..spec import signed_bits

__all__ = ["requantize", "shares_output_stage"]


def _stage(spec):
    if hasattr(spec, "output_stage"):
        return spec.output_stage
    return spec.row_spec.output_stage   # a 1-D spec keeps its arithmetic in its row spec


def shares_output_stage(spec, channels):
    """Whether ``channels`` can share one output stage (same scale and shift)."""
    stage = _stage(spec)
    return (len({stage.scale[c] for c in channels}) == 1
            and len({stage.shift[c] for c in channels}) == 1)


def requantize(m, root, spec, channel=0, *, select=None, name=None):
    """Register ``root`` (an adder-tree :class:`Term`) as the output value of ``channel``, or
    of ``channel[select]`` when ``channel`` is a list of channels sharing scale and shift."""
    stage = _stage(spec)
    channels = list(channel) if isinstance(channel, (list, tuple)) else [channel]
    assert shares_output_stage(spec, channels)
    first = channels[0]
    scale, shift, rounding = stage.scale[first], stage.shift[first], stage.rounding
    biases = [stage.bias[c] for c in channels]
    if name is None:
        name = f"_{first}" if getattr(spec, "out_channels", 1) > 1 else ""
    value = root.value << root.shift
    acc = -value if root.negative else value
    acc_lo, acc_hi = root.total_range()

    def constant(offsets):
        """One constant per channel, picked by ``select`` when they differ."""
        if len(set(offsets)) == 1:
            return offsets[0]
        return Array(C(v, signed(signed_bits(min(offsets), max(offsets)))) for v in offsets)[select]

    half = (1 << shift) >> 1
    if stage.pre_stages:
        products = [(a + b) * scale for a in (acc_lo, acc_hi) for b in biases]
        x = Signal(signed(signed_bits(min(products), max(products))), name=f"scaled{name}")
        m.d.sync += x.eq((acc + constant(biases)) * scale)
        offset = half
    else:
        x, offset = acc, constant([b + half for b in biases])
    rlo = min(stage.rounded_ranges[c][0] for c in channels)
    rhi = max(stage.rounded_ranges[c][1] for c in channels)
    rounded = Signal(signed(max(stage.out_bits, signed_bits(rlo, rhi))), name=f"rounded{name}")
    ties_to_even = rounding == "half-even" and shift
    if ties_to_even:
        assert stage.pre_stages
        m.d.sync += rounded.eq((x + (half - 1) + (x >> shift)[0]) >> shift)
    else:
        m.d.sync += rounded.eq((x + offset) >> shift)
    if not stage.saturates:
        return rounded[:stage.out_bits].as_signed()

    def below(bound):
        """``rounded < bound``, from ``x``: one comparison with a constant per case."""
        if ties_to_even:   # x + half - 1 + x[shift] < bound * 2**shift
            limit = (bound << shift) - half + 1
            return Mux((x >> shift)[0], x < limit - 1, x < limit)
        if stage.pre_stages:
            return x < (bound << shift) - half
        tests = [x < (bound << shift) - (b + half) for b in biases]
        return tests[0] if len(set(biases)) == 1 else Array(tests)[select]

    out_lo = min(stage.out_ranges[c][0] for c in channels)
    out_hi = max(stage.out_ranges[c][1] for c in channels)
    under, over = Signal(name=f"under{name}"), Signal(name=f"over{name}")
    m.d.sync += [under.eq(below(out_lo)), over.eq(~below(out_hi + 1))]
    result = Signal(signed(stage.out_bits), name=f"saturated{name}")
    m.d.sync += result.eq(Mux(under, out_lo, Mux(over, out_hi, rounded)))
    return result
