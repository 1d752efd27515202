"""Line buffer: the ``rows`` previous rows of a frame, packed side by side in one memory.

One word per column holds all rows (oldest in the low bits), so a W-wide buffer of R rows of
B bits is a single ``W x R*B`` memory that Yosys maps to block RAM (``SB_RAM40_4K``, ``DP16KD``).

Contract: ``advance`` issues the current position, whose column is ``column`` (the following
position's is ``next_column``). One cycle later ``rows_out`` holds the current column's
``rows`` stored pixels, and the caller writes back the word shifted by one row with the new
pixel on top, by asserting ``write`` with ``write_column`` and ``pixel`` in that cycle.

Timing: when stream rows are at least 3 positions long, a column is read one position ahead:
the block RAM is addressed with ``next_column`` and enabled when the position before it is
issued, so its output holds the current column while that position waits, and a register
captures it when the position is issued. The block RAM output drives only that register, which
synthesis can move into the RAM's own output register (ECP5 ``DP16KD`` OUTREG), so the RAM's
clock-to-output time is off every logic path. A column's write-back lands at least one cycle
before the column is read again, so read and write never collide; only across a frame boundary
can a read see a column before the previous frame's last write-back, and the rows of a previous
frame are zero padding to the caller anyway. Shorter rows (1 or 2 positions) read in the
position's own cycle through a port transparent to the write-back.

Registers: a buffer of few columns (``registers``, :attr:`convhw.ConvSpec.line_buffer_registers`)
would be built by Yosys from flip-flops anyway, with an address decoder and two read registers
besides. It is a shift register of ``width`` words instead, which moves on each write-back:
columns are written in order, once per stream row, so its head is always the oldest word, the
current column's. (After a frame ends early the order holds again from the next frame's
second row; its first row's stored rows are padding to the caller.)
"""

from amaranth import *
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LineBuffer"]


class LineBuffer(wiring.Component):
    """``rows`` rows of ``width`` pixels of shape ``shape``, in stream rows of ``stream_width``.

    Members
    -------
    advance, column, next_column : In
        The current position is issued; its column; the following position's column.
    rows_out : Out(ArrayLayout(shape, rows))
        Stored pixels of the column issued last cycle, ``rows_out[0]`` the oldest row.
    write, write_column, pixel : In
        Write back ``rows_out[1:]`` plus ``pixel`` as the newest row.
    """

    def __init__(self, *, shape, rows, width, stream_width=None, registers=False):
        self._shape, self._rows, self._width = shape, rows, width
        self._registers = registers
        #: Registers only: the words from the oldest written column to the newest.
        self.words = [Signal(data.ArrayLayout(shape, rows), name=f"column_{k}")
                      for k in range(width)] if registers else None
        self._stream_width = width if stream_width is None else stream_width
        super().__init__({
            "advance": In(1),
            "column": In(range(self._stream_width)),
            "next_column": In(range(self._stream_width)),
            "rows_out": Out(data.ArrayLayout(shape, rows)),
            "write": In(1), "write_column": In(range(width)), "pixel": In(shape),
        })

    @property
    def reads_ahead(self):
        return self._stream_width >= 3

    def elaborate(self, platform):
        m = Module()
        word = data.ArrayLayout(self._shape, self._rows)
        pixel_bits = Shape.cast(self._shape).width
        if self._registers:
            chain = self.words
            incoming = Signal(word)
            m.d.comb += incoming.eq(Cat(chain[0].as_value()[pixel_bits:], self.pixel))
            with m.If(self.write):
                m.d.sync += [chain[k].eq(chain[k + 1]) for k in range(self._width - 1)]
                m.d.sync += chain[-1].eq(incoming)
            m.d.comb += self.rows_out.eq(chain[0])
            return m
        # Reading ahead, a column is never read in the cycle it is written, so Yosys need not
        # build collision logic around the block RAM (``no_rw_check``).
        attrs = {"no_rw_check": 1} if self.reads_ahead else {}
        m.submodules.storage = storage = memory.Memory(shape=word, depth=self._width, init=[],
                                                       attrs=attrs)
        wr = storage.write_port()
        if self.reads_ahead:
            rd = storage.read_port()
            held = Signal(word, name="held")
            with m.If(self.advance):
                m.d.sync += held.eq(rd.data)
            m.d.comb += rd.addr.eq(self.next_column)
        else:
            rd = storage.read_port(transparent_for=(wr,))
            held = rd.data
            m.d.comb += rd.addr.eq(self.column)
        m.d.comb += rd.en.eq(self.advance)
        m.d.comb += [
            self.rows_out.eq(held),
            wr.en.eq(self.write),
            wr.addr.eq(self.write_column),
            wr.data.eq(Cat(held.as_value()[pixel_bits:], self.pixel)),
        ]
        return m
