"""Masked taps and products: a position's kernel taps turned into adder-tree terms.

For every term of ``spec.terms`` this registers what enters the adder tree one cycle later:
a tap masked to zero where the kernel lies in padding (shared by all of that tap's CSD digits
and partial products), or a masked DSP product ``tap * coefficient``. Partial products are gated
by their coefficient bit from ``bank.active_late``, one cycle after ``bank.active`` fed the DSP
products, so every term of a position sees the same coefficients.
"""

from amaranth import *

from ..spec import signed_bits
from ..terms import PARTIAL, PIXEL, PRODUCT
from .adder_tree import Term

__all__ = ["masked_terms"]


def masked_terms(m, spec, taps, inside, bank=None):
    """Register the adder-tree inputs of one position.

    Parameters
    ----------
    m : Module
    spec : ConvSpec
        Gives ``terms``, ``pixel_range`` and ``coeff_bits`` (a one-row spec for 1-D cores).
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
        Valid one cycle after ``taps``.
    """
    xlo, xhi = spec.pixel_range
    masked_taps = {}

    def gate(row, col, value):
        mask = inside(row, col)
        return value if mask is None else Mux(mask, value, 0)

    def masked_tap(row, col):
        if (row, col) not in masked_taps:
            tap = taps[row][col]
            masked = masked_taps[row, col] = Signal(tap.shape(), name=f"tap_{row}_{col}")
            m.d.sync += masked.eq(gate(row, col, tap))
        return masked_taps[row, col]

    terms = []
    for row, col, kind, shift, negative in spec.terms:
        if kind == PRODUCT:
            cb = spec.coeff_bits
            corners = [c * x for c in (-(1 << (cb - 1)), (1 << (cb - 1)) - 1) for x in (xlo, xhi)]
            product = Signal(signed(signed_bits(min(corners), max(corners))),
                             name=f"product_{row}_{col}")
            m.d.sync += product.eq(gate(row, col, taps[row][col] * bank.active[row][col]))
            terms.append(Term(product, min(corners), max(corners)))
        elif kind == PIXEL:
            terms.append(Term(masked_tap(row, col), xlo, xhi, shift, negative))
        else:
            assert kind == PARTIAL
            gated = Mux(bank.active_late[row][col][shift], masked_tap(row, col), 0)
            terms.append(Term(gated, min(xlo, 0), max(xhi, 0), shift, negative))
    return terms
