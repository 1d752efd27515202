"""Seeded, reproducible stall patterns, identical in every simulation engine.

Whether a stream stalls in a cycle is a pure function of ``(seed, stream, cycle)``: a
SplitMix64 hash compared with ``probability * 2**64``. Any engine (pysim, a compiled model) that
evaluates the same function sees the same pattern, so their cycle counts can be compared
exactly. The producer draws only while it is not already offering a pixel (a valid pixel is
held until it is taken); the consumer draws every cycle.
"""

__all__ = ["INPUT", "OUTPUT", "splitmix64", "StallPattern"]

_MASK = (1 << 64) - 1
INPUT, OUTPUT = 0, 1


def splitmix64(value):
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


class StallPattern:
    """``pattern(cycle)`` is true when the stream stalls in ``cycle``."""

    def __init__(self, seed, stream, probability):
        if not 0 <= probability < 1:
            raise ValueError(f"stall probability must be from 0 up to (not including) 1, "
                             f"not {probability!r}")
        self.key = splitmix64((seed * 2 + stream) & _MASK)
        self.threshold = int(probability * (1 << 64))

    def __call__(self, cycle):
        return self.threshold > 0 and splitmix64(self.key ^ cycle) < self.threshold
