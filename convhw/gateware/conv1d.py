"""Conv1d: a streaming 1-D convolution (FIR filter), one sample per clock, bit-exact.

Interface
    ``i``: input samples, ``first`` on a sequence's first sample. Only real samples are sent;
    padding is generated inside. ``o``: output samples, ``first`` on each sequence's first
    output and ``last`` on its last. ``coef`` (runtime coefficients only): write port, ``addr``
    indexing the kernel as the user wrote it; writes take effect at the next sequence start.

Datapath
    scheduler -> tap line (``dilation*(K-1)+1`` registers, no line buffer) -> masked taps /
    products -> pipelined adder tree -> round and saturate -> output FIFO.

Timing
    Every position takes one clock when nothing stalls: one per sample, plus the positions of
    the right padding (``positions_per_frame - length`` per sequence), which run without
    waiting for input so that a sequence's last outputs never wait for the next sequence. Left
    padding overlaps the previous sequence and costs no cycles. An output leaves
    ``spec.latency`` cycles after its position.

Backpressure
    The pipeline never stalls: a position is issued only while the output FIFO has a free slot
    for every result in flight (:class:`~convhw.gateware.core_io.OutputQueue`).

Borders
    ``spec.border`` other than ``constant`` 0: at the outputs that touch the border, each tap
    reads another register of the tap line (the mirror image or the edge) or the constant
    ``spec.border_value``, selected by the scheduler (:mod:`convhw.gateware.border`).

Sequence edges
    Bounded sequences (``spec.length``) are counted by position, so a producer that never sets
    ``first`` still works; input ``last`` is ignored. A ``first`` arriving mid-sequence ends
    that sequence early: its missing samples are taken as zeros, all of its outputs come out,
    and the new sequence starts with that sample. Unbounded sequences (``spec.length is
    None``) never end: outputs flow continuously, the first one marked ``first``, ``last``
    never set. A ``first`` on an input sample starts a new sequence at once: the history is
    discarded (the new sequence's first ``span - 1`` samples produce no output), runtime
    coefficients switch, and the next output is marked ``first`` again.
"""

from amaranth import *
from amaranth.lib import data, wiring

from ..spec1d import Conv1dSpec
from .adder_tree import adder_tree
from .coefficients import CoefficientBank
from .core_io import StreamingCore
from .delay import delay
from .products import masked_terms
from .requantize import requantize
from .schedule1d import Schedule1d
from .window import Window

__all__ = ["Conv1d"]


class Conv1d(StreamingCore):
    """Streaming 1-D convolution described by a :class:`~convhw.spec1d.Conv1dSpec`.

    Members
    -------
    i : In(stream.Signature(pixel_layout(in_bits, in_signed)))
        Samples.
    o : Out(stream.Signature(pixel_layout(out_bits, True)))
        Results, two's complement.
    coef : In(coefficient_port_signature(spec))
        Runtime coefficients only.
    """

    spec_type = Conv1dSpec

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        taps = spec.kernel_size
        output = self.output_queue(m)

        # P0: issue a position; its sample (zero past the end) enters the tap line.
        m.submodules.schedule = sched = Schedule1d(spec)
        sample = self.i.payload
        if spec.length is None:
            issue = output.can_start & self.i.valid
            m.d.comb += [self.i.ready.eq(output.can_start), sched.restart.eq(sample.first)]
        else:
            early_first = sample.first & ~sched.at_start
            wants = self.i.valid & sched.needs_input
            issue = output.can_start & Mux(sched.needs_input, self.i.valid & ~early_first, 1)
            m.d.comb += [
                self.i.ready.eq(output.can_start & sched.needs_input & ~early_first),
                sched.truncate.eq(wants & early_first),
            ]
        m.d.comb += [sched.advance.eq(issue), output.start.eq(issue & sched.emit)]

        border = sched.border
        # With border sources the tap line exposes every register, not only the taps'.
        m.submodules.tap_line = line = Window(
            shape=sample.data.shape(),
            kernel_shape=(1, spec.span if border else taps),
            dilation_x=1 if border else spec.dilation)
        m.d.comb += [line.shift.eq(issue),
                     line.column[0].eq(Mux(sched.needs_input, sample.data, 0))]

        control = data.StructLayout({"emit": 1, "first": 1, "last": 1, "mask": taps})
        p0 = Signal(control)
        m.d.comb += [p0.emit.eq(issue & sched.emit), p0.first.eq(sched.first),
                     p0.last.eq(sched.last), p0.mask.eq(sched.mask)]
        bank = None
        if spec.runtime_coeffs:
            # The swap lands as position 0's taps reach the multipliers (S1).
            m.submodules.coefficients = bank = CoefficientBank(spec.row_spec)
            wiring.connect(m, wiring.flipped(self.coef), bank.port)
            m.d.comb += bank.swap.eq(issue & sched.at_start)

        # S1: the tap line holds the position's taps; mask the padding and multiply.
        s1 = Signal(control)
        m.d.sync += s1.eq(p0)
        if border is None:
            padded = sched.padded_taps
            terms = masked_terms(m, spec.row_spec, line.taps,
                                 lambda row, col: s1.mask[col] if col in padded else None, bank)
        else:
            terms = masked_terms(m, spec.row_spec, [self._border_taps(m, sched, line)],
                                 lambda row, col: None, bank)

        # S2 on: adder tree, rounding and saturation, with the control alongside.
        result = requantize(m, adder_tree(m, terms), spec.row_spec)
        # s1 is one cycle past the issue; the result enters the FIFO pipeline_depth past it.
        done = delay(m, s1, spec.pipeline_depth - 1, "control")
        self.write_result(m, output, done, result)
        return m

    def _border_taps(self, m, sched, line):
        """Each tap picks a tap-line register or the constant border, by ``sched.select`` of
        the position (registered, so it arrives with the taps)."""
        spec, border = self._spec, sched.border
        shape = self.i.payload.data.shape()
        select = []
        if border.width:
            select = Signal(border.width, name="s1_select")
            m.d.sync += select.eq(sched.select)
        taps = []
        for j in range(spec.kernel_size):
            picked = Signal(shape, name=f"border_tap_{j}")
            m.d.comb += picked.eq(border.pick(j, lambda k: line.taps[0][k], select,
                                              fill=Const(spec.border_value, shape)))
            taps.append(picked)
        return taps
