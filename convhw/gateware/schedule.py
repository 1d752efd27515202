"""Position scheduler: walks a frame's stream positions and says what each one does.

A frame is ``spec.positions_per_frame`` positions in rows of ``spec.stream_width`` (see
:mod:`convhw.spec`). For the current position the scheduler says whether it takes an input
pixel, which line-buffer column it touches, whether it completes an output, that output's frame
markers, and which kernel rows and columns fall inside the frame (the others are padding and are
masked). With a border mode other than ``constant`` it also says where each kernel row and column
reads instead (:mod:`convhw.gateware.border`): one-hot select bits from flags "the stream row is
that of output row ``oy``" and "the output column is ``ox``", for the outputs at the border.

``advance`` moves to the next position; after the last one it starts the next frame.
``truncate`` (an early start of frame) turns the rest of the frame into positions without input,
so the frame's outputs still all come out and the next frame starts cleanly.

Timing: the counters run one position ahead, and the description of the current position is
registered (computed from the look-ahead counters while the previous position is issued). So
every output is a flip-flop, and ``advance`` only steers register enables: the issue logic of a
core, which depends on ``needs_input`` and ``at_start``, stays a couple of LUTs deep. The range
tests (``lo <= counter < hi``: input rows and columns, outputs, padding masks) are flags that
step along with their counters using equality tests only, so no magnitude comparator sits
between two registers either.
``next_column`` is the following position's column, for reading a line buffer ahead.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .border import BorderSelect

__all__ = ["Scheduler"]


def _mux(select, if_true, if_false):
    """``Mux`` for hardware values, ``if`` for Python values (so initial states are computed
    with the very expressions that the hardware uses)."""
    if isinstance(select, Value):
        return Mux(select, if_true, if_false)
    return if_true if select else if_false


def _not(value):
    """``~`` for hardware values, ``not`` for Python values."""
    return ~value if isinstance(value, Value) else int(not value)


def _equal(state):
    """``equal(counter, value)``: whether ``state[counter] == value`` (Python values)."""
    return lambda counter, value: int(state[counter] == value)


def _select(select, if_true, if_false):
    """``_mux`` written as logic, so that synthesis does not turn a hold (``if_false`` is the
    register itself) into a clock enable merged with ``advance``, one LUT deeper."""
    if isinstance(select, Value):
        return (select & if_true) | (~select & if_false)
    return if_true if select else if_false


class Scheduler(wiring.Component):
    """Stream positions of ``spec``.

    Members
    -------
    advance, truncate : In(1)
        Issue the current position; finish the frame without further input.
    moves : In(1)
        ``advance | truncate``, given as one signal: the clock enable of the registers a
        truncate moves too (those only an advance moves take ``advance``; the registers read
        a truncate as ``moves & ~advance``, and ``truncate`` is what the formal schedule graph
        drives).
    needs_input, at_start, in_columns, column : Out
        The position consumes a pixel; it is the frame's first; it lies in a line-buffer column;
        that column.
    emit, first, last : Out(1)
        The position completes an output; that output starts the frame; it ends its row.
    row_mask, col_mask : Out(KH), Out(KW)
        Kernel rows and columns inside the frame for that output.
    row_select : Out(row_border.width)
        Border modes only: for each kernel row, which of the span's rows (line-buffer rows and
        the newest pixel) it reads; the stream row's (the same for every position of a row).
    col_select : Out(col_border.width)
        Border modes only: for each kernel column, which of the window chain's columns it reads
        for the output this position completes.
    stream_row_mask : Out(KH)
        Separable form with a ``constant`` border, and max pools, only: kernel rows inside the frame for the
        column this position pushes into the window (of its stream row, where ``row_mask`` is
        the completed output's).
    next_column : Out
        ``column`` of the following position.
    advance_needs_input, advance_at_start : Out(1)
        ``needs_input`` and ``at_start`` of the next cycle if this one advances (registers
        only), for callers that keep their own copy of the issue conditions (a truncate
        clears ``needs_input``, a wait keeps both).
    """

    def __init__(self, spec):
        self._spec = spec
        kh, kw = spec.kernel_shape
        self.row_border = BorderSelect(spec.row_border) if spec.border_sources else None
        self.col_border = BorderSelect(spec.col_border) if spec.border_sources else None
        lanes = spec.pixels_per_clock
        widths = {"row_select": self.row_border and self.row_border.width,
                  "col_select": self.col_border and self.col_border.width * lanes}
        selects = {name: Out(width) for name, width in widths.items() if width}
        # Lanes whose output can lie past the output row (a partial last beat).
        self.lane_outputs = [-(-(spec.out_shape[1] - k) // lanes) for k in range(lanes)]
        partial = {"lane_mask": Out(lanes)} if lanes > 1 and spec.out_shape[1] % lanes else {}
        self._stream_rows = (getattr(spec, "separable", False)
                             or getattr(spec, "operation", "conv") == "max-pool") \
            and not spec.border_sources
        if self._stream_rows:
            selects["stream_row_mask"] = Out(kh)
        super().__init__({
            "advance": In(1), "truncate": In(1), "moves": In(1),
            "needs_input": Out(1), "at_start": Out(1), "in_columns": Out(1),
            "column": Out(range(spec.beat_width)),
            "emit": Out(1), "first": Out(1), "last": Out(1),
            "row_mask": Out(kh), "col_mask": Out(kw * lanes),
            "next_column": Out(range(spec.beat_width)),
            **partial,
            "advance_needs_input": Out(1), "advance_at_start": Out(1),
            **selects,
        })

    @property
    def initial_description(self):
        """The members ``needs_input`` ... ``col_mask`` after reset (Python values)."""
        initial = self._initial_state()
        return self._describe(initial, self._interval_values(initial), 1, _equal(initial))

    # The state of a position: counters in stream space (vx, vy) and in padded output space
    # (ex, ey with their stride phases), and whether the frame was truncated.

    def _initial_state(self):
        spec = self._spec
        (sy, sx), wv = self._spec.stride, spec.beat_width
        ey, ex = divmod(-spec.beat_col_offset, wv)
        ey -= spec.row_offset
        return dict(vx=0, vy=0, ex=ex, ey=ey, ex_phase=ex % sx, ey_phase=ey % sy, truncating=0)

    def _wraps(self, s):
        """The conditions that steer the step from ``s``: it is the frame's last position, the
        last of its stream row, the last of its output row."""
        spec = self._spec
        wv = spec.beat_width
        end_y, end_x = divmod(spec.beats_per_frame - 1, wv)
        return dict(at_end=(s["vy"] == end_y) & (s["vx"] == end_x),
                    row_done=s["vx"] == wv - 1, out_row_done=s["ex"] == wv - 1)

    def _next_wraps(self, s, wraps, equal):
        """``_wraps`` of the position after ``s``, from comparisons of ``s`` with constants
        (``equal(counter, value)``)."""
        spec = self._spec
        wv, total = spec.beat_width, spec.beats_per_frame
        initial = self._initial_state()
        if total == 1:
            at_end = 1
        else:
            y2, x2 = divmod(total - 2, wv)
            at_end = equal("vy", y2) & equal("vx", x2)
        return dict(
            at_end=at_end,
            row_done=_mux(wraps["at_end"], int(initial["vx"] == wv - 1),
                          _mux(wraps["row_done"], int(wv == 1), equal("vx", wv - 2))),
            out_row_done=_mux(wraps["at_end"], int(initial["ex"] == wv - 1),
                              _mux(wraps["out_row_done"], int(wv == 1), equal("ex", wv - 2))),
        )

    def _next_state(self, s, wraps):
        """The state of the position after ``s`` (the next frame's first after the last)."""
        (sy, sx) = self._spec.stride
        row_done, out_row_done = wraps["row_done"], wraps["out_row_done"]
        # Counters that step only sometimes add their condition rather than hold: a hold would
        # become a register enable that merges the condition with ``advance``, one LUT deeper.
        stepped = dict(
            vx=_mux(row_done, 0, s["vx"] + 1),
            vy=s["vy"] + row_done,
            ex=_mux(out_row_done, 0, s["ex"] + 1),
            ey=s["ey"] + out_row_done,
            ex_phase=_mux(out_row_done | (s["ex_phase"] == sx - 1), 0, s["ex_phase"] + 1),
            ey_phase=_mux(out_row_done & (s["ey_phase"] == sy - 1), 0,
                          s["ey_phase"] + out_row_done),
            truncating=s["truncating"],
        )
        initial = self._initial_state()
        return {key: _mux(wraps["at_end"], initial[key], stepped[key]) for key in initial}

    def _intervals(self):
        """``{key: (counter, lo, hi)}``: the range tests ``lo <= counter < hi`` that describe a
        position. The hardware keeps them as flags stepped along with the counters."""
        spec = self._spec
        (kh, kw), (sy, sx), (dy, dx) = spec.kernel_shape, spec.stride, spec.dilation
        (pad_top, _), (pad_left, _) = spec.padding
        out_h = spec.out_shape[0]
        wv, lanes = spec.beat_width, spec.pixels_per_clock
        width = spec.width // lanes
        intervals = {
            "rows_in": ("vy", 0, spec.height),
            "columns_in": ("vx", 0, width if wv > width else wv),
            "emit_y": ("ey", 0, (out_h - 1) * sy + 1),
            "emit_x": ("ex", 0, (spec.out_beats - 1) * sx + 1),
        }
        for i in range(kh):
            lo = pad_top - i * dy
            intervals[f"row_{i}"] = ("ey", lo, spec.height + lo)
        for j in range(kw):
            lo = pad_left - j * dx
            if lanes == 1:
                intervals[f"col_{j}"] = ("ex", lo, spec.width + lo)
                continue
            # Lane k of output beat c is output column c*N + k (stride 1).
            for k in range(lanes):
                intervals[f"col_{k}_{j}"] = ("ex", -(-(lo - k) // lanes),
                                             -(-(spec.width + lo - k) // lanes))
        if "lane_mask" in self.signature.members:
            for k in range(lanes):
                intervals[f"lane_{k}"] = ("ex", 0, self.lane_outputs[k])
        if self._stream_rows:
            for i in range(kh):
                lo = spec.span[0] - 1 - i * dy
                intervals[f"stream_row_{i}"] = ("vy", lo, spec.height + lo)
        if self.row_border is not None:
            # Border flags: the stream row of output row oy; output column ox (its beat).
            for oy in self.row_border.outputs:
                row = oy * sy + spec.row_offset
                intervals[f"border_y_{oy}"] = ("vy", row, row + 1)
            for ox in self.col_border.outputs:
                beat = ox // lanes
                intervals[self._border_x(ox)] = ("ex", beat * sx, beat * sx + 1)
        return intervals

    def _border_x(self, ox):
        lanes = self._spec.pixels_per_clock
        return f"border_x_{ox}" if lanes == 1 else f"border_x_{ox // lanes}"

    def _interval_values(self, s):
        """The range tests of :meth:`_intervals` evaluated on ``s`` (Python values only)."""
        return {key: int(lo <= s[counter] < hi)
                for key, (counter, lo, hi) in self._intervals().items()}

    def _next_intervals(self, s, flags, wraps, equal):
        """The range tests of the position after ``s``, from those of ``s``: a counter that
        steps by one enters a range at ``lo - 1`` and leaves it at ``hi - 1`` (equality tests
        only), one that wraps or starts a frame takes a constant."""
        initial = self._initial_state()
        steps = {  # counter: (wraps to 0 when, increments when)
            "vx": (wraps["row_done"], 1), "vy": (0, wraps["row_done"]),
            "ex": (wraps["out_row_done"], 1), "ey": (0, wraps["out_row_done"]),
        }
        result = {}
        for key, (counter, lo, hi) in self._intervals().items():
            flag = flags[key]
            wrap, increment = steps[counter]
            stepped = ((flag & _not(equal(counter, hi - 1)))
                       | (equal(counter, lo - 1) & int(lo < hi)))
            result[key] = _mux(wraps["at_end"], int(lo <= initial[counter] < hi),
                               _mux(wrap, int(lo <= 0 < hi), _select(increment, stepped, flag)))
        return result

    def _describe(self, s, flags, starts_frame, equal):
        """What the position in state ``s`` does (the members ``needs_input`` ... ``col_mask``),
        given its range tests ``flags``, whether it ``starts_frame`` and its comparisons with
        constants (``equal(counter, value)``)."""
        (kh, kw), sx = self._spec.kernel_shape, self._spec.stride[1]
        lanes = self._spec.pixels_per_clock
        out_w = self._spec.out_beats
        col_mask = ([flags[f"col_{j}"] for j in range(kw)] if lanes == 1 else
                    [flags[f"col_{k}_{j}"] for k in range(lanes) for j in range(kw)])
        partial = {}
        if "lane_mask" in self.signature.members:
            partial["lane_mask"] = [flags[f"lane_{k}"] for k in range(lanes)]
        return dict(
            needs_input=flags["rows_in"] & flags["columns_in"] & (s["truncating"] == 0),
            at_start=starts_frame,
            in_columns=flags["columns_in"],
            column=s["vx"],
            emit=(flags["emit_y"] & (s["ey_phase"] == 0) & flags["emit_x"]
                  & (s["ex_phase"] == 0)),
            first=equal("ey", 0) & equal("ex", 0),
            last=equal("ex", (out_w - 1) * sx),
            row_mask=[flags[f"row_{i}"] for i in range(kh)],
            col_mask=col_mask,
            **partial,
            **self._border_selects(flags),
            **({"stream_row_mask": [flags[f"stream_row_{i}"] for i in range(kh)]}
               if self._stream_rows else {}),
        )

    def _border_selects(self, flags):
        """``row_select`` and ``col_select`` from the border flags (border modes only)."""
        selects = {}
        if self.row_border is not None and self.row_border.width:
            selects["row_select"] = self.row_border.bits(lambda oy: flags[f"border_y_{oy}"])
        if self.col_border is not None and self.col_border.width:
            lanes = self._spec.pixels_per_clock
            selects["col_select"] = [
                bit for k in range(lanes) for bit in self.col_border.bits(
                    lambda ox: flags[self._border_x(ox)] if ox % lanes == k else 0)]
        return selects

    def _next_equalities(self, s, wraps, equalities, second):
        """``(flags, refreshes)``: the flags ``equalities[(counter, value)]``
        (``s[counter] == value``) of the position after ``s``, and the assignments that keep
        their helper registers current (made at every advance).

        ``vx`` and ``ex`` step at every position, so their flags compare the counter with
        ``value - 1`` (with the wrap and the frame's end, one 4-input LUT per 4 bits and a LUT
        joining them). ``vy`` and ``ey`` step only where a row wraps, and compare with
        ``value - 1`` in a register refreshed at every advance: a row wraps at most every second
        position and not right after a frame's end, so that register has caught up with the
        counter whenever it is used, and the flag's next value is one LUT. (Refreshed with the
        other registers, not every cycle, it is part of the scheduler's state, which the
        formal harness enumerates by advancing and truncating.)
        """
        spec = self._spec
        wv = spec.beat_width
        initial = self._initial_state()
        steps = {  # counter: (wraps to 0 when, increments when)
            "vx": (wraps["row_done"], 1), "vy": (0, wraps["row_done"]),
            "ex": (wraps["out_row_done"], 1), "ey": (0, wraps["out_row_done"]),
        }
        # A row wraps at most every second position, and not at a frame's first position.
        slow_ok = {"vy": wv >= 2 and initial["vx"] != wv - 1,
                   "ey": wv >= 2 and initial["ex"] != wv - 1}
        earlier, refreshes = {}, []
        result = {}
        for (counter, value), flag in equalities.items():
            wrap, increment = steps[counter]
            if isinstance(increment, int):   # steps at every position
                stepped = _mux(wrap, int(value == 0), s[counter] == value - 1)
            else:
                if slow_ok[counter]:
                    if (counter, value - 1) not in earlier:
                        name = f"next_{counter}_was_{value - 1}".replace("-", "m")
                        reg = Signal(init=int(second[counter] == value - 1), name=name)
                        refreshes.append(reg.eq(s[counter] == value - 1))
                        earlier[(counter, value - 1)] = reg
                    before = earlier[(counter, value - 1)]
                else:
                    before = s[counter] == value - 1
                stepped = _select(increment, before, flag)
            result[(counter, value)] = _mux(wraps["at_end"], int(initial[counter] == value),
                                            stepped)
        return result, refreshes

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        (sy, sx), wv = spec.stride, spec.beat_width
        end_y = (spec.beats_per_frame - 1) // wv
        initial = self._initial_state()
        ey_end = (spec.beats_per_frame - 1 - spec.beat_col_offset) // wv - spec.row_offset

        # Look-ahead counters: the state of the position after the current one, with the
        # conditions that steer its step in registers too.
        second = self._next_state(initial, self._wraps(initial))
        shapes = dict(vx=range(wv), vy=range(end_y + 1), ex=range(wv),
                      ey=range(min(initial["ey"], 0), max(ey_end, 0) + 1),
                      ex_phase=range(sx), ey_phase=range(sy), truncating=1)
        ahead = {key: Signal(shapes[key], init=int(second[key]), name=f"next_{key}")
                 for key in shapes}

        # The registered description of the current position.
        first_info = self._describe(initial, self._interval_values(initial), 1,
                                    _equal(initial))
        current = {key: getattr(self, key) for key in first_info}
        registers = {}
        for key, value in first_info.items():
            port = current[key]
            init = (sum(int(bit) << i for i, bit in enumerate(value)) if isinstance(value, list)
                    else int(value))
            registers[key] = reg = Signal.like(port, init=init, name=f"cur_{key}")
            m.d.comb += port.eq(reg)

        wraps = {key: Signal(init=int(value), name=f"next_{key}")
                 for key, value in self._wraps(second).items()}
        # Whether the look-ahead position starts a frame (the current one ends it).
        ahead_starts_frame = Signal(init=int(spec.beats_per_frame == 1))

        flags = {key: Signal(init=value, name=f"next_in_{key}")
                 for key, value in self._interval_values(second).items()}

        # ``ahead[counter] == value`` as flags stepped along with the counters.
        equalities = {}

        def equal(counter, value):
            key = (counter, value)
            if key not in equalities:
                equalities[key] = Signal(init=int(second[counter] == value),
                                         name=f"next_{counter}_is_{value}".replace("-", "m"))
            return equalities[key]

        ahead_info = self._describe(ahead, flags, ahead_starts_frame, equal)
        following = self._next_state(ahead, wraps)
        following_wraps = self._next_wraps(ahead, wraps, equal)
        following_flags = self._next_intervals(ahead, flags, wraps, equal)
        following_equalities, refreshes = self._next_equalities(ahead, wraps, equalities,
                                                                 second)
        # ``advance`` alone enables the registers an advance moves (an enable of ``moves &
        # advance`` took a LUT more after the issue decision: the UP5K critical path).
        with m.If(self.advance):
            for key, value in ahead_info.items():
                if isinstance(value, list):   # (lanes without a flag give constants)
                    value = Cat(*(C(v, 1) if isinstance(v, int) else v for v in value))
                m.d.sync += registers[key].eq(value)
            m.d.sync += [ahead[key].eq(following[key]) for key in ahead]
            m.d.sync += [wraps[key].eq(following_wraps[key]) for key in wraps]
            m.d.sync += ahead_starts_frame.eq(wraps["at_end"])
            m.d.sync += [flags[key].eq(following_flags[key]) for key in flags]
            m.d.sync += [equalities[key].eq(following_equalities[key])
                         for key in equalities]
            m.d.sync += refreshes
        with m.Elif(self.moves):  # truncate
            m.d.sync += registers["needs_input"].eq(0)
            # Unless the current position ends the frame, its following ones lose their
            # input.
            with m.If(~ahead_starts_frame):
                m.d.sync += ahead["truncating"].eq(1)

        m.d.comb += [
            self.next_column.eq(ahead["vx"]),
            self.advance_needs_input.eq(ahead_info["needs_input"]),
            self.advance_at_start.eq(ahead_starts_frame),
        ]
        return m
