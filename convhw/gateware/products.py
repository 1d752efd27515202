"""Masked taps and products: a position's kernel taps turned into adder-tree terms.

For every term of a spec's :meth:`~convhw.spec.ConvSpec.channel_terms` this registers what
enters the adder tree: a tap masked to zero (or to a constant border's ``fill``) where the
kernel lies in padding (shared by all of
that tap's CSD digits and partial products, and by every output channel that reads it), or a DSP
product ``tap * coefficient``. Partial products are gated by their coefficient bit from
``bank.active_late``, one cycle after ``bank.active`` was sampled, so every term of a position
sees the same coefficients.

A DSP product takes two stages (``spec.product_stages``): the masked tap and the coefficient go
into registers that feed only the multiplier, and the product goes straight into a register.
Those are the input and output registers of an ECP5 ``MULT18X18D``
(:func:`convhw.toolchain.netlist.absorb_dsp_registers` moves them there). The other terms of such
a spec are delayed by one cycle to arrive with the products.
"""

from amaranth import *

from ..spec import signed_bits
from ..terms import PARTIAL, PIXEL, PRODUCT
from .adder_tree import Term

__all__ = ["TermBuilder", "masked_terms"]

#: With DSP products, the partial products of at most this many logic taps are gated and
#: registered one by one (the adder tree then starts from registers: iCE40 Fmax with one logic
#: tap beside the DSPs). More logic taps keep one late register per tap instead: per-digit
#: registers cost ``coeff_bits`` times the flip-flops, and a 5x5 core would no longer fit a UP5K.
MAX_REGISTERED_PARTIAL_TAPS = 2


class TermBuilder:
    """Registers the adder-tree inputs of one position, for one output channel at a time.

    Parameters
    ----------
    m : Module
    spec : ConvSpec
        Gives ``channel_terms``, ``pixel_range``, ``coeff_bits`` and ``product_stages`` (a
        one-row spec for 1-D cores).
    tap : callable
        ``tap(row, col, ci)`` is the position's value of input channel ``ci`` at that tap,
        valid this cycle.
    inside : callable
        ``inside(row, col)`` is a 1-bit value, low where that tap lies in padding, or ``None``
        when it never does.
    bank : CoefficientBank, optional
        Runtime coefficients; required when ``spec.runtime_coeffs``.
    fill : int
        What a masked tap holds: 0, or the value of a constant border.
    """

    def __init__(self, m, spec, tap, inside, bank=None, fill=0):
        self._m, self._spec, self._tap, self._inside, self._bank = m, spec, tap, inside, bank
        self._fill = fill
        self._early, self._masked, self._late_coeffs = {}, {}, {}
        partial_taps = {(co, row, col, ci) for co in range(getattr(spec, "out_channels", 1))
                        for row, col, ci, kind, *_ in self._channel_terms(co) if kind == PARTIAL}
        self._register_partials = (spec.product_stages and
                                   len(partial_taps) <= MAX_REGISTERED_PARTIAL_TAPS)

    def _channel_terms(self, co):
        spec = self._spec
        if hasattr(spec, "channel_terms"):
            return spec.channel_terms(co)
        return [(row, col, 0, *rest) for row, col, *rest in spec.terms]

    def _register(self, value, name):
        reg = Signal(value.shape(), name=name)
        self._m.d.sync += reg.eq(value)
        return reg

    def _gate(self, row, col, value):
        mask = self._inside(row, col)
        return value if mask is None else Mux(mask, value, self._fill)

    def _zero_unless(self, row, col, value):
        """``gate`` as an AND, not a multiplexer: Yosys then keeps it as logic in front of the
        register rather than a per-tap synchronous reset, so every multiplier's registers share
        one reset, as the DSP blocks that share control signals need."""
        mask = self._inside(row, col)
        if mask is None:
            return value
        if self._fill:
            return Mux(mask, value, self._fill)
        masked = value.as_unsigned() & mask.replicate(len(value))
        return masked.as_signed() if value.shape().signed else masked

    def _early_tap(self, row, col, ci):
        """The masked tap, registered once."""
        key = (row, col, ci)
        if key not in self._early:
            self._early[key] = self._register(self._gate(row, col, self._tap(row, col, ci)),
                                              f"tap_{ci}_{row}_{col}")
        return self._early[key]

    def _masked_tap(self, row, col, ci):
        """The masked tap, valid one cycle before the products."""
        key = (row, col, ci)
        if key not in self._masked:
            masked = self._early_tap(row, col, ci)
            if self._spec.product_stages:
                masked = self._register(masked, f"tap_{ci}_{row}_{col}_late")
            self._masked[key] = masked
        return self._masked[key]

    def _late_coeff(self, co, ci, row, col):
        """The coefficient of the partial products, in the cycle they are gated."""
        key = (co, ci, row, col)
        if key not in self._late_coeffs:
            coeff = self._bank.active_late[co][ci][row][col]
            if self._spec.product_stages:
                coeff = self._register(coeff, f"coeff_{co}_{ci}_{row}_{col}_late")
            self._late_coeffs[key] = coeff
        return self._late_coeffs[key]

    def terms(self, co=0):
        """The :class:`Term` list of output channel ``co``, valid ``1 + spec.product_stages``
        cycles after the taps."""
        spec = self._spec
        xlo, xhi = spec.pixel_range
        cb = spec.coeff_bits
        m = self._m
        terms = []
        for row, col, channel, kind, shift, negative in self._channel_terms(co):
            ci = channel - spec.input_channel(co, 0) if hasattr(spec, "input_channel") else 0
            if kind == PRODUCT:
                corners = [c * x for c in (-(1 << (cb - 1)), (1 << (cb - 1)) - 1)
                           for x in (xlo, xhi)]
                # Multiplier input registers, each feeding only the multiplier, then the product.
                name = f"{co}_{ci}_{row}_{col}"
                tap_in = self._register(
                    self._zero_unless(row, col, self._tap(row, col, channel)), f"dsp_tap_{name}")
                coeff_in = self._register(self._bank.active[co][ci][row][col],
                                          f"dsp_coeff_{name}")
                product = Signal(signed(signed_bits(min(corners), max(corners))),
                                 name=f"product_{name}")
                m.d.sync += product.eq(tap_in * coeff_in)
                terms.append(Term(product, min(corners), max(corners)))
            elif kind == PIXEL:
                terms.append(Term(self._masked_tap(row, col, channel), xlo, xhi, shift, negative))
            else:
                assert kind == PARTIAL
                if self._register_partials:
                    # Gated in the stage the partial products wait for the DSP products, so the
                    # adder tree starts from registers (iCE40 Fmax).
                    bit = self._bank.active_late[co][ci][row][col][shift]
                    gated = self._register(Mux(bit, self._early_tap(row, col, channel), 0),
                                           f"partial_{co}_{ci}_{row}_{col}_{shift}")
                else:
                    gated = Mux(self._late_coeff(co, ci, row, col)[shift],
                                self._masked_tap(row, col, channel), 0)
                terms.append(Term(gated, min(xlo, 0), max(xhi, 0), shift, negative))
        return terms


def masked_terms(m, spec, taps, inside, bank=None):
    """The terms of a one-channel ``spec`` whose taps are ``taps[row][col]``."""
    return TermBuilder(m, spec, lambda row, col, ci: taps[row][col], inside, bank).terms(0)
