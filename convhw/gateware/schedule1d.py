"""1-D position scheduler: walks a sequence's positions and says what each one does.

A bounded sequence is ``spec.positions_per_frame`` positions: one per sample, then the right
padding's positions without input. The scheduler describes the current position from its
counters: whether it takes a sample, whether it completes an output (and that output's
``first``/``last`` markers), and which taps fall inside the sequence (see
:attr:`Schedule1d.padded_taps` for the few that need a mask). After the last position the next
sequence starts. ``truncate`` (an early ``first``) turns the rest of the sequence into positions
without input, so all of its outputs still come out. With a border mode other than ``constant``,
or a constant border value other than 0, it also says where each tap reads at the outputs that
touch the border (``select``: one-hot bits per tap from equality tests of the position,
:mod:`convhw.gateware.border`).

An unbounded sequence (``spec.length is None``) has no end: the position counter stops once the
tap line is full, and a stride phase picks every ``stride``-th position. ``restart`` (a
``first`` on the incoming sample) makes the current position a new sequence's position 0, with
no bubble: nothing of the old sequence is pending.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .border import BorderSelect

__all__ = ["Schedule1d"]


class Schedule1d(wiring.Component):
    """Stream positions of a :class:`~convhw.spec1d.Conv1dSpec`.

    Members
    -------
    advance : In(1)
        Issue the current position.
    truncate : In(1)
        Bounded only: finish the sequence without further input.
    restart : In(1)
        Unbounded only: the current position starts a new sequence.
    needs_input, at_start : Out(1)
        The position consumes a sample; it is a sequence's first.
    emit, first, last : Out(1)
        The position completes an output; that output is its sequence's first; its last.
    mask : Out(K)
        Taps that do not reach before the sequence's start. Only the bits of
        :attr:`padded_taps` are computed; the others are constant 1.
    select : Out(border.width)
        Border sources (see :attr:`border`): which tap-line register each tap reads.
    """

    def __init__(self, spec):
        self._spec = spec
        self.border = None
        if spec.length is not None and (spec.border_sources or spec.border_value):
            self.border = BorderSelect(spec.border_axis)
        selects = {"select": Out(self.border.width)} if self.border and self.border.width else {}
        super().__init__({
            "advance": In(1), "truncate": In(1), "restart": In(1),
            "needs_input": Out(1), "at_start": Out(1),
            "emit": Out(1), "first": Out(1), "last": Out(1),
            "mask": Out(spec.kernel_size),
            **selects,
        })

    @property
    def padded_taps(self):
        """Taps that must be masked: those that reach before the sequence further than zeros.

        Before a sequence's first sample the tap line holds the zeros that the previous
        sequence's positions without input pushed (``positions_per_frame - length`` of them, or
        more after an early ``first``; all zeros after reset). Tap ``j`` reaches at most
        ``left - j*dilation`` samples back, so only taps reaching further need a mask. Taps past
        the end read the zeros pushed there and need none. Unbounded streams emit no output
        before the tap line is full.
        """
        spec = self._spec
        if spec.length is None:
            return ()
        zeros = spec.positions_per_frame - spec.length
        return tuple(j for j in range(spec.kernel_size)
                     if spec.padding[0] - j * spec.dilation > zeros)

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        stride = spec.stride
        first_out = spec.output_position(0)
        phase_init = -first_out % stride
        unbounded = spec.length is None
        # Unbounded: the counter stops one past the first output; bounded: it wraps.
        end = first_out + 1 if unbounded else spec.positions_per_frame - 1

        t = Signal(range(end + 1))
        phase = Signal(range(stride), init=phase_init)
        if unbounded:
            pos, ph = Mux(self.restart, 0, t), Mux(self.restart, phase_init, phase)
        else:
            pos, ph = t, phase
        truncating = Signal()

        with m.If(self.advance):
            if unbounded:
                m.d.sync += t.eq(Mux(pos == end, end, pos + 1))
            else:
                m.d.sync += t.eq(Mux(pos == end, 0, pos + 1))
                with m.If(pos == end):
                    m.d.sync += truncating.eq(0)
            next_phase = Mux(ph == stride - 1, 0, ph + 1)
            if not unbounded:
                next_phase = Mux(pos == end, phase_init, next_phase)
            m.d.sync += phase.eq(next_phase)
        with m.Elif(self.truncate):
            m.d.sync += truncating.eq(1)

        emit = ph == 0
        if first_out > 0:
            emit &= pos >= first_out
        if unbounded:
            m.d.comb += self.needs_input.eq(1)
        else:
            last_out = spec.output_position(spec.out_length - 1)
            if last_out < end:
                emit &= pos <= last_out
            has_sample = (pos < spec.length) if spec.length <= end else C(1)
            m.d.comb += [self.needs_input.eq(has_sample & ~truncating),
                         self.last.eq(pos == last_out)]
        m.d.comb += [
            self.at_start.eq(pos == 0),
            self.emit.eq(emit),
            self.first.eq(pos == first_out),
        ]
        if self.border is not None and self.border.width:
            # Equality tests of the position, as for ``first`` and ``last``.
            bits = self.border.bits(lambda o: pos == spec.output_position(o))
            m.d.comb += self.select.eq(Cat(*bits))
        for j in range(spec.kernel_size):
            if j in self.padded_taps:
                # Tap j holds sample pos - (span-1) + j*dilation of this sequence.
                m.d.comb += self.mask[j].eq(pos >= spec.span - 1 - j * spec.dilation)
            else:
                m.d.comb += self.mask[j].eq(1)
        return m
