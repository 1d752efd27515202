"""The separable form's datapath: a vertical 1-D pass, a window of vertical sums, a horizontal
1-D pass, for a kernel ``outer(u, v)`` (:mod:`convhw.separable`).

Contract
    From the column entering the window (S1, after the border row selection) to the result
    entering the output stage. The vertical pass masks each kernel row that lies in a
    ``constant`` border to ``border_value`` (so it contributes ``V*u[i]``), multiplies it by
    ``u[i]`` (CSD shift-adds, or runtime products) and sums the rows in a pipelined adder tree:
    ``spec.vertical_stages`` cycles. Its sum enters the window (``1 x span`` registers, one per
    channel) when the position's column would have. The horizontal pass takes the window's
    taps, each kernel column masked to ``V*sum(u)`` in a ``constant`` border or picked from the
    window chain by the border selection, and sums them multiplied by ``v[j]``, then the output
    stage. Every product, mask, tree and output stage is the 2-D core's
    (:class:`~convhw.gateware.products.TermBuilder`, :func:`adder_tree`, :func:`requantize`).

Timing
    ``spec.pipeline_depth`` is the 2-D formula plus ``spec.vertical_stages``; the pipeline never
    stalls, so ``cycles_per_frame`` and the backpressure rules are the 2-D core's.

Runtime coefficients
    :class:`SeparableCoefficients`: address ``co*(KH+KW) + i`` holds ``u[i]`` of channel ``co``
    and ``co*(KH+KW) + KH + j`` holds ``v[j]``, as written (not flipped). Writes go to a shadow
    copy; at a start of frame the vertical coefficients become active as the frame's first
    position reaches the vertical pass, and the horizontal ones (kept in a pending copy taken
    at the same time) when it reaches the horizontal pass, with ``border_value * sum(u)``, what
    a column in a ``constant`` border sums to.
"""

from dataclasses import replace

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..bits import signed_bits
from ..terms import PARTIAL, PIXEL, PRODUCT, csd_digits, tree_depth
from .adder_tree import Term, adder_tree
from .delay import delay
from .layouts import coefficient_port_signature
from .products import TermBuilder
from .requantize import requantize
from .window import Window

__all__ = ["SeparableCoefficients", "separable_datapath"]


class _Pass:
    """What :class:`TermBuilder` reads of a spec, for one pass of a separable ``spec`` (the
    horizontal pass: its pixel and partial-product terms; :func:`_wide_products` builds its
    DSP products)."""

    def __init__(self, spec, axis, pixel_range, product_stages):
        self._spec, self._axis = spec, axis
        self.out_channels = spec.out_channels
        self.pixel_range = pixel_range
        self.coeff_bits = spec.coeff_bits
        self.product_stages = product_stages

    def channel_terms(self, co):
        if self._axis:
            return [t for t in self._spec.horizontal_terms(co) if t[3] in (PIXEL, PARTIAL)]
        return self._spec.vertical_terms(co)

    def input_channel(self, co, ci):
        return co


def _layout(spec, axis):
    """``[co][0][row][col]`` coefficients of one pass: a ``KH x 1`` or ``1 x KW`` kernel."""
    kh, kw = spec.kernel_shape
    rows, cols = (1, kw) if axis else (kh, 1)
    return data.ArrayLayout(data.ArrayLayout(data.ArrayLayout(data.ArrayLayout(
        signed(spec.coeff_bits), cols), rows), 1), spec.out_channels)


class _Bank:
    """The ``active``/``active_late`` views of one pass, as :class:`TermBuilder` reads them."""

    def __init__(self, active, active_late):
        self.active, self.active_late = active, active_late


class SeparableCoefficients(wiring.Component):
    """Runtime coefficients of a separable spec: the vertical and horizontal vectors.

    Members
    -------
    port : In(coefficient_port_signature(spec))
        Writes, at any time (see :meth:`~convhw.ConvSpec.separable_address`).
    swap : In(1)
        A frame's first position is issued: the vertical coefficients are active next cycle,
        and a copy of the horizontal ones is taken.
    swap_late : In(1)
        That position reaches the horizontal pass next cycle: the copy becomes active.
    vertical, vertical_late, horizontal, horizontal_late : Out
        ``[co][0][row][col]`` in tap order; ``*_late`` one cycle later.
    fill : Out, a ``constant`` border other than 0 only
        ``[co]``: ``border_value * sum(u)``, what a column in the border sums to, active with
        the horizontal coefficients.
    """

    def __init__(self, spec):
        self._spec = spec
        members = {
            "port": In(coefficient_port_signature(spec)),
            "swap": In(1), "swap_late": In(1),
            "vertical": Out(_layout(spec, 0)), "vertical_late": Out(_layout(spec, 0)),
            "horizontal": Out(_layout(spec, 1)), "horizontal_late": Out(_layout(spec, 1)),
        }
        if not spec.border_sources and spec.border_value:
            lo, hi = spec.vertical_range(0)
            members["fill"] = Out(data.ArrayLayout(signed(signed_bits(lo, hi)),
                                                   spec.out_channels))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        kh, kw = spec.kernel_shape
        flip = spec.flip
        for co in range(spec.out_channels):
            vertical_shadows = []
            for axis, size in ((0, kh), (1, kw)):
                for index in range(size):
                    addr = spec.separable_address(co, axis, index)
                    tap = size - 1 - index if flip else index
                    shadow = Signal(signed(spec.coeff_bits), name=f"shadow_{addr}")
                    with m.If(self.port.we & (self.port.addr == addr)):
                        m.d.sync += shadow.eq(self.port.data)
                    if axis:
                        active, late = (self.horizontal[co][0][0][tap],
                                        self.horizontal_late[co][0][0][tap])
                        pending = Signal.like(shadow, name=f"pending_{addr}")
                        with m.If(self.swap):
                            m.d.sync += pending.eq(shadow)
                        with m.If(self.swap_late):
                            m.d.sync += active.eq(pending)
                    else:
                        vertical_shadows.append(shadow)
                        active, late = (self.vertical[co][0][tap][0],
                                        self.vertical_late[co][0][tap][0])
                        with m.If(self.swap):
                            m.d.sync += active.eq(shadow)
                    m.d.sync += late.eq(active)
            if "fill" in self.signature.members:
                # border_value * sum(u) of the copy the vertical pass takes, in CSD shift-adds.
                total = sum(vertical_shadows[1:], vertical_shadows[0])
                terms = [-(total << k) if negative else total << k
                         for k, negative in csd_digits(spec.border_value)]
                pending = Signal.like(self.fill[co], name=f"pending_fill_{co}")
                with m.If(self.swap):
                    m.d.sync += pending.eq(sum(terms[1:], terms[0]))
                with m.If(self.swap_late):
                    m.d.sync += self.fill[co].eq(pending)
        return m


def _register(m, value, name):
    reg = Signal(value.shape(), name=name)
    m.d.sync += reg.eq(value)
    return reg


def _wide_products(m, spec, co, tap, bank, vrange):
    """Channel ``co``'s horizontal DSP products, valid two cycles after the taps (as
    :class:`TermBuilder`'s): ``sum >> low`` times the coefficient in a DSP block, plus the
    coefficient gated by each of the sum's ``low`` lowest bits (``LOW_BIT`` terms)."""
    clo, chi = -(1 << (spec.coeff_bits - 1)), (1 << (spec.coeff_bits - 1)) - 1
    terms = []
    for _, col, _, kind, low, _ in spec.horizontal_terms(co):
        if kind != PRODUCT:
            continue
        name = f"{co}_h_{col}"
        value = Value.cast(tap(0, col, co))
        # Multiplier input registers, each feeding only the multiplier, then the product.
        tap_in = _register(m, value >> low, f"dsp_tap_{name}")
        coeff_in = _register(m, bank.active[co][0][0][col], f"dsp_coeff_{name}")
        corners = [c * (x >> low) for c in (clo, chi) for x in vrange]
        product = Signal(signed(signed_bits(min(corners), max(corners))), name=f"product_{name}")
        m.d.sync += product.eq(tap_in * coeff_in)
        terms.append(Term(product, min(corners), max(corners), low))
        if low:
            bits = _register(m, value[:low], f"low_bits_{name}")
            for bit in range(low):
                gated = Signal(signed(spec.coeff_bits), name=f"low_{name}_{bit}")
                m.d.sync += gated.eq(Mux(bits[bit], bank.active_late[co][0][0][col], 0))
                terms.append(Term(gated, clo, chi, bit))
    return terms


def _union(ranges):
    return (min(lo for lo, _ in ranges), max(hi for _, hi in ranges))


def separable_datapath(m, core, *, sched, p0, s1, s1_valid, column, pixel_shape):
    """Build the separable form from the S1 ``column`` (``KH`` values of ``pixel_shape``).

    ``p0`` and ``s1`` are the control words at issue and at S1 (``emit``, markers, ``sof``,
    ``col_mask``), ``s1_valid`` whether a position is in S1. Returns ``(results, done)``: the
    output values and the control word in the cycle they enter the output FIFO."""
    spec = core.spec
    kh, kw = spec.kernel_shape
    channels = spec.out_channels
    vs = spec.vertical_stages
    constant = not spec.border_sources
    fill = spec.border_value

    bank_v = bank_h = None
    if spec.runtime_coeffs:
        m.submodules.coefficients = bank = SeparableCoefficients(spec)
        wiring.connect(m, wiring.flipped(core.coef), bank.port)
        # The vertical pass samples its coefficients at S1, the horizontal one vs cycles later.
        m.d.comb += [bank.swap.eq(p0.sof),
                     bank.swap_late.eq(delay(m, s1.sof, vs, "swap_h"))]
        bank_v = _Bank(bank.vertical, bank.vertical_late)
        bank_h = _Bank(bank.horizontal, bank.horizontal_late)

    # Vertical pass, on the column entering the window.
    rows = [Signal(pixel_shape, name=f"s1_column_{i}") for i in range(kh)]
    m.d.comb += [rows[i].eq(column[i]) for i in range(kh)]
    row_mask = None
    if constant:
        row_mask = Signal(kh, name="s1_stream_row_mask")
        m.d.sync += row_mask.eq(sched.stream_row_mask)
    vertical = TermBuilder(
        m, _Pass(spec, 0, spec.pixel_range, spec.vertical_product_stages),
        lambda row, col, ci: rows[row][ci],
        (lambda row, col: row_mask[row]) if constant else (lambda row, col: None),
        bank_v, fill=fill)
    sums = []
    vrange = _union([spec.vertical_range(co) for co in range(channels)])
    vshape = signed(signed_bits(*vrange))
    for co in range(channels):
        terms = vertical.terms(co)
        root = adder_tree(m, terms, name=f"vtree_{co}" if channels > 1 else "vtree")
        lag = spec.vertical_tree_depth - tree_depth(len(terms))
        total = root.value << root.shift
        total = delay(m, -total if root.negative else total, lag, f"vroot_{co}")
        sums.append(total)

    # The window of vertical sums.
    cols = sched.col_border
    m.submodules.window = window = Window(
        shape=data.ArrayLayout(vshape, channels), kernel_shape=(1, spec.span[1]) if cols else
        (1, kw), dilation_x=1 if cols else spec.dilation[1])
    m.d.comb += window.shift.eq(delay(m, s1_valid, vs, "vsum_valid"))
    m.d.comb += [window.column[0][co].eq(sums[co]) for co in range(channels)]
    s2 = delay(m, s1, 1 + vs, "s2")

    # Horizontal pass, on the window's taps: a column in a constant border holds V*sum(u).
    if cols is not None:
        select = []
        if cols.width:
            select = delay(m, sched.col_select, 2 + vs, "col_select")
        picked = {}

        def tap(row, col, ci):
            if col not in picked:
                picked[col] = Signal(data.ArrayLayout(vshape, channels), name=f"vsum_tap_{col}")
                m.d.comb += picked[col].eq(cols.pick(col, lambda k: window.taps[0][k], select))
            return picked[col][ci]
    else:
        def tap(row, col, ci):
            if not fill:
                column_fill = 0
            elif spec.runtime_coeffs:
                column_fill = bank.fill[ci]
            else:
                column_fill = fill * sum(spec.separable_factors[ci][0])
            return Mux(s2.col_mask[col], window.taps[0][col][ci], column_fill)

    horizontal = TermBuilder(m, _Pass(spec, 1, vrange, spec.product_stages), tap,
                             lambda row, col: None, bank_h)
    results = []
    for co in range(channels):
        terms = horizontal.terms(co)
        if spec.runtime_coeffs:
            terms += _wide_products(m, spec, co, tap, bank_h, vrange)
        root = adder_tree(m, terms, name=f"tree_{co}" if channels > 1 else "tree")
        lag = spec.tree_depth - tree_depth(len(terms))
        if lag:
            root = replace(root, value=delay(m, root.value, lag, f"root_{co}"))
        results.append(requantize(m, root, spec, co))
    done = delay(m, s2, 1 + spec.product_stages + spec.tree_depth + spec.back_stages, "control")
    assert spec.pipeline_depth == 3 + vs + spec.product_stages + spec.tree_depth + \
        spec.back_stages
    return results, done
