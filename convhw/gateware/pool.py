"""A running max pool: windows that tile the frame, without a line buffer or a window.

For ``spec.pool_form == "running"`` (stride equal to the kernel, no padding, no dilation) each
pixel belongs to at most one window, and the scheduler completes an output exactly at its
window's last (bottom-right) pixel. So the core keeps one partial maximum per output column
(all channels): the maximum of the window's pixels seen so far. A window's first pixel starts
it over, every other pixel of the window raises it, and its last pixel gives the result, which
one register holds (saturated when the spec clamps: a clamp commutes with the maximum). Pixels
right of or below the last whole window change no result.

Registers (``spec.pool_partials == "registers"``): the partial maxima are a ring of one
register per output column, whose head is the current window's: a pixel updates the head in
place, and a window row's last pixel writes it to the tail as the ring turns. A stream row
holds one window row of every output column, so the ring turns once per row. One-row windows
need the head only.

Memory (``"memory"``, many output columns): a running register holds the maximum along the
current window row, and a memory the partial maxima of the rows above, one word per output
column, read one position ahead (the address is the next output column as a window row ends)
and written at the window row's last pixel.

Timing: a position issued at P0 is at S1 the next cycle (its pixel, and its place in the window
from counters that step at P0 and start over at each frame's first position), and its result
is registered there: ``spec.pipeline_depth`` is 2.
"""

from amaranth import *
from amaranth.lib import memory

from .delay import delay

__all__ = ["running_max_pool"]


def _larger(a, b):
    return Mux(a > b, a, b)


def _window_place(m, spec, sched, issue):
    """``(fresh, col_first, row_first, col_last, in_cols)``, flags of the position in S1: it
    is its window's first pixel; the first of its window row; in its window's first row; the
    last of its window row (of a whole window); in a whole window's columns. Counters of the
    place in the window step at each issue and start over at a frame's first position."""
    kh, kw = spec.kernel_shape
    width, out_w = spec.width, spec.out_shape[1]
    start = sched.at_start

    # The place in the window along a row (wraps at each stream row's end) and down.
    row_end = sched.column == width - 1
    col = row = C(0, 1)
    if kw > 1:
        col_phase = Signal(range(kw), name="pool_col_phase")
        col = Mux(start, 0, col_phase)
        with m.If(issue):
            m.d.sync += col_phase.eq(Mux(row_end | (col == kw - 1), 0, col + 1))
    if kh > 1:
        row_phase = Signal(range(kh), name="pool_row_phase")
        row = Mux(start, 0, row_phase)
        with m.If(issue):
            m.d.sync += row_phase.eq(Mux(row_end, Mux(row == kh - 1, 0, row + 1), row))
    in_cols = C(1, 1) if out_w * kw == width else sched.column < out_w * kw
    flags = [Signal(name=f"s1_{name}") for name in
             ("window_first", "col_first", "row_first", "col_last", "in_cols")]
    m.d.sync += [
        flags[0].eq((col == 0) & (row == 0)), flags[1].eq(col == 0), flags[2].eq(row == 0),
        flags[3].eq((col == kw - 1) & in_cols), flags[4].eq(in_cols),
    ]
    return flags


def running_max_pool(m, spec, sched, issue, s1, s1_valid, s1_pixel, pixel_shape):
    """The running max pool's datapath from S1 (``s1`` the position's control, ``s1_pixel``
    its pixel, 0 after an early end of frame): ``(results, control)``, one result per channel,
    entering the output queue with ``control.emit``."""
    kh, kw = spec.kernel_shape
    channels, out_w = spec.in_channels, spec.out_shape[1]
    lo, hi = spec.pixel_range
    word = pixel_shape
    fresh, col_first, row_first, col_last, in_cols = _window_place(m, spec, sched, issue)
    pixel = word(Value.cast(s1_pixel))
    moves = s1_valid & in_cols
    turns = s1_valid & col_last

    if spec.pool_partials == "registers":
        ring = [Signal(word, name=f"partial_{k}", reset_less=True)
                for k in range(out_w if kh > 1 else 1)]
        head = ring[0]
        updated = Signal(word, name="partial_updated")
        for ci in range(channels):
            m.d.comb += updated[ci].eq(Mux(fresh, pixel[ci], _larger(head[ci], pixel[ci])))
        if len(ring) == 1:
            with m.If(moves):
                m.d.sync += head.eq(updated)
        else:
            with m.If(turns):
                m.d.sync += [ring[k].eq(ring[k + 1]) for k in range(len(ring) - 1)]
                m.d.sync += ring[-1].eq(updated)
            with m.Elif(moves):
                m.d.sync += head.eq(updated)
    else:
        running = Signal(word, name="row_max", reset_less=True)
        column = Signal(range(out_w), name="pool_out_column")
        following = Mux(column == out_w - 1, 0, column + 1)
        m.submodules.partials = partials = memory.Memory(shape=word, depth=out_w, init=[])
        write, read = partials.write_port(), partials.read_port(transparent_for=())
        above = word(read.data)
        updated = Signal(word, name="partial_updated")
        for ci in range(channels):
            base = Mux(row_first, pixel[ci], _larger(above[ci], pixel[ci]))
            m.d.comb += updated[ci].eq(Mux(col_first, base, _larger(running[ci], pixel[ci])))
        # The read port holds the current output column's word: addressed with the next
        # column as a window row ends (a word is never read in the cycle it is written, as
        # there are at least 2 output columns).
        m.d.comb += [
            read.en.eq(1), read.addr.eq(Mux(turns, following, column)),
            write.en.eq(turns), write.addr.eq(column), write.data.eq(updated),
        ]
        with m.If(moves):
            m.d.sync += running.eq(updated)
        with m.If(turns):
            m.d.sync += column.eq(following)

    # The result register (saturated into the output range when the spec clamps).
    out_lo, out_hi = spec.out_range
    results = []
    for ci in range(channels):
        value = updated[ci]
        if out_lo > lo:
            value = Mux(value < out_lo, out_lo, value)
        if out_hi < hi:
            value = Mux(value > out_hi, out_hi, value)
        result = Signal(signed(spec.out_bits), name=f"pool_result_{ci}", reset_less=True)
        m.d.sync += result.eq(value)
        results.append(result)
    done = delay(m, s1, 1, "control")
    assert spec.pipeline_depth == 2
    return results, done
