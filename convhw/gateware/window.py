"""Window: the KH x KW kernel taps of the current position, in registers.

Each shift takes one column of KH pixels (one per kernel row) and pushes it in on the right.
The register chain is ``dilation_x*(KW-1)+1`` columns long; tap ``(i, j)`` is column ``j*dx``.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Window", "LaneWindow"]


class Window(wiring.Component):
    """Members: ``shift``, ``column`` (In); ``taps[i][j]`` (Out, registered)."""

    def __init__(self, *, shape, kernel_shape, dilation_x):
        kh, kw = kernel_shape
        self._kw, self._dx = kw, dilation_x
        super().__init__({
            "shift": In(1),
            "column": In(data.ArrayLayout(shape, kh)),
            "taps": Out(data.ArrayLayout(data.ArrayLayout(shape, kw), kh)),
        })

    def elaborate(self, platform):
        m = Module()
        span = self._dx * (self._kw - 1) + 1
        for i, newest in enumerate(self.column):
            chain = [Signal.like(newest, name=f"win_{i}_{k}") for k in range(span)]
            with m.If(self.shift):
                m.d.sync += chain[-1].eq(newest)
                m.d.sync += [chain[k].eq(chain[k + 1]) for k in range(span - 1)]
            m.d.comb += [self.taps[i][j].eq(chain[j * self._dx]) for j in range(self._kw)]
        return m


class LaneWindow(wiring.Component):
    """The window of a core taking ``lanes`` pixels per clock.

    Each shift takes one beat per kernel row (``lanes`` pixels, the leftmost first) and pushes
    it in on the right of a chain of ``length`` pixels, so ``chain[i][length - 1]`` is the
    newest pixel of kernel row ``i``. Lane ``k``'s tap ``(i, j)`` is ``chain[i][k + j*dx]``
    when ``length = dx*(KW-1) + lanes + d`` (``d``: how far the output beat lags the beat).

    Members: ``shift``, ``column`` (In, ``[row][lane]``); ``chain[row][index]`` (Out, registers).
    """

    def __init__(self, *, shape, rows, lanes, length):
        self._lanes, self._length = lanes, length
        super().__init__({
            "shift": In(1),
            "column": In(data.ArrayLayout(data.ArrayLayout(shape, lanes), rows)),
            "chain": Out(data.ArrayLayout(data.ArrayLayout(shape, length), rows)),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, length = self._lanes, self._length
        for i, beat in enumerate(self.column):
            chain = [Signal.like(beat[0], name=f"win_{i}_{k}") for k in range(length)]
            incoming = [chain[k + lanes] for k in range(length - lanes)] + \
                [beat[k] for k in range(lanes)]
            with m.If(self.shift):
                m.d.sync += [reg.eq(value) for reg, value in zip(chain, incoming)]
            m.d.comb += [self.chain[i][k].eq(chain[k]) for k in range(length)]
        return m
