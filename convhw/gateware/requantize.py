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
from .delay import delay

__all__ = ["requantize", "serial_requantize", "shares_output_stage"]


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
    return _round_and_saturate(m, stage, channels, x, shift, offset, biases, select, name)


def _round_and_saturate(m, stage, channels, x, shift, offset, biases, select, name):
    """The rounding stage of ``x`` (the scaled value, or the accumulator without a
    pre-stage), then the saturation stage when needed; the result."""
    rounding = stage.rounding
    half = (1 << shift) >> 1

    def constant(offsets):
        if len(set(offsets)) == 1:
            return offsets[0]
        return Array(C(v, signed(signed_bits(min(offsets), max(offsets)))) for v in offsets)[select]
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


def serial_requantize(m, total, spec, channels, *, select, start, name=""):
    """A folded lane's output stage that scales serially (``spec.serial_output_stage``).

    ``total`` (a :class:`Term`) holds the lane's accumulator for ``channels[select]`` in the
    cycle ``start`` is high; the result is valid ``spec.back_stages`` cycles later. Cycle by
    cycle: ``a = total + bias`` and the channel's aligned scale are registered; then for
    ``digits`` cycles the next ``r`` scale bits, least significant first, make Booth digits
    (-2 .. 2, one per bit pair, a last single bit -1 .. 1; with ``r == 1`` the bit itself),
    and each digit a registered row
    ``0``, ``a``, ``2a`` or their complement (one logic cell per bit: a multiplexer and an
    exclusive or in front of a flip-flop that resets to 0); a registered tree of
    ``spec.serial_tree_levels`` adders sums a cycle's rows, the complements' missing ones
    entering in the free low bits and carry-ins; the sum is added to the high part of the
    product, whose lowest ``r`` bits then leave it (only those that decide the rounding are
    kept: the rest are ORed into a sticky bit). Every cycle one carry chain at most. Then
    the kept bits plus a round-up bit, and saturation, as :func:`requantize` computes them.
    The next ``start`` comes no sooner than ``spec.simd_folds >= digits + 1`` cycles later.
    """
    stage = _stage(spec)
    radix_bits, digits = spec.serial_output_stage
    aligned, shift = spec.serial_scales
    scales = [aligned[c] for c in channels]
    biases = [stage.bias[c] for c in channels]
    acc_lo, acc_hi = total.total_range()
    value = total.value << total.shift
    acc = -value if total.negative else value

    a_lo, a_hi = acc_lo + min(biases), acc_hi + max(biases)
    a = Signal(signed(signed_bits(a_lo, a_hi)), name=f"serial_a{name}")
    bias = biases[0] if len(set(biases)) == 1 else \
        Array(C(b, signed(signed_bits(min(biases), max(biases)))) for b in biases)[select]
    # The scale, aligned to whole digits, a zero below it (the first Booth digit's lower
    # neighbour); each cycle its lowest r + 1 bits make the cycle's digits. One bit per
    # cycle is a plain binary digit (0 or 1: no complement, no neighbour).
    width = radix_bits * digits
    booth = int(radix_bits > 1)
    scale_reg = Signal(width + booth, name=f"serial_scale{name}")
    chosen = C(scales[0] << booth, len(scale_reg)) if len(set(scales)) == 1 else \
        Array(C(v << booth, len(scale_reg)) for v in scales)[select]
    with m.If(start):
        m.d.sync += [a.eq(acc + bias), scale_reg.eq(chosen)]
    with m.Else():
        m.d.sync += scale_reg.eq(scale_reg >> radix_bits)

    # One row per Booth digit: (value, range, offset, complemented).
    nodes = []
    for offset in range(0, radix_bits, 2):
        size = min(2, radix_bits - offset)
        bits = scale_reg[offset:offset + size + 1]      # lower neighbour first
        negative = bits[size]
        if not booth:
            zero, negative = ~scale_reg[0], C(0, 1)
            magnitude, top = a, max(-a_lo, a_hi)
        elif size == 2:
            zero = (bits == 0b000) | (bits == 0b111)
            magnitude = Mux((bits == 0b011) | (bits == 0b100), a << 1, a)
            top = 2 * max(-a_lo, a_hi)
        else:
            zero = bits[0] == bits[1]
            magnitude, top = a, max(-a_lo, a_hi)
        lo, hi = -top - 1, top
        row = Signal(signed(signed_bits(lo, hi)), name=f"serial_row{offset}{name}")
        complemented = Signal(name=f"serial_neg{offset}{name}")
        with m.If(zero):
            m.d.sync += row.eq(0)
        with m.Else():
            m.d.sync += row.eq(Mux(negative, ~magnitude, magnitude))
        m.d.sync += complemented.eq(negative & ~zero)
        nodes.append((row, (lo, hi), offset, complemented))

    # The rows' registered adder tree; a complemented row's missing one (2**offset) enters
    # as the free low bits plus the carry-in of the adder that adds it, except the lowest
    # row's: the accumulating adder's carry-in.
    level = 0
    while len(nodes) > 1:
        pairs = []
        for index in range(0, len(nodes), 2):
            low_node = nodes[index]
            low_value, (low_lo, low_hi), low_offset, low_neg = low_node
            if index + 1 == len(nodes):
                value, (lo, hi) = low_value, (low_lo, low_hi)
            else:
                high_value, (high_lo, high_hi), high_offset, high_neg = nodes[index + 1]
                gap = high_offset - low_offset
                value = _add_with_carry(low_value, Cat(high_neg.replicate(gap), high_value),
                                        high_neg)
                lo, hi = low_lo + (high_lo << gap), low_hi + (high_hi << gap) + (1 << gap)
            summed = Signal(signed(signed_bits(lo, hi)), name=f"serial_sum{level}_{index}{name}")
            neg = Signal(name=f"serial_sum{level}_{index}_neg{name}")
            m.d.sync += [summed.eq(value), neg.eq(low_neg)]
            pairs.append((summed, (lo, hi), low_offset, neg))
        nodes, level = pairs, level + 1
    assert level == spec.serial_tree_levels
    digit_sum, _, _, digit_neg = nodes[0]

    # The first digit's sum arrives 2 + levels cycles after start: the high part is cleared
    # the cycle before; then each digit's sum is added, and its r lowest bits leave.
    clear = delay(m, start, 1 + level, f"serial_clear{name}")
    first = Signal(name=f"serial_first{name}")
    m.d.sync += first.eq(clear)
    # After k digits the product of ``a`` and the digits so far, whose value lies in
    # ``[-2**(r*k-1), 2**(r*k-1))`` (Booth; binary: ``[0, 2**k)``), so the high part is
    # at most half of ``|a|`` (binary: ``|a|``).
    bound = max(-a_lo, a_hi) >> booth
    high = Signal(signed(signed_bits(-bound - 1, bound)), name=f"serial_high{name}")
    partial = _add_with_carry(high, digit_sum, digit_neg)
    with m.If(clear):
        m.d.sync += high.eq(0)
    with m.Else():
        m.d.sync += high.eq(partial >> radix_bits)
    # The bits that leave: the ones from bit shift - 1 up are kept in ``low`` (the product
    # ``x`` is then ``Cat(low, high)`` shifted left by ``base``), the others ORed into
    # ``sticky`` (only ties to even reads it).
    base = max(0, min(width, shift - 1))
    low = Signal(width - base, name=f"serial_low{name}")
    joined = Cat(Mux(first, C(0, len(low)), low), partial[:radix_bits])
    m.d.sync += low.eq(joined[radix_bits:])
    sticky = Signal(name=f"serial_sticky{name}")
    m.d.sync += sticky.eq(joined[:radix_bits].any() | (sticky & ~first))
    top = Cat(low, high).as_signed()

    if shift == 0:
        kept, decided = top, C(0, 1)
    else:
        at = shift - 1 - base               # bit shift - 1 of the product, in ``top``
        half = top[at]
        if stage.rounding == "half-even":
            rest = sticky | top[:at].any() if at else sticky
            decided = half & (rest | (top >> (at + 1))[0])
        else:
            decided = half
        kept = top >> (at + 1)
    return _round_dropped_bits(m, stage, channels, kept, decided, name)


def _add_with_carry(x, y, carry):
    """``x + y + carry`` (signed ``x``, ``y``) as one adder whose carry-in is ``carry``: the
    carry enters as a low bit of both operands (a sum of three operands would be mapped
    with a full-adder layer in front of the adder)."""
    return (Cat(carry, x).as_signed() + Cat(carry, y).as_signed()) >> 1


def _round_dropped_bits(m, stage, channels, kept_value, decided, name):
    """Rounding and saturation as :func:`_round_and_saturate`, from the kept part of the
    scaled value (``x >> shift``) and a round-up bit decided from the dropped bits, both
    registered first: then one narrow adder and narrow comparisons (a stage more than
    :func:`_round_and_saturate`)."""
    kept = Signal(signed(max(len(kept_value), 2)), name=f"kept{name}")
    up = Signal(name=f"round_up{name}")
    m.d.sync += [kept.eq(kept_value), up.eq(decided)]
    rlo = min(stage.rounded_ranges[c][0] for c in channels)
    rhi = max(stage.rounded_ranges[c][1] for c in channels)
    rounded = Signal(signed(max(stage.out_bits, signed_bits(rlo, rhi))), name=f"rounded{name}")
    m.d.sync += rounded.eq(kept + up)
    if not stage.saturates:
        return rounded[:stage.out_bits].as_signed()
    out_lo = min(stage.out_ranges[c][0] for c in channels)
    out_hi = max(stage.out_ranges[c][1] for c in channels)
    under, over = Signal(name=f"under{name}"), Signal(name=f"over{name}")
    m.d.sync += [under.eq((kept < out_lo - 1) | ((kept == out_lo - 1) & ~up)),   # kept+up < lo
                 over.eq((kept > out_hi) | ((kept == out_hi) & up))]            # kept+up > hi
    result = Signal(signed(stage.out_bits), name=f"saturated{name}")
    m.d.sync += result.eq(Mux(under, out_lo, Mux(over, out_hi, rounded)))
    return result
