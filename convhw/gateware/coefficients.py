"""Runtime coefficient bank: written any time, applied only at a start of frame.

Writes land in a shadow copy. ``swap`` (asserted as the frame's first position passes the
window) copies the shadow into ``active``. ``active_late`` is ``active`` one cycle later, for
taps whose multiplication happens one pipeline stage further on, so that every position of a
frame sees one consistent set of coefficients.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .layouts import coefficient_port_signature

__all__ = ["CoefficientBank"]


class CoefficientBank(wiring.Component):
    """Members: ``port`` (In, the write port), ``swap`` (In); ``active``, ``active_late`` (Out),
    indexed ``[row][col]`` in tap order (already flipped for mathematical convolution)."""

    def __init__(self, spec):
        self._spec = spec
        kh, kw = spec.kernel_shape
        layout = data.ArrayLayout(data.ArrayLayout(signed(spec.coeff_bits), kw), kh)
        super().__init__({
            "port": In(coefficient_port_signature(spec)),
            "swap": In(1),
            "active": Out(layout),
            "active_late": Out(layout),
        })

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        for addr in range(spec.taps):
            row, col = spec.tap_index(addr)
            shadow = Signal(signed(spec.coeff_bits), name=f"shadow_{addr}")
            with m.If(self.port.we & (self.port.addr == addr)):
                m.d.sync += shadow.eq(self.port.data)
            with m.If(self.swap):
                m.d.sync += self.active[row][col].eq(shadow)
            m.d.sync += self.active_late[row][col].eq(self.active[row][col])
        return m
