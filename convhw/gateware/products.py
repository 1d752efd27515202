"""Masked taps and products: a position's kernel taps turned into adder-tree terms.

For every term of ``spec.terms`` this registers what enters the adder tree: a tap masked to
zero where the kernel lies in padding (shared by all of that tap's CSD digits and partial
products), or a DSP product ``tap * coefficient``. Partial products are gated by their
coefficient bit from ``bank.active_late``, one cycle after ``bank.active`` was sampled, so every
term of a position sees the same coefficients.

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

__all__ = ["masked_terms"]

#: With DSP products, the partial products of at most this many logic taps are gated and
#: registered one by one (the adder tree then starts from registers: iCE40 Fmax with one logic
#: tap beside the DSPs). More logic taps keep one late register per tap instead: per-digit
#: registers cost ``coeff_bits`` times the flip-flops, and a 5x5 core would no longer fit a UP5K.
MAX_REGISTERED_PARTIAL_TAPS = 2


def masked_terms(m, spec, taps, inside, bank=None):
    """Register the adder-tree inputs of one position.

    Parameters
    ----------
    m : Module
    spec : ConvSpec
        Gives ``terms``, ``pixel_range``, ``coeff_bits`` and ``product_stages`` (a one-row spec
        for 1-D cores).
    taps : ``taps[row][col]``
        The position's tap values, valid this cycle.
    inside : callable
        ``inside(row, col)`` is a 1-bit value, low where that tap lies in padding, or ``None``
        when it never does.
    bank : CoefficientBank, optional
        Runtime coefficients; required when ``spec.runtime_coeffs``.

    Returns
    -------
    list of Term
        Valid ``1 + spec.product_stages`` cycles after ``taps``.
    """
    xlo, xhi = spec.pixel_range
    extra = spec.product_stages
    early_taps, masked_taps, late_coeffs = {}, {}, {}

    def gate(row, col, value):
        mask = inside(row, col)
        return value if mask is None else Mux(mask, value, 0)

    def zero_unless(row, col, value):
        """``gate`` as an AND, not a multiplexer: Yosys then keeps it as logic in front of the
        register rather than a per-tap synchronous reset, so every multiplier's registers share
        one reset, as the DSP blocks that share control signals need."""
        mask = inside(row, col)
        if mask is None:
            return value
        masked = value.as_unsigned() & mask.replicate(len(value))
        return masked.as_signed() if value.shape().signed else masked

    def register(value, name):
        reg = Signal(value.shape(), name=name)
        m.d.sync += reg.eq(value)
        return reg

    def early_tap(row, col):
        """The masked tap, registered once."""
        if (row, col) not in early_taps:
            early_taps[row, col] = register(gate(row, col, taps[row][col]), f"tap_{row}_{col}")
        return early_taps[row, col]

    def masked_tap(row, col):
        """The masked tap, valid one cycle before the products."""
        if (row, col) not in masked_taps:
            masked = early_tap(row, col)
            if extra:
                masked = register(masked, f"tap_{row}_{col}_late")
            masked_taps[row, col] = masked
        return masked_taps[row, col]

    def late_coeff(row, col):
        """The coefficient of the partial products, in the cycle they are gated."""
        if (row, col) not in late_coeffs:
            coeff = bank.active_late[row][col]
            late_coeffs[row, col] = register(coeff, f"coeff_{row}_{col}_late") if extra else coeff
        return late_coeffs[row, col]

    partial_taps = {(row, col) for row, col, kind, *_ in spec.terms if kind == PARTIAL}
    register_partials = extra and len(partial_taps) <= MAX_REGISTERED_PARTIAL_TAPS
    terms = []
    for row, col, kind, shift, negative in spec.terms:
        if kind == PRODUCT:
            cb = spec.coeff_bits
            corners = [c * x for c in (-(1 << (cb - 1)), (1 << (cb - 1)) - 1) for x in (xlo, xhi)]
            # Multiplier input registers, each feeding only the multiplier, then the product.
            tap_in = register(zero_unless(row, col, taps[row][col]), f"dsp_tap_{row}_{col}")
            coeff_in = register(bank.active[row][col], f"dsp_coeff_{row}_{col}")
            product = Signal(signed(signed_bits(min(corners), max(corners))),
                             name=f"product_{row}_{col}")
            m.d.sync += product.eq(tap_in * coeff_in)
            terms.append(Term(product, min(corners), max(corners)))
        elif kind == PIXEL:
            terms.append(Term(masked_tap(row, col), xlo, xhi, shift, negative))
        else:
            assert kind == PARTIAL
            if register_partials:
                # Gated in the stage the partial products wait for the DSP products, so the
                # adder tree starts from registers (iCE40 Fmax).
                gated = register(Mux(bank.active_late[row][col][shift], early_tap(row, col), 0),
                                 f"partial_{row}_{col}_{shift}")
            else:
                gated = Mux(late_coeff(row, col)[shift], masked_tap(row, col), 0)
            terms.append(Term(gated, min(xlo, 0), max(xhi, 0), shift, negative))
    return terms
