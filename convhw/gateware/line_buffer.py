"""Line buffer: the ``rows`` previous rows of a frame, packed side by side in one memory.

One word per column holds all rows (oldest in the low bits), so a W-wide buffer of R rows of
B bits is a single ``W x R*B`` memory that Yosys maps to block RAM (``SB_RAM40_4K``, ``DP16KD``).

Contract: assert ``read`` with ``column`` to fetch a column; one cycle later ``rows_out`` holds
its ``rows`` stored pixels, and the caller writes back the word shifted by one row with the new
pixel on top, by asserting ``write`` with ``column`` and ``pixel`` in that cycle. The read port
is transparent, so a column written and read in the same cycle (a 1-pixel-wide frame) is right.
"""

from amaranth import *
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LineBuffer"]


class LineBuffer(wiring.Component):
    """``rows`` rows of ``width`` pixels of shape ``shape``.

    Members
    -------
    read, column : In
        Read request, presented one cycle before ``rows_out``.
    rows_out : Out(ArrayLayout(shape, rows))
        Stored pixels of the column requested last cycle, ``rows_out[0]`` the oldest row.
    write, write_column, pixel : In
        Write back ``rows_out[1:]`` plus ``pixel`` as the newest row.
    """

    def __init__(self, *, shape, rows, width):
        self._shape, self._rows, self._width = shape, rows, width
        super().__init__({
            "read": In(1), "column": In(range(width)),
            "rows_out": Out(data.ArrayLayout(shape, rows)),
            "write": In(1), "write_column": In(range(width)), "pixel": In(shape),
        })

    def elaborate(self, platform):
        m = Module()
        word = data.ArrayLayout(self._shape, self._rows)
        m.submodules.storage = storage = memory.Memory(shape=word, depth=self._width, init=[])
        wr = storage.write_port()
        rd = storage.read_port(transparent_for=(wr,))
        pixel_bits = Shape.cast(self._shape).width
        m.d.comb += [
            rd.en.eq(self.read),
            rd.addr.eq(self.column),
            self.rows_out.eq(rd.data),
            wr.en.eq(self.write),
            wr.addr.eq(self.write_column),
            wr.data.eq(Cat(rd.data.as_value()[pixel_bits:], self.pixel)),
        ]
        return m

