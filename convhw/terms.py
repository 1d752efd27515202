"""How each kernel tap turns into adder-tree inputs.

A compile-time coefficient becomes its canonical signed digits (CSD): ``c = sum(+-2**k)`` with no
two adjacent non-zero digits, so ``x*c`` costs one adder input per digit and no multiplier. A zero
coefficient costs nothing. A runtime coefficient is either one product ``x*c`` (which synthesis
maps to a DSP block) or, beyond the DSP budget, one partial product per coefficient bit, the sign
bit weighing ``-2**(coeff_bits-1)``.
"""

__all__ = ["csd_digits", "tap_terms", "tree_depth"]

#: Term kinds: a shifted pixel, a DSP product, and a pixel gated by one coefficient bit.
PIXEL, PRODUCT, PARTIAL = "pixel", "product", "partial"


def csd_digits(value):
    """``[(shift, negative), ...]`` with ``value == sum(-2**s if n else 2**s)``."""
    digits = []
    shift = 0
    while value:
        if value & 1:
            digit = 2 - (value & 3)  # +1 when value % 4 == 1, -1 when value % 4 == 3
            digits.append((shift, digit < 0))
            value -= digit
        value >>= 1
        shift += 1
    return digits


def tap_terms(coeff, coeff_bits, *, use_dsp):
    """``[(kind, shift, negative), ...]`` for one tap; ``coeff`` is ``None`` at runtime."""
    if coeff is not None:
        return [(PIXEL, shift, negative) for shift, negative in csd_digits(coeff)]
    if use_dsp:
        return [(PRODUCT, 0, False)]
    return [(PARTIAL, bit, bit == coeff_bits - 1) for bit in range(coeff_bits)]


def tree_depth(count):
    """Registered levels of a binary adder tree over ``count`` inputs."""
    depth = 0
    while count > 1:
        count = (count + 1) // 2
        depth += 1
    return depth
