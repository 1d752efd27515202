"""Pipelined adder tree over signed, shifted terms, with exact per-node widths.

A :class:`Term` is ``(-1 if negative else 1) * (value << shift)`` where ``value`` lies in
``[lo, hi]``. Shifts stay symbolic (low zero bits never enter an adder) and signs combine
(``a - b`` costs what ``a + b`` does), so constant multiplications in canonical signed digits
need no negation logic. Every level is registered; ``depth`` is
:func:`convhw.terms.tree_depth` of the term count.
"""

from dataclasses import dataclass

from amaranth import *

from ..spec import signed_bits

__all__ = ["Term", "adder_tree"]


@dataclass(frozen=True)
class Term:
    value: Value
    lo: int
    hi: int
    shift: int = 0
    negative: bool = False

    def total_range(self):
        """Range of the signed, shifted contribution."""
        lo, hi = self.lo << self.shift, self.hi << self.shift
        return (-hi, -lo) if self.negative else (lo, hi)


def _combine(a, b):
    base = min(a.shift, b.shift)
    av, alo, ahi = a.value << (a.shift - base), a.lo << (a.shift - base), a.hi << (a.shift - base)
    bv, blo, bhi = b.value << (b.shift - base), b.lo << (b.shift - base), b.hi << (b.shift - base)
    if a.negative == b.negative:
        return av + bv, alo + blo, ahi + bhi, base, a.negative
    if a.negative:
        av, alo, ahi, bv, blo, bhi = bv, blo, bhi, av, alo, ahi
    return av - bv, alo - bhi, ahi - blo, base, False


def adder_tree(m, terms, *, name="tree"):
    """Sum ``terms`` in registered levels; return the root term."""
    if not terms:
        return Term(C(0, 1), 0, 0)
    level = 0
    while len(terms) > 1:
        # Pair like signs first, so most nodes add and the root is rarely negative.
        terms = sorted(terms, key=lambda t: t.negative)
        next_terms = []
        for index in range(0, len(terms) - 1, 2):
            expr, lo, hi, shift, negative = _combine(terms[index], terms[index + 1])
            node = Signal(signed(signed_bits(lo, hi)), name=f"{name}_l{level}_{index // 2}")
            m.d.sync += node.eq(expr)
            next_terms.append(Term(node, lo, hi, shift, negative))
        if len(terms) % 2:
            odd = terms[-1]
            node = Signal(signed(signed_bits(odd.lo, odd.hi)), name=f"{name}_l{level}_odd")
            m.d.sync += node.eq(odd.value)
            next_terms.append(Term(node, odd.lo, odd.hi, odd.shift, odd.negative))
        terms = next_terms
        level += 1
    return terms[0]
