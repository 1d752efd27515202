"""Runtime coefficient bank: written any time, applied only at a start of frame.

Writes land in a shadow copy. ``swap`` (asserted as the frame's first position passes the
window) copies the shadow into ``active``. ``active_late`` is ``active`` one cycle later, for
taps whose multiplication happens one pipeline stage further on, so that every position of a
frame sees one consistent set of coefficients.

Address ``addr`` holds weight ``spec.coefficient_index(addr) = (co, ci, row, col)``: the PyTorch
flat index of ``(Cout, Cin/groups, KH, KW)`` weights, the row-major kernel index for one kernel.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .layouts import coefficient_port_signature

__all__ = ["CoefficientBank"]


def bank_layout(spec):
    """``[co][ci][row][col]`` of signed ``coeff_bits`` values, in tap order."""
    kh, kw = spec.kernel_shape
    cout = getattr(spec, "out_channels", 1)
    cin = getattr(spec, "group_in_channels", 1)
    value = signed(spec.coeff_bits)
    return data.ArrayLayout(data.ArrayLayout(data.ArrayLayout(
        data.ArrayLayout(value, kw), kh), cin), cout)


class CoefficientBank(wiring.Component):
    """Members: ``port`` (In, the write port), ``swap`` (In); ``active``, ``active_late`` (Out),
    indexed ``[co][ci][row][col]`` in tap order (already flipped for mathematical
    convolution)."""

    def __init__(self, spec):
        self._spec = spec
        layout = bank_layout(spec)
        super().__init__({
            "port": In(coefficient_port_signature(spec)),
            "swap": In(1),
            "active": Out(layout),
            "active_late": Out(layout),
        })

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        count = getattr(spec, "coefficient_count", spec.taps)
        for addr in range(count):
            if hasattr(spec, "coefficient_index"):
                co, ci, row, col = spec.coefficient_index(addr)
            else:
                (row, col), co, ci = spec.tap_index(addr), 0, 0
            shadow = Signal(signed(spec.coeff_bits), name=f"shadow_{addr}")
            with m.If(self.port.we & (self.port.addr == addr)):
                m.d.sync += shadow.eq(self.port.data)
            with m.If(self.swap):
                m.d.sync += self.active[co][ci][row][col].eq(shadow)
            m.d.sync += self.active_late[co][ci][row][col].eq(self.active[co][ci][row][col])
        return m
