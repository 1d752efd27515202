"""Separable kernels: an integer kernel as the outer product of two integer vectors.

A kernel ``K`` (``KH x KW``) is separable when ``K[i][j] == u[i] * v[j]`` for integer vectors
``u`` (vertical, ``KH``) and ``v`` (horizontal, ``KW``). The hardware then computes a vertical
1-D pass (``u``) on each column entering the window and a horizontal one (``v``) on the window,
``KH + KW`` constant multiplications instead of ``KH x KW``, with the same integer result.

The factorization is unique up to moving a factor ``b`` of ``gcd(u)`` (and the sign) from one
vector to the other. :func:`best_factors` picks, among those, the pair with the fewest canonical
signed digits (the adder-tree inputs), then the smallest vertical vector (so the vertical sums,
which the window holds, stay narrow), then signs that make the vertical sums mostly positive.
"""

import math

from .terms import csd_digits

__all__ = ["factor", "best_factors", "fitting_factors", "digits", "DSP_OPERAND_BITS", "LOW_BIT"]

#: A runtime horizontal product multiplies a vertical sum, wider than a pixel. In a DSP block it
#: takes the sum's high part, at most this many bits (the iCE40's 16x16 multipliers; the ECP5's
#: are 18x18), and each bit below it gates the coefficient into the adder tree (``LOW_BIT``
#: terms), so that no product is split across blocks.
DSP_OPERAND_BITS = 16
#: Term kind: the coefficient, gated by one low bit of a vertical sum.
LOW_BIT = "low-bit"


def digits(vector):
    """Adder-tree inputs of constant multiplications by ``vector``: its CSD digits."""
    return sum(len(csd_digits(int(c))) for c in vector)


def factor(kernel):
    """``(u, v)`` with ``kernel == outer(u, v)`` and ``v`` primitive (``gcd(v) == 1``), or
    ``None`` when ``kernel`` (a 2-D sequence of integers) is not such a product or is zero."""
    rows = [[int(c) for c in row] for row in kernel]
    first = next((row for row in rows if any(row)), None)
    if first is None:
        return None
    g = math.gcd(*first)
    v = [c // g for c in first]
    pivot = next(j for j, c in enumerate(v) if c)
    u = []
    for row in rows:
        if row[pivot] % v[pivot]:
            return None
        a = row[pivot] // v[pivot]
        if [a * c for c in v] != row:
            return None
        u.append(a)
    return u, v


def _divisors(n):
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _candidates(u, v):
    """Every integer factorization ``(u / s, v * s)`` of ``outer(u, v)``."""
    for b in _divisors(math.gcd(*u)):
        for s in (b, -b):
            yield [a // s for a in u], [c * s for c in v]


def _sign_key(u, v):
    """Prefer a positive vertical sum, then a positive horizontal one, then a positive first
    coefficient."""
    first = next(a for a in u if a)
    return (-(sum(u) > 0), -(sum(u) == 0 and sum(v) > 0), -(first > 0))


def best_factors(kernel):
    """The cheapest integer factorization ``(u, v)`` of ``kernel``, or ``None``."""
    found = factor(kernel)
    if found is None:
        return None
    return min(_candidates(*found),
               key=lambda uv: (digits(uv[0]) + digits(uv[1]), max(abs(a) for a in uv[0]),
                               _sign_key(*uv)))


def fitting_factors(kernel, coeff_bits):
    """A factorization of ``kernel`` whose coefficients all fit signed ``coeff_bits``, or
    ``None`` (runtime coefficients: the two vectors to load)."""
    found = factor(kernel)
    if found is None:
        return None
    lo, hi = -(1 << (coeff_bits - 1)), (1 << (coeff_bits - 1)) - 1
    fits = [(u, v) for u, v in _candidates(*found) if all(lo <= c <= hi for c in u + v)]
    if not fits:
        return None
    return min(fits, key=lambda uv: (max(abs(c) for c in uv[0] + uv[1]), _sign_key(*uv)))
