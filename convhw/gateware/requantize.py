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
    cycle: ``a = total + bias`` is registered; then the multiples ``0 .. 2**r - 1`` of ``a``
    (shift-adds); then for ``digits`` cycles the next ``r`` bits of the channel's aligned scale,
    least significant first, pick a multiple into a register, which is added one cycle later
    to the high part of the product, whose lowest ``r`` bits then leave it (the selector and an
    adder as wide as a multiple in separate cycles); then the kept bits plus a round-up bit
    from the dropped ones, and saturation, as :func:`requantize` computes them. The next ``start`` comes no
    sooner than ``spec.simd_folds >= digits + 1`` cycles later, when the multiples are no
    longer needed.
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
    with m.If(start):
        m.d.sync += a.eq(acc + bias)

    # The scale, aligned to whole digits, loaded the cycle after start (with its channel).
    width = radix_bits * digits
    scale_reg = Signal(width, name=f"serial_scale{name}")
    channel = Signal.like(select, name=f"serial_channel{name}") if len(scales) > 1 else None
    loading = Signal(name=f"serial_load{name}")
    m.d.sync += loading.eq(start)
    if channel is not None:
        with m.If(start):
            m.d.sync += channel.eq(select)
        chosen = Array(C(v, width) for v in scales)[channel]
    else:
        chosen = C(scales[0], width)
    with m.If(loading):
        m.d.sync += scale_reg.eq(chosen)
    with m.Else():
        m.d.sync += scale_reg.eq(scale_reg >> radix_bits)

    # Multiples of ``a`` (registered): shifts, and at most two adders in a row.
    count = 1 << radix_bits
    top = max(abs(a_lo), abs(a_hi)) * (count - 1)
    multiple_shape = signed(signed_bits(-top, top))
    multiples = [C(0, 1)]
    for k in range(1, count):
        reg = Signal(multiple_shape, name=f"serial_m{k}{name}")
        m.d.sync += reg.eq(_multiple(a, k, radix_bits)[0])
        multiples.append(reg)

    # Digits, least significant first: the multiple a digit picks is registered, then added
    # to the running high part, whose low r bits leave into ``low`` each cycle; so the adder
    # is only as wide as a multiple, and the rounding needs no wide adder either.
    picked = Signal(name=f"serial_picked{name}")
    m.d.sync += picked.eq(loading)
    term = Signal(multiple_shape, name=f"serial_term{name}")
    high = Signal(signed(max(multiple_shape.width + 1, shift + 2 - width)),
                  name=f"serial_high{name}")
    low = Signal(width, name=f"serial_low{name}")
    partial = high + term
    m.d.sync += [term.eq(Array(multiples)[scale_reg[:radix_bits]]),
                 low.eq(Cat(low[radix_bits:], partial[:radix_bits]))]
    with m.If(picked):      # cleared the cycle before the first digit's multiple arrives
        m.d.sync += high.eq(0)
    with m.Else():
        m.d.sync += high.eq(partial >> radix_bits)
    x = Cat(low, high).as_signed()
    return _round_dropped_bits(m, stage, channels, x, shift, name)


def _round_dropped_bits(m, stage, channels, x, shift, name):
    """Rounding and saturation of ``x * 2**-shift`` as :func:`_round_and_saturate`, from the
    kept part ``x >> shift`` and a round-up bit taken from the dropped bits, both registered
    first: then one narrow adder and narrow comparisons (a stage more than
    :func:`_round_and_saturate`)."""
    # A stage of its own decides the round-up bit (an OR over the dropped bits).
    kept = Signal(signed(max(len(x) - shift, 2)), name=f"kept{name}")
    up = Signal(name=f"round_up{name}")
    if shift == 0:
        decided = C(0, 1)
    elif stage.rounding == "half-even":
        sticky = x[:shift - 1].any() if shift > 1 else C(0, 1)
        decided = x[shift - 1] & (sticky | x[shift])
    else:
        decided = x[shift - 1]
    m.d.sync += [kept.eq(x >> shift), up.eq(decided)]
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


def _multiple(a, k, radix_bits):
    """``(k * a, adders in a row)`` from shifts and the fewest adders in a row."""
    if k & (k - 1) == 0:
        return a << (k.bit_length() - 1), 0
    if k % 2 == 0:
        twos = (k & -k).bit_length() - 1
        value, depth = _multiple(a, k >> twos, radix_bits)
        return value << twos, depth
    best = None
    for j in range(radix_bits + 1):
        power = 1 << j
        if power == k or abs(k - power) >= k:
            continue
        rest, depth = _multiple(a, abs(k - power), radix_bits)
        value = (a << j) + rest if power < k else (a << j) - rest
        if best is None or depth + 1 < best[1]:
            best = (value, depth + 1)
    return best
