"""Conv2d: a streaming 2-D convolution, one pixel per clock, bit-exact with the golden model.

Interface
    ``i``: input pixels, row-major, ``first`` on a frame's first pixel (SOF). Only real pixels
    are sent; padding is generated inside. ``o``: output pixels, row-major, ``first`` on each
    frame's first output and ``last`` on the last output of each row. ``coef`` (runtime
    coefficients only): row-major write port; writes take effect at the next start of frame.

Datapath
    scheduler -> line buffer (block RAM, KH-1 rows packed) -> window registers -> masked taps /
    products -> pipelined adder tree -> round and saturate -> output FIFO. The separable form
    (``spec.separable``, :mod:`convhw.gateware.separable`) sums each column entering the window
    in a vertical pass, and the window's vertical sums in a horizontal one. A folded dense layer
    (``spec.accumulates_positions``, :mod:`convhw.gateware.dense`) has no line buffer or window:
    it multiplies each pixel as it arrives into accumulators kept across the frame.

Timing
    Every position of ``spec`` takes one clock when nothing stalls: input pixels at one per
    clock, plus ``positions_per_frame - width*height`` positions per frame without input (bottom
    padding, longer output rows). An output leaves ``spec.latency`` cycles after its position.

Backpressure
    The pipeline after the scheduler never stalls. A position is issued only while the output
    FIFO has a free slot for every result in flight (credits), so no result is ever dropped, and
    the FIFO gives the output stream its valid/ready behaviour.

Borders
    ``spec.border``: padding taps are masked to ``spec.border_value`` (``constant``), or read
    another pixel of the span (:mod:`convhw.gateware.border`): the kernel rows pick among the
    line buffer's rows as a column enters the window, the kernel columns among the window
    chain's columns, both by registered scheduler flags. The same registers and cycles either way.

Frame edges
    Frames are counted by position, so a producer that never sets ``first`` still works. A
    ``first`` arriving mid-frame ends that frame early: its missing pixels are taken as zeros,
    its outputs all come out, and the new frame starts with that pixel. Input ``last`` is not
    needed and is ignored.

N pixels per clock
    With ``spec.pixels_per_clock`` N > 1 every stream beat carries N consecutive pixels of a row
    (outputs), the leftmost in the lowest bits, and the core walks beats: a line buffer N pixels
    wide, a window chain that shifts N pixels per clock, one datapath per lane
    (``docs/architecture.md``, "N pixels per clock").
"""

from dataclasses import replace
from types import SimpleNamespace

from amaranth import *
from amaranth.lib import data, wiring

from ..spec import ConvSpec, signed_bits
from ..terms import tree_depth
from .adder_tree import Term, adder_tree
from .coefficients import CoefficientBank
from .core_io import StreamingCore
from .delay import delay, sparse_delay
from .dense import AccumulatingDatapath
from .fold import FoldedDatapath
from .issue import IssueGate
from .line_buffer import LineBuffer
from .pool import running_max_pool
from .products import TermBuilder
from .requantize import requantize, serial_requantize, shares_output_stage
from .schedule import Scheduler
from .separable import separable_datapath
from .window import LaneWindow, Window

__all__ = ["Conv2d"]


class Conv2d(StreamingCore):
    """Streaming 2-D convolution described by a :class:`~convhw.ConvSpec`.

    Members
    -------
    i : In(stream.Signature(pixel_layout(in_bits, in_signed)))
    o : Out(stream.Signature(pixel_layout(out_bits, True)))
    coef : In(coefficient_port_signature(spec)), runtime coefficients only
    """

    spec_type = ConvSpec

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        kh, kw = spec.kernel_shape
        channels, lanes = spec.in_channels, spec.pixels_per_clock
        element = self.i.payload.data.shape()
        if lanes > 1:
            element = element.elem_shape
        if channels > 1:
            element = element.elem_shape
        pixel_shape = data.ArrayLayout(element, channels)
        # What a position of the stream carries: a pixel, or a beat of ``lanes`` pixels.
        beat_shape = pixel_shape if lanes == 1 else data.ArrayLayout(pixel_shape, lanes)
        output = self.output_queue(m)

        # P0: the scheduler issues one position per clock (a folded core: an emitting position
        # every ``fold`` clocks at most).
        m.submodules.scheduler = sched = Scheduler(spec)
        reset = sched.initial_description
        m.submodules.issue_gate = gate = IssueGate(
            init=(1, reset["needs_input"], reset["at_start"]))
        issue = gate.issue
        # The next cycle's credit if this one issues (it may start a result), and if not.
        after_issue = Mux(sched.emit, output.can_start_after_start, output.can_start_after_idle)
        after_wait = output.can_start_after_idle
        accumulating = spec.accumulates_positions
        if accumulating:
            # Every position takes ``fold_per_position`` cycles.
            if spec.fold_per_position > 1:
                nearly_free = self._fold_gap(m, issue, spec.fold_per_position)
                after_issue, after_wait = 0, after_wait & nearly_free
        elif spec.folded:
            nearly_free = self._fold_gap(m, issue & sched.emit)
            after_issue = after_issue & ~sched.emit & nearly_free
            after_wait = after_wait & nearly_free
            gap = self._gap
        m.d.comb += [
            gate.credit_after_issue.eq(after_issue), gate.credit_after_wait.eq(after_wait),
            gate.needs_after_advance.eq(sched.advance_needs_input),
            gate.at_start_after_advance.eq(sched.advance_at_start),
            gate.needs_input.eq(sched.needs_input), gate.at_start.eq(sched.at_start),
            gate.valid.eq(self.i.valid), gate.first.eq(self.i.payload.first),
            self.i.ready.eq(gate.ready),
            sched.advance.eq(issue),
            sched.truncate.eq(gate.early_first),
            sched.moves.eq(gate.moves),
        ]
        m.d.comb += output.start.eq(issue & sched.emit)

        fields = {"emit": 1, "first": 1, "last": 1, "sof": 1, "row_mask": kh,
                  "col_mask": kw * lanes}
        partial = hasattr(sched, "lane_mask")
        if partial:
            fields["lane_mask"] = lanes
        control = data.StructLayout(fields)
        p0 = Signal(control)
        m.d.comb += [
            p0.emit.eq(issue & sched.emit), p0.first.eq(sched.first), p0.last.eq(sched.last),
            p0.sof.eq(issue & sched.at_start),
            p0.row_mask.eq(sched.row_mask), p0.col_mask.eq(sched.col_mask),
        ]
        if partial:
            m.d.comb += p0.lane_mask.eq(sched.lane_mask)

        # S1: line-buffer read data arrives; the column enters the window.
        s1 = Signal(control)
        s1_valid, s1_pixel = Signal(), Signal(beat_shape)
        s1_column, s1_in_columns = Signal.like(sched.column), Signal()
        m.d.sync += [
            s1.eq(p0), s1_valid.eq(issue), s1_column.eq(sched.column),
            s1_in_columns.eq(sched.in_columns),
        ]
        captured = Mux(sched.needs_input, Value.cast(self.i.payload.data), 0)
        if accumulating:
            # The pixel holds while its position's chunks are multiplied.
            with m.If(issue):
                m.d.sync += s1_pixel.eq(captured)
            results, done = self._accumulating_datapath(m, s1, s1_valid, s1_pixel)
            self.write_result(m, output, done, results)
            return m
        m.d.sync += s1_pixel.eq(captured)
        if spec.pool_form == "running":
            results, done = running_max_pool(m, spec, sched, issue, s1, s1_valid, s1_pixel,
                                             pixel_shape)
            self.write_result(m, output, done, results)
            return m
        span_h = spec.span[0]
        column = [s1_pixel] * kh
        # ``window_in_line_buffer``: the line buffer keeps every kernel row, and its last
        # ``KW`` words written are the window.
        in_buffer = spec.window_in_line_buffer
        if span_h > 1:
            m.submodules.line_buffer = lb = LineBuffer(
                shape=beat_shape, rows=span_h if in_buffer else span_h - 1,
                width=spec.width // lanes,
                stream_width=spec.beat_width, registers=spec.line_buffer_registers)
            m.d.comb += [
                lb.advance.eq(issue), lb.column.eq(sched.column),
                lb.next_column.eq(sched.next_column),
                lb.write.eq(s1_valid & s1_in_columns), lb.write_column.eq(s1_column),
                lb.pixel.eq(s1_pixel),
            ]
            stored = [lb.rows_out[r] for r in range(in_buffer, len(lb.rows_out))] + [s1_pixel]
            rows = sched.row_border
            if rows is not None and rows.width:
                # Border rows: each kernel row reads one of the span's rows.
                row_select = Signal(rows.width, name="s1_row_select")
                m.d.sync += row_select.eq(sched.row_select)
                column = [Mux(s1_in_columns,
                              rows.pick(i, lambda k: stored[k], row_select), 0)
                          for i in range(kh)]
            else:
                column = [Mux(s1_in_columns, stored[i * spec.dilation[0]], 0)
                          for i in range(kh)]
        if spec.separable:
            results, done = separable_datapath(m, self, sched=sched, p0=p0, s1=s1,
                                               s1_valid=s1_valid, column=column,
                                               pixel_shape=pixel_shape)
            self.write_result(m, output, done, results)
            return m
        cols = sched.col_border
        if spec.operation == "max-pool":
            results, done = self._max_datapath(m, sched, s1, s1_valid, column, pixel_shape)
            self.write_result(m, output, done, results)
            return m
        if lanes > 1:
            return self._lanes_datapath(m, output, sched, column, s1, s1_valid, pixel_shape)
        if in_buffer:
            words = lb.words[-kw:]
            grid = [[pixel_shape(Value.cast(words[col][row])) for col in range(kw)]
                    for row in range(kh)]
        else:
            # With border sources the window exposes every chain column, not only the taps'.
            m.submodules.window = window = Window(
                shape=pixel_shape, kernel_shape=(kh, spec.span[1]) if cols else (kh, kw),
                dilation_x=1 if cols else spec.dilation[1])
            m.d.comb += window.shift.eq(s1_valid)
            m.d.comb += [window.column[i].eq(column[i]) for i in range(kh)]
            grid = window.taps

        # S2: the window holds this position's taps; mask the padding and multiply.
        s2 = Signal(control)
        m.d.sync += s2.eq(s1)

        if cols is None:
            def inside(row, col, masks=s2):
                return masks.row_mask[row] & masks.col_mask[col]

            def tap(row, col, ci):
                return grid[row][col][ci]
        else:
            taps = self._border_taps(m, sched, window, pixel_shape)

            def inside(row, col):
                return None

            def tap(row, col, ci):
                return taps[row][col][ci]

        if spec.folded:
            results, done = self._folded_datapath(m, p0, s1, s2, tap, inside)
            if getattr(platform, "formal_checks", False):
                self._fold_invariants(m, platform, gap, s1, s2)
        else:
            results, done = self._parallel_datapath(m, s1, s2, tap, inside)
        self.write_result(m, output, done, results)
        return m

    def _lanes_datapath(self, m, output, sched, column, s1, s1_valid, pixel_shape):
        """``pixels_per_clock`` > 1: a window chain ``lanes`` pixels longer that shifts a beat
        per clock, and one set of taps, products and adder trees per lane (one coefficient
        bank for all). Lane ``k`` of output beat ``c`` is output column ``c*N + k``."""
        spec = self._spec
        (kh, kw), dx, lanes = spec.kernel_shape, spec.dilation[1], spec.pixels_per_clock
        lag = spec.beat_col_offset * lanes - spec.col_offset
        m.submodules.window = window = LaneWindow(
            shape=pixel_shape, rows=kh, lanes=lanes, length=spec.span[1] + lanes - 1 + lag)
        m.d.comb += window.shift.eq(s1_valid)
        m.d.comb += [window.column[i].eq(column[i]) for i in range(kh)]

        s2 = Signal.like(s1)
        m.d.sync += s2.eq(s1)
        cols = sched.col_border
        select = None
        if cols is not None and cols.width:
            s1_select = Signal(cols.width * lanes, name="s1_col_select")
            select = Signal(cols.width * lanes, name="s2_col_select")
            m.d.sync += [s1_select.eq(sched.col_select), select.eq(s1_select)]

        bank = None
        if spec.runtime_coeffs:
            m.submodules.coefficients = bank = CoefficientBank(spec)
            wiring.connect(m, wiring.flipped(self.coef), bank.port)
            m.d.comb += bank.swap.eq(s1.sof)
        s3 = Signal.like(s2)
        m.d.sync += s3.eq(s2)
        done = delay(m, s3, spec.product_stages + spec.tree_depth + spec.back_stages, "control")
        beat = []
        for k in range(lanes):
            if cols is None:
                def tap(row, col, ci, k=k):
                    return window.chain[row][k + col * dx][ci]

                def inside(row, col, k=k):
                    return s2.row_mask[row] & s2.col_mask[k * kw + col]
            else:
                lane_select = None if select is None else \
                    select[k * cols.width:(k + 1) * cols.width]
                picked = [[Signal(pixel_shape, name=f"border_tap_{k}_{row}_{col}")
                           for col in range(kw)] for row in range(kh)]
                for row in range(kh):
                    for col in range(kw):
                        m.d.comb += picked[row][col].eq(cols.pick(
                            col, lambda s, row=row, k=k: window.chain[row][k + s], lane_select))

                def tap(row, col, ci, picked=picked):
                    return picked[row][col][ci]

                def inside(row, col):
                    return None

            builder = TermBuilder(m, spec, tap, inside, bank, fill=spec.border_value)
            results = []
            for co in range(spec.out_channels):
                terms = builder.terms(co)
                root = adder_tree(m, terms, name=f"tree_{k}_{co}")
                extra = spec.tree_depth - tree_depth(len(terms))
                if extra:
                    root = replace(root, value=delay(m, root.value, extra, f"root_{k}_{co}"))
                results.append(requantize(m, root, spec, co))
            result = Cat(*results)
            if hasattr(sched, "lane_mask"):
                # The lanes past a row's last output (a partial last beat) give 0.
                result = Mux(done.lane_mask[k], result, 0)
            beat.append(result)
        self.write_result(m, output, done, Cat(*beat))
        return m

    def _border_taps(self, m, sched, window, pixel_shape):
        """``taps[row][col]``: each kernel column picks one of the window chain's columns by the
        scheduler's ``col_select``, two stages after its position."""
        kh, kw = self._spec.kernel_shape
        cols, select = sched.col_border, []
        if cols.width:
            s1_select = Signal(cols.width, name="s1_col_select")
            select = Signal(cols.width, name="s2_col_select")
            m.d.sync += [s1_select.eq(sched.col_select), select.eq(s1_select)]
        taps = []
        for row in range(kh):
            taps.append([])
            for col in range(kw):
                picked = Signal(pixel_shape, name=f"border_tap_{row}_{col}")
                m.d.comb += picked.eq(cols.pick(col, lambda k: window.taps[row][k], select))
                taps[-1].append(picked)
        return taps

    def _parallel_datapath(self, m, s1, s2, tap, inside):
        """Every product of every output channel in one cycle: ``(results, control)``."""
        spec = self._spec
        bank = None
        if spec.runtime_coeffs:
            m.submodules.coefficients = bank = CoefficientBank(spec)
            wiring.connect(m, wiring.flipped(self.coef), bank.port)
            m.d.comb += bank.swap.eq(s1.sof)
        builder = TermBuilder(m, spec, tap, inside, bank, fill=spec.border_value)
        s3 = Signal.like(s2)
        m.d.sync += s3.eq(s2)

        # Adder trees (the shallower ones delayed to the deepest), then the output stages.
        results = []
        factor = self._window_scale(m, s2) if spec.window_scales is not None else None
        for co in range(spec.out_channels):
            terms = builder.terms(co)
            root = adder_tree(m, terms, name=f"tree_{co}" if spec.out_channels > 1 else "tree")
            lag = spec.tree_depth - tree_depth(len(terms))
            if lag:
                root = replace(root, value=delay(m, root.value, lag, f"root_{co}"))
            if factor is not None:
                results.append(self._window_output(m, spec, root, factor, co))
                continue
            results.append(requantize(m, root, spec, co))
        done = delay(m, s3, spec.product_stages + spec.tree_depth + spec.back_stages, "control")
        assert spec.pipeline_depth == 3 + spec.product_stages + spec.tree_depth + spec.back_stages
        return results, done

    def _window_scale(self, m, s2):
        """The aligned scale of the window at S2 (``spec.window_scales``: by its in-frame
        cells, the kernel rows inside times the kernel columns inside), registered and delayed
        to meet the adder trees' roots."""
        spec = self._spec
        kh, kw = spec.kernel_shape
        scales = spec.aligned_window_scales
        rows, cols = spec.window_counts()
        width = max(scales.values()).bit_length()
        chosen = Signal(width, name="window_scale")
        with m.Switch(Cat(s2.row_mask, s2.col_mask)):
            for r_mask in range(1 << kh):
                for c_mask in range(1 << kw):
                    cells = bin(r_mask).count("1") * bin(c_mask).count("1")
                    if cells in scales:
                        with m.Case(r_mask | (c_mask << kh)):
                            m.d.sync += chosen.eq(scales[cells])
        lag = spec.product_stages + spec.tree_depth
        return delay(m, chosen, lag, "window_scale") if lag else chosen

    @staticmethod
    def _window_output(m, spec, root, factor, co):
        """``clamp(round(root * factor >> shift))``: a scaling, a rounding and a saturation
        stage (``spec.back_stages`` is 3)."""
        value = root.value << root.shift
        acc = -value if root.negative else value
        lo, hi = root.total_range()
        top = max(spec.aligned_window_scales.values())
        shift = spec.output_stage.shift[co]
        x = Signal(signed(signed_bits(min(lo * top, 0), max(hi * top, 0)) + 1),
                   name=f"window_scaled_{co}")
        m.d.sync += x.eq(acc * factor)
        half = (1 << shift) >> 1
        rounded = Signal(signed(len(x) + 1), name=f"window_rounded_{co}")
        if not shift:
            m.d.sync += rounded.eq(x)
        elif spec.rounding == "half-even":
            m.d.sync += rounded.eq((x + (half - 1) + (x >> shift)[0]) >> shift)
        else:
            m.d.sync += rounded.eq((x + half) >> shift)
        out_lo, out_hi = spec.output_stage.out_ranges[co]
        result = Signal(signed(spec.out_bits), name=f"window_out_{co}")
        m.d.sync += result.eq(Mux(rounded < out_lo, out_lo,
                                  Mux(rounded > out_hi, out_hi, rounded)))
        return result

    def _max_datapath(self, m, sched, s1, s1_valid, column, pixel_shape):
        """A max pool, separable: as a column enters the window its kernel rows are compared
        (padding rows masked to the lowest pixel value, so they never win: every window holds a
        pixel of the frame), so the window keeps one value per channel and column; then a
        registered tree of comparisons per channel across the window's columns (padding columns
        masked), whose first level reads the window: ``(results, control)``. Its depth is the
        adder tree's for ``KW`` terms, at least 1 (``spec.tree_depth``)."""
        spec = self._spec
        kh, kw = spec.kernel_shape
        lo, hi = spec.pixel_range
        shape = signed(signed_bits(lo, hi)) if spec.in_signed else unsigned(max(hi.bit_length(), 1))

        def larger(a, b):
            return Mux(a > b, a, b)

        # S1: the column's maximum per channel enters the window (masked by the rows of its
        # own stream row: the window may hold columns of other rows, which the column masks
        # of the completed output exclude).
        row_mask = Signal(kh, name="s1_stream_row_mask")
        m.d.sync += row_mask.eq(sched.stream_row_mask)
        entering = Signal(data.ArrayLayout(shape, spec.in_channels), name="column_max")
        for ci in range(spec.in_channels):
            best = None
            for row in range(kh):
                value = Mux(row_mask[row], pixel_shape(Value.cast(column[row]))[ci], lo)
                best = value if best is None else larger(best, value)
            m.d.comb += entering[ci].eq(best)
        m.submodules.window = window = Window(
            shape=data.ArrayLayout(shape, spec.in_channels), kernel_shape=(1, kw),
            dilation_x=spec.dilation[1])
        m.d.comb += [window.shift.eq(s1_valid), window.column[0].eq(entering)]

        # S2: the window holds the position's column maxima; the first level of comparisons
        # reads them (padding columns masked), registered.
        s2 = Signal.like(s1)
        m.d.sync += s2.eq(s1)
        results = []
        for ci in range(spec.in_channels):
            level = [Mux(s2.col_mask[col], window.taps[0][col][ci], lo) for col in range(kw)]
            depth = 0
            while depth == 0 or len(level) > 1:
                pairs = []
                for index in range(0, len(level) - 1, 2):
                    a, b = level[index], level[index + 1]
                    node = Signal(shape, name=f"max_{ci}_l{depth}_{index // 2}")
                    m.d.sync += node.eq(larger(a, b))
                    pairs.append(node)
                if len(level) % 2:
                    node = Signal(shape, name=f"max_{ci}_l{depth}_odd")
                    m.d.sync += node.eq(level[-1])
                    pairs.append(node)
                level, depth = pairs, depth + 1
            assert depth == spec.tree_depth
            results.append(requantize(m, Term(level[0], lo, hi), spec, ci))
        done = delay(m, s2, spec.tree_depth + spec.back_stages, "control")
        assert spec.pipeline_depth == 2 + spec.tree_depth + spec.back_stages
        return results, done

    def _folded_datapath(self, m, p0, s1, s2, tap, inside):
        """``pe`` channels at a time, ``simd`` products each per cycle: ``(results, control)``."""
        spec = self._spec
        kh, kw = spec.kernel_shape
        per_group = spec.group_in_channels

        # The frame markers wait in a register from the load to the last chunk; loads come at
        # least ``fold`` cycles apart, so the register is free again by then.
        markers = Signal.like(s2)
        with m.If(s2.emit):
            m.d.sync += markers.eq(s2)
        # With a constant border the window's taps hold from the load to the last chunk (no
        # position issues in between): the engine selects each chunk's operands from them and
        # masks them itself (``FoldedDatapath`` ``held``), with the masks kept in a register
        # from the cycle after they were in ``s1`` (the load) until the next position's are.
        held = spec.folded_operands == "window"
        if held:
            kept = Signal.like(s1, name="fold_masks")
            with m.If(s1.emit):
                m.d.sync += kept.eq(s1)

        def held_inside(n):
            row, col = divmod(n % (kh * kw), kw)
            return inside(row, col, kept)

        def value(n, group):
            ci, index = divmod(n, kh * kw)
            row, col = divmod(index, kw)
            pixel = tap(row, col, group * per_group + ci)
            mask = None if held else inside(row, col)
            return pixel if mask is None else Mux(mask, pixel, spec.border_value)

        runtime = spec.runtime_coeffs
        self._engine = None
        finish = self._lane_output_stage(m)
        lanes_share = finish is not None
        self._engine = engine = FoldedDatapath(m, spec, value, s2.emit, s1.emit,
                                swap=s1.sof if runtime else None,
                                coef=self.coef if runtime else None,
                                finish=finish if lanes_share else None,
                                finish_stages=spec.back_stages if lanes_share else 0,
                                held=held, inside=held_inside if held else None)
        # A position's last chunk comes ``fold`` cycles after the previous one at the soonest:
        # its frame markers wait in counters rather than a shift register.
        def control(cycles):
            emit, markers_out = sparse_delay(m, engine.final, Cat(markers.first, markers.last),
                                             cycles, spec.fold, "control")
            return SimpleNamespace(emit=emit, first=markers_out[0], last=markers_out[1])
        if lanes_share:
            return engine.accumulators, control(engine.final_to_done)
        done = control(engine.final_to_done + spec.back_stages)
        results = []
        for co, total in enumerate(engine.accumulators):
            lo, hi = spec.acc_ranges[co]
            results.append(requantize(m, Term(total, lo, hi), spec, co))
        return results, done

    def _lane_output_stage(self, m):
        """``finish(lane, total, channels, select, start)``: a folded lane's output stage for
        its channels, when they share scale and shift (one output stage per lane, not per
        channel) or scale serially (:attr:`~convhw.spec.ConvSpec.serial_output_stage`, any
        channels); else ``None`` (an output stage per channel)."""
        spec = self._spec
        serial = spec.serial_output_stage is not None
        if not serial and not all(shares_output_stage(spec, range(k, spec.out_channels, spec.pe))
                                  for k in range(spec.pe)):
            return None

        def finish(lane, total, channels, select, start):
            if serial:   # ``lane`` None: the lanes' shared stage (``spec.serial_stage_shared``)
                return serial_requantize(m, total, spec, channels, select=select, start=start,
                                         name="_shared" if lane is None else f"_lane{lane}")
            return requantize(m, total, spec, channels, select=select, name=f"_lane{lane}")
        return finish

    def _accumulating_datapath(self, m, s1, s1_valid, s1_pixel):
        """The accumulating form (``spec.accumulates_positions``): ``(results, control)``."""
        spec = self._spec
        engine = AccumulatingDatapath(m, spec, s1_pixel, load=s1_valid, first=s1.sof,
                                      last=s1.emit, finish=self._lane_output_stage(m),
                                      finish_stages=spec.back_stages)
        # One output a frame: the first of its frame and the last of its row.
        return engine.results, SimpleNamespace(emit=engine.done, first=C(1, 1), last=C(1, 1))

    def _fold_gap(self, m, emits, fold=None):
        """Whether a position may issue next cycle unless this one ``emits``: ``fold - 1``
        cycles pass after each position that completes an output (``emits``; ``fold`` is
        ``spec.fold`` unless given).

        A down-counter, stopping at 0, with the flag ``wait <= 1`` kept in a register (set by
        an equality with 2, not by a comparator), so the issue logic sees one flip-flop, not a
        carry chain."""
        fold = self._spec.fold if fold is None else fold
        wait = Signal(range(fold), name="fold_wait")
        nearly_free = Signal(init=1, name="fold_nearly_free")   # wait <= 1
        with m.If(emits):
            m.d.sync += [wait.eq(fold - 1), nearly_free.eq(fold - 1 <= 1)]
        with m.Else():
            m.d.sync += [wait.eq(Mux(wait == 0, 0, wait - 1)),
                         nearly_free.eq(nearly_free | (wait == 2))]
        self._gap = (wait, nearly_free)
        return nearly_free

    def _fold_invariants(self, m, platform, gap, s1, s2):
        """Formal builds only: how the issue gap, the pipeline's emitting stages and the folded
        engine's step counter agree (a position issued at cycle t is in S1 at t+1 with
        ``wait = fold-1``, loads at t+2, and its chunk ``s`` is at the heads at t+3+s)."""
        prop = platform.formal_property
        fold = self._spec.fold
        wait, nearly_free = gap
        engine = self._engine
        m.d.comb += [
            prop("fold_schedule", wait <= fold - 1),
            prop("fold_schedule", nearly_free == (wait <= 1)),
            prop("fold_schedule", ~s1.emit | (wait == fold - 1)),
            prop("fold_schedule", ~s2.emit | (wait == fold - 2)),
            prop("fold_schedule", ~engine.active | (engine.step <= fold - 1)),
            prop("fold_schedule", ~engine.active | (engine.step > fold - 3)
                 | (wait == fold - 3 - engine.step)),
        ]
