"""Position scheduler: walks a frame's stream positions and says what each one does.

A frame is ``spec.positions_per_frame`` positions in rows of ``spec.stream_width`` (see
:mod:`convhw.spec`). The scheduler keeps the current position in counters and describes it
combinationally from those registers: whether it takes an input pixel, which line-buffer column
it touches, whether it completes an output, that output's frame markers, and which kernel rows
and columns fall inside the frame (the others are zero padding and are masked).

``advance`` moves to the next position; after the last one it starts the next frame.
``truncate`` (an early start of frame) turns the rest of the frame into positions without input,
so the frame's outputs still all come out and the next frame starts cleanly.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Scheduler"]


def _count(m, counter, limit, enable):
    """Increment ``counter`` modulo ``limit`` when ``enable``; return the wrap condition."""
    wrap = counter == limit - 1
    with m.If(enable):
        m.d.sync += counter.eq(Mux(wrap, 0, counter + 1))
    return wrap


class Scheduler(wiring.Component):
    """Stream positions of ``spec``.

    Members
    -------
    advance, truncate : In(1)
        Issue the current position; finish the frame without further input.
    needs_input, at_start, in_columns, column : Out
        The position consumes a pixel; it is the frame's first; it lies in a line-buffer column;
        that column.
    emit, first, last : Out(1)
        The position completes an output; that output starts the frame; it ends its row.
    row_mask, col_mask : Out(KH), Out(KW)
        Kernel rows and columns inside the frame for that output.
    """

    def __init__(self, spec):
        self._spec = spec
        kh, kw = spec.kernel_shape
        super().__init__({
            "advance": In(1), "truncate": In(1),
            "needs_input": Out(1), "at_start": Out(1), "in_columns": Out(1),
            "column": Out(range(spec.stream_width)),
            "emit": Out(1), "first": Out(1), "last": Out(1),
            "row_mask": Out(kh), "col_mask": Out(kw),
        })

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        (kh, kw), (sy, sx), (dy, dx) = spec.kernel_shape, spec.stride, spec.dilation
        (pad_top, _), (pad_left, _) = spec.padding
        out_h, out_w = spec.out_shape
        wv, total = spec.stream_width, spec.positions_per_frame
        end_y, end_x = divmod(total - 1, wv)
        # Output coordinates in padded space (ey = oy*sy, ex = ox*sx) of the current position.
        ey_init, ex_init = divmod(-spec.col_offset, wv)
        ey_init -= spec.row_offset
        ey_end = (total - 1 - spec.col_offset) // wv - spec.row_offset

        vx = Signal(range(wv), init=0)
        vy = Signal(range(end_y + 1), init=0)
        ex = Signal(range(wv), init=ex_init)
        ey = Signal(range(ey_init, ey_end + 1), init=ey_init)
        ex_phase = Signal(range(sx), init=ex_init % sx)
        ey_phase = Signal(range(sy), init=ey_init % sy)
        truncating = Signal()

        at_end = (vy == end_y) & (vx == end_x)
        step = self.advance & ~at_end
        with m.If(self.advance & at_end):
            m.d.sync += [vx.eq(0), vy.eq(0), ex.eq(ex_init), ey.eq(ey_init),
                         ex_phase.eq(ex_init % sx), ey_phase.eq(ey_init % sy), truncating.eq(0)]
        with m.Elif(self.truncate):
            m.d.sync += truncating.eq(1)

        row_done = _count(m, vx, wv, step)
        with m.If(step & row_done):
            m.d.sync += vy.eq(vy + 1)
        out_row_done = _count(m, ex, wv, step)
        with m.If(step & out_row_done):
            m.d.sync += ey.eq(ey + 1)
        _count(m, ey_phase, sy, step & out_row_done)
        with m.If(step & out_row_done):
            m.d.sync += ex_phase.eq(0)
        with m.Elif(step):
            m.d.sync += ex_phase.eq(Mux(ex_phase == sx - 1, 0, ex_phase + 1))

        in_columns = (vx < spec.width) if wv > spec.width else C(1)
        m.d.comb += [
            self.at_start.eq((vx == 0) & (vy == 0)),
            self.in_columns.eq(in_columns),
            self.column.eq(vx),
            self.needs_input.eq((vy < spec.height) & in_columns & ~truncating),
            self.emit.eq((ey >= 0) & (ey <= (out_h - 1) * sy) & (ey_phase == 0)
                         & (ex <= (out_w - 1) * sx) & (ex_phase == 0)),
            self.first.eq((ey == 0) & (ex == 0)),
            self.last.eq(ex == (out_w - 1) * sx),
        ]
        for i in range(kh):
            lo = pad_top - i * dy
            m.d.comb += self.row_mask[i].eq((ey >= lo) & (ey < spec.height + lo))
        for j in range(kw):
            lo = pad_left - j * dx
            m.d.comb += self.col_mask[j].eq((ex >= lo) & (ex < spec.width + lo))
        return m
