"""Integer widths and the validation of integer parameters, shared by every spec."""

import numbers

__all__ = ["signed_bits", "is_int", "validate_int", "pair"]


def signed_bits(lo, hi):
    """Smallest two's-complement width holding every integer in ``[lo, hi]``."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def validate_int(name, value, *, minimum=1, maximum=None):
    """``value`` as an ``int`` when it is an integer in ``[minimum, maximum]``, else an error
    naming ``name``, the value and the allowed range."""
    if not is_int(value):
        raise TypeError(f"'{name}' must be an integer, not {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ValueError(f"'{name}' must be {allowed}, not {value!r}")
    return int(value)


def pair(name, value, *, minimum=1):
    """Normalise ``n`` or ``(ny, nx)`` to a validated pair of integers."""
    if is_int(value):
        value = (value, value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise TypeError(f"'{name}' must be an integer or a pair of integers, not {value!r}")
    return tuple(validate_int(name, v, minimum=minimum) for v in value)
