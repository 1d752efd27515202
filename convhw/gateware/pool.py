"""A running max pool: windows that tile the frame, without a line buffer or a window.

For ``spec.pool_form == "running"`` (stride equal to the kernel, no padding, no dilation) each
pixel belongs to at most one window, and the scheduler completes an output exactly at its
window's last (bottom-right) pixel. So the core keeps one partial maximum per output column
(all channels): the maximum of the window's pixels seen so far, which every pixel of the window
raises and whose value after the window's last pixel is the result. Pixels right of or below
the last whole window change no result. The result enters the output queue two cycles later,
from a result stage, saturated when the spec clamps (a clamp commutes with the maximum).

Registers (``spec.pool_partials == "registers"``): a ring of one register per output column.
Its head is the current output column's partial maximum, raised by each pixel in place (a
comparison and a multiplexer: no start of window steers it, as the head holds the lowest pixel
value when a window starts). At a window row's last pixel the ring turns: the raised value goes
to the tail (after a window's last row it is the result, held there for a cycle at least) and
the head takes the following output column's partial maximum, or the lowest value when a window
starts there. A stream row holds one window row of every output column, so the ring turns once
per output column and row; a frame's first position takes its pixel whatever the head holds, so
rows below the last whole window leave nothing behind. The head holds its complement in offset binary,
which a carry chain adds to the pixel to compare them (no inverter in the head's loop).

Memory (``"memory"``, more output columns): a running register holds the maximum along the
current window row, and a memory the partial maxima of the rows above, one word per output
column, read one position ahead (the address is the next output column as a window row ends),
written at the window row's last pixel; a register holds the result.

Timing: a position issued at P0 is at S1 the next cycle (its pixel, and its place in the window
from counters that step at P0 and start over at each frame's first position), where it meets
its partial maximum; the result is in a register (the ring's tail, or the result register) a
cycle later and enters the output queue from the result stage the cycle after:
``spec.pipeline_depth`` is 3. (Without the result stage, the queue's block RAMs pulled the
tail, which takes the comparison's result, far from the head: 52 MHz on the UP5K.)
"""

from amaranth import *
from amaranth.lib import memory

from .delay import delay

__all__ = ["running_max_pool"]


def _larger(a, b):
    return Mux(a > b, a, b)


def _window_place(m, spec, sched, issue):
    """Flags of the position in S1, by name: ``col_first`` and ``col_last`` (the first and the
    last pixel of its window row, of a whole window), ``row_first`` (in its window's first
    row), ``in_cols`` (in a whole window's columns), ``reopens`` (the window row that follows
    the position's in its output column starts a window: the position is in a window's first
    row, or ends the stream row's last window in a window's last row). Counters of the place in
    the window step at each issue and start over at a frame's first position."""
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
    last_window = sched.column == out_w * kw - 1
    values = dict(col_first=col == 0, row_first=row == 0, col_last=(col == kw - 1) & in_cols,
                  in_cols=in_cols, reopens=Mux(last_window, row == kh - 1, row == 0))
    flags = {}
    for name, value in values.items():
        flags[name] = Signal(name=f"s1_{name}")
        m.d.sync += flags[name].eq(value)
    return flags


def _ring_code(spec, bits):
    """The running pool's head holds a pixel value ``v`` as the ``bits``-bit
    code ``code(v)``, the complement of ``v`` in offset binary (``v - lo``), so that a pixel
    ``p`` is above ``v`` exactly when ``(p - lo) + code(v)`` carries out of ``bits`` bits.
    ``code(v) == v ^ code(0)`` on ``v``'s two's complement bits."""
    lo, _ = spec.pixel_range
    mask = (1 << bits) - 1
    return lambda value: ~(value - lo) & mask


def running_max_pool(m, spec, sched, issue, s1, s1_valid, s1_pixel, pixel_shape):
    """The running max pool's datapath from S1 (``s1`` the position's control, ``s1_pixel``
    its pixel, 0 after an early end of frame): ``(results, control)``, one result per channel,
    entering the output queue with ``control.emit``."""
    kh, kw = spec.kernel_shape
    channels, out_w = spec.in_channels, spec.out_shape[1]
    lo, hi = spec.pixel_range
    word = pixel_shape
    place = _window_place(m, spec, sched, issue)
    pixel = word(Value.cast(s1_pixel))
    moves = s1_valid & place["in_cols"]
    turns = s1_valid & place["col_last"]

    if spec.pool_partials == "registers":
        # The ring: the head (the current output column's partial maximum, updated by each
        # pixel in place), then the other output columns' in order. The head is the lowest
        # pixel value when a window starts (loaded so as the ring turns; a frame's first
        # position takes its pixel instead), so a pixel is only compared with it. As a window row ends, its
        # partial maximum goes to the tail: after the window's last row, the tail holds the
        # result for a cycle at least. (One-row windows, or one output column: a ring of 2.)
        # The head holds its value in the comparison's code (:func:`_ring_code`), so a carry
        # chain compares the pixel with it without an inverter in front of it; the other
        # registers hold plain values (the code's inversions fall into the multiplexers).
        bits = Shape.cast(word.elem_shape).width
        code = _ring_code(spec, bits)
        def repeated(value):
            return C(int(f"{value:0{bits}b}" * channels, 2), bits * channels)
        lowest, flip = repeated(code(lo)), repeated(code(0))
        # (No initial value: a frame's first position loads the head, and the other columns'
        # partial maxima are written before they are read. An iCE40 flip-flop starts at 0; one
        # starting at 1 stores its complement, which puts back the inverter in front of the
        # carry chain.)
        ring = [Signal(bits * channels, name=f"partial_{k}", reset_less=True)
                for k in range(max(2, out_w if kh > 1 else 1))]
        head = ring[0]
        updated = Signal(bits * channels, name="partial_updated")
        for ci in range(channels):
            raw = Value.cast(pixel[ci]).as_unsigned()
            own = head.word_select(ci, bits)
            # ``offset + own`` carries out exactly when the pixel is above the head's value.
            offset = raw ^ (1 << (bits - 1)) if lo < 0 else raw
            above = (offset + own)[bits]
            # A frame's first position takes its pixel whatever the head holds (the head is
            # not loaded with the lowest value at its issue: that made the issue decision a
            # clock enable through two LUTs more, the UP5K critical path of the digits chain).
            m.d.comb += updated.word_select(ci, bits).eq(Mux(above | s1.sof, raw, own ^ code(0)))
        with m.If(turns):
            m.d.sync += [ring[k].eq(ring[k + 1]) for k in range(1, len(ring) - 1)]
            m.d.sync += ring[-1].eq(updated)
        with m.If(turns):
            # (With one output column, the column's next window row is the head's own.)
            following = ring[1] if out_w > 1 else updated
            m.d.sync += head.eq(Mux(place["reopens"], lowest, following ^ flip))
        with m.Elif(moves):
            m.d.sync += head.eq(updated ^ flip)
        result = word(ring[-1])
    else:
        running = Signal(word, name="row_max", reset_less=True)
        column = Signal(range(out_w), name="pool_out_column")
        following = Mux(column == out_w - 1, 0, column + 1)
        m.submodules.partials = partials = memory.Memory(shape=word, depth=out_w, init=[])
        write, read = partials.write_port(), partials.read_port(transparent_for=())
        above = word(read.data)
        updated = Signal(word, name="partial_updated")
        for ci in range(channels):
            base = Mux(place["row_first"], pixel[ci], _larger(above[ci], pixel[ci]))
            m.d.comb += updated[ci].eq(Mux(place["col_first"], base,
                                           _larger(running[ci], pixel[ci])))
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

        # The result register.
        result = Signal(word, name="pool_result", reset_less=True)
        m.d.sync += result.eq(updated)

    # The result stage: a register of the result a cycle after the position, by the output
    # queue's memory (whose write data would otherwise pull the comparison's far end to it).
    staged = Signal(word, name="pool_staged", reset_less=True)
    m.d.sync += staged.eq(result)

    # The results enter the output queue two cycles after the position (saturated into the
    # output range when the spec clamps).
    out_lo, out_hi = spec.out_range
    results = []
    for ci in range(channels):
        value = staged[ci]
        if out_lo > lo:
            value = Mux(value < out_lo, out_lo, value)
        if out_hi < hi:
            value = Mux(value > out_hi, out_hi, value)
        output = Signal(signed(spec.out_bits), name=f"pool_output_{ci}")
        m.d.comb += output.eq(value)
        results.append(output)
    done = delay(m, s1, 2, "control")
    assert spec.pipeline_depth == 3
    return results, done
