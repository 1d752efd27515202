"""What every streaming core shows outside: its interface and its credit-managed output queue.

The pipeline of a core never stalls. Instead, a result may enter it only while the output FIFO is
sure to have a slot for it when it comes out: :class:`OutputQueue` counts the results in flight
and in the FIFO (credits) against the FIFO's depth. The FIFO gives the output stream its
valid/ready behaviour: ``valid`` never depends on ``ready`` and the payload holds while waiting.
"""

from amaranth import *
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import coefficient_port_signature, pixel_layout

__all__ = ["core_signature", "OutputQueue"]


def core_signature(spec):
    """``i``, ``o`` and, for runtime coefficients, ``coef``: the members of a core for ``spec``.

    Works for any spec with ``in_bits``, ``in_signed``, ``out_bits``, ``runtime_coeffs``,
    ``taps`` and ``coeff_bits``.
    """
    members = {
        "i": In(stream.Signature(pixel_layout(spec.in_bits, spec.in_signed))),
        "o": Out(stream.Signature(pixel_layout(spec.out_bits, True))),
    }
    if spec.runtime_coeffs:
        members["coef"] = In(coefficient_port_signature(spec))
    return wiring.Signature(members)


class OutputQueue(wiring.Component):
    """Output FIFO of ``depth`` results of ``bits`` with credits for the results in flight.

    A result written with ``w_en`` is valid on ``o`` two cycles later
    (:attr:`convhw.spec.ConvSpec.FIFO_LATENCY`) when the queue was empty.

    Members
    -------
    start : In(1)
        A result enters the pipeline (it takes a credit until it leaves through ``o``).
    can_start : Out(1)
        A credit is free; depends on registers only.
    next_can_start : Out(1)
        ``can_start`` of the next cycle.
    w_en : In(1), w_data : In(pixel_layout(bits, True))
        A result leaving the pipeline.
    o : Out(stream.Signature(pixel_layout(bits, True)))
    """

    def __init__(self, *, bits, depth):
        self._depth = depth
        layout = pixel_layout(bits, True)
        super().__init__({
            "start": In(1), "can_start": Out(1), "next_can_start": Out(1),
            "w_en": In(1), "w_data": In(layout),
            "o": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = queue = fifo.SyncFIFOBuffered(
            width=len(self.w_data.as_value()), depth=self._depth)
        owed = Signal(range(self._depth + 1))
        pop = self.o.valid & self.o.ready
        m.d.sync += owed.eq(owed + self.start - pop)
        # ``owed < depth`` kept in a register (it gates a core's issue logic): computed from
        # the present count for each of the three ways the count can move.
        can_start = Signal(init=1)
        m.d.comb += self.next_can_start.eq(Mux(self.start & ~pop, owed < self._depth - 1,
                                               Mux(pop & ~self.start, 1, owed < self._depth)))
        m.d.sync += can_start.eq(self.next_can_start)
        m.d.comb += [
            self.can_start.eq(can_start),
            queue.w_en.eq(self.w_en),
            queue.w_data.eq(self.w_data),
            self.o.valid.eq(queue.r_rdy),
            self.o.payload.eq(queue.r_data),
            queue.r_en.eq(self.o.ready),
        ]
        return m
