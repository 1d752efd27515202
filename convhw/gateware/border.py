"""Border pixels from the pixels a core already holds: per-tap source selection.

When a core computes an output, its line buffer holds the span's rows and its window chain the
span's columns (:class:`~convhw.border.AxisBorder`: span indices ``0 ... span - 1``). A border
mode other than ``constant`` makes a tap outside the frame read another span index: the mirror
image or the edge. On one axis, :class:`BorderSelect` turns "the position's output is ``o``"
flags (registered scheduler flags, one per output that touches the border) into one-hot select
bits per tap (:meth:`BorderSelect.bits`, registered by the scheduler too), and
:meth:`BorderSelect.pick` builds the AND-OR of a tap's few possible sources. A tap never outside
the frame has no select bits and reads its own span index, so an axis without border outputs
costs nothing. No block RAM, no cycle: the selection replaces the zero mask in the same stage.

A ``None`` source (``constant`` borders of a 1-D core) is the constant ``fill``.
"""

from functools import reduce

from amaranth import *

__all__ = ["BorderSelect"]


def _any(bits):
    """OR of 1-bit values: Python ints stay ints (initial states use the hardware's
    expressions), Amaranth values become logic."""
    bits = list(bits)
    if all(isinstance(bit, int) for bit in bits):
        return int(any(bits))
    return reduce(lambda a, b: a | b, bits)


def _not(bit):
    return 1 - bit if isinstance(bit, int) else ~bit


class BorderSelect:
    """The source selection of one axis of ``spec`` (a :class:`~convhw.border.AxisBorder`)."""

    def __init__(self, axis):
        self._axis = axis
        self._choices = [axis.choices(j) for j in range(axis.taps)]

    @property
    def outputs(self):
        """The outputs whose taps touch the border (each needs a flag)."""
        return sorted(self._axis.zone)

    @property
    def width(self):
        """Select bits: one per source of each tap that has more than one."""
        return sum(len(c) for c in self._choices if len(c) > 1)

    def bits(self, flag):
        """The select bits, given ``flag(o)``: the position's output is ``o``."""
        result = []
        for j, choices in enumerate(self._choices):
            if len(choices) == 1:
                continue
            others = [_any([flag(o) for o in self._axis.uses(j, k)]) for k in choices[1:]]
            result += [_not(_any(others))] + others
        return result

    def pick(self, j, source, select, fill=None):
        """Tap ``j``'s value: ``source(k)`` is span index ``k`` (a value), ``select`` the select
        bits (a value of :attr:`width` bits), ``fill`` the value of a ``None`` source."""
        offset = sum(len(c) for c in self._choices[:j] if len(c) > 1)
        choices = self._choices[j]
        if len(choices) == 1:
            return Value.cast(source(choices[0]))
        terms = []
        for n, k in enumerate(choices):
            value = Value.cast(fill if k is None else source(k)).as_unsigned()
            terms.append(value & select[offset + n].replicate(len(value)))
        return _any(terms)
