"""A registered shift-register IO ring, so that any core fits any package for Fmax figures.

A W=640 core with AXI4-Stream ports has about 40 to 60 IOs; an iCE40 UP5K in SG48 has 39. And
when pins drive the core directly, the paths from pins are not register-to-register, so they
say nothing about Fmax. :class:`ShiftRegisterIO` gives the core what a system around it would:
every input comes from a flip-flop (an input shift register fed from pin ``din``) and every
output goes into a flip-flop (an output shift register, loaded in parallel when ``load`` is high,
shifted out through ``dout`` otherwise). Every core input stays controllable and every output
observable, so synthesis can remove nothing. The top has five pins: ``clk``, ``rst``, ``din``,
``load``, ``dout``.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ShiftRegisterIO"]


class ShiftRegisterIO(wiring.Component):
    """Wraps ``inner``, a component with flat ``In``/``Out`` ports (e.g. ``AxiStreamTop``)."""

    din: In(1)
    load: In(1)
    dout: Out(1)

    def __init__(self, inner):
        self._inner = inner
        super().__init__()

    @property
    def ring_bits(self):
        """Flip-flops in the two shift registers: one per bit of ``inner``'s ports."""
        return sum(len(getattr(self._inner, name)) for name in self._inner.signature.members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self._inner
        inputs, outputs = [], []
        for name, member in inner.signature.members.items():
            if not member.is_port:
                raise TypeError(f"'inner' must have flat ports only, but {name!r} is not a port")
            port = getattr(inner, name)
            (inputs if member.flow == In else outputs).append(port)

        in_chain = Signal(sum(len(port) for port in inputs), name="in_chain")
        m.d.sync += in_chain.eq(Cat(self.din, in_chain[:-1]))
        offset = 0
        for port in inputs:
            m.d.comb += port.eq(in_chain[offset:offset + len(port)])
            offset += len(port)

        captured = Cat(*outputs)
        out_chain = Signal(len(captured), name="out_chain")
        with m.If(self.load):
            m.d.sync += out_chain.eq(captured)
        with m.Else():
            m.d.sync += out_chain.eq(out_chain[1:])
        m.d.comb += self.dout.eq(out_chain[0])
        return m
