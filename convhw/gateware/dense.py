"""Accumulating datapath of a folded dense layer: each pixel multiplied as it streams in.

A dense layer's kernel covers its frame, so every input pixel meets its own weights once and
the frame's one output is the sum over all of them (``spec.accumulates_positions``). No line
buffer, window or rotator: the core holds the position's pixel (all ``C`` channels) in its
capture register while the position takes ``spec.fold_per_position`` cycles, and this datapath
accumulates it into ``Cout`` accumulators kept across the frame's positions.

Contract: in the cycle ``load`` is high (a position one cycle after its issue), ``pixel``
holds the position's channels (zeros for a position without input) and holds them for
``spec.fold_per_position`` cycles; ``first`` and ``last`` say whether the position is the
frame's first and last. Loads come ``fold_per_position`` cycles apart at the most often.

Steps
    Step ``j`` of a position is channel group ``p = j // Q``, chunk ``q = j % Q`` (``Q =
    ceil(C/simd)``): lane ``k`` multiplies channels ``q*simd ...`` of the pixel by the weights
    of output channel ``p*pe + k``. Weight word ``position*P*Q + j`` (block RAM, read by an
    address register that restarts at a frame's first position) holds lane ``k*simd + s``'s.

Accumulators
    Per lane, a register sums the SIMD tree's sums over a group's ``Q`` chunks; then a ring of
    ``P = ceil(Cout/pe)`` accumulators turns, the head plus that sum entering its tail (at a
    frame's first position the sum alone: no clearing cycle). After the last position's group
    ``p`` the ring's tail holds group ``p``'s totals until the ring turns again, ``Q`` cycles
    later at the soonest: the lane's
    output stage (``finish``) takes it then, and a collector keeps the results of the groups
    before the last; the last group's results go to the output with them.

Pipeline
    operand registers (a chunk selected from the pixel) and the weight word -> multiplier input
    registers -> products -> SIMD adder tree -> group sum -> accumulator ring -> output stage
    (``finish``,
    ``spec.back_stages``) -> collector / output: ``spec.pipeline_depth`` from the issue of a
    frame's last position to the output.
"""

from types import SimpleNamespace

from amaranth import *
from amaranth.lib import memory
from amaranth.utils import ceil_log2

from ..spec import signed_bits
from .adder_tree import Term, adder_tree
from .delay import delay
from .requantize import requantize

__all__ = ["AccumulatingDatapath"]


class AccumulatingDatapath:
    """The accumulating datapath of ``spec`` (``spec.accumulates_positions``), built into ``m``.

    Parameters
    ----------
    m : Module
    spec : ConvSpec
    pixel : Value
        The held pixel, an array of ``spec.in_channels`` values.
    load, first, last : Value
        A position's first cycle; it is the frame's first; it is the frame's last.
    finish : callable
        ``finish(lane, total, channels, select, start)`` as
        :class:`~convhw.gateware.fold.FoldedDatapath`'s, or ``None``: one :func:`requantize`
        per output channel.
    finish_stages : int
        Cycles of ``finish`` (``spec.back_stages``).

    Attributes
    ----------
    results : list of Value
        Every output channel's result, valid while ``done``.
    done : Value
        The frame's output is ready (``spec.pipeline_depth`` after the last position's issue).
    """

    def __init__(self, m, spec, pixel, load, first, last, finish, finish_stages):
        pe, simd, channels = spec.pe, spec.simd, spec.in_channels
        groups, chunks = spec.pe_folds, spec.position_chunks

        # Step counters of the chunk being selected (0 at a load: they wrap at the last step).
        busy = Signal(name="dense_busy")
        chunk = Signal(range(chunks), name="dense_chunk")
        group = Signal(range(groups), name="dense_group")
        stepping = load | busy
        last_chunk = chunk == chunks - 1
        final = last_chunk & (group == groups - 1)
        with m.If(stepping):
            m.d.sync += [chunk.eq(Mux(last_chunk, 0, chunk + 1)),
                         group.eq(Mux(final, 0, group + last_chunk)),
                         busy.eq(~final)]
        held_first, held_last = Signal(name="dense_first"), Signal(name="dense_last")
        with m.If(load):
            m.d.sync += [held_first.eq(first), held_last.eq(last)]
        position_first = Mux(load, first, held_first)
        position_last = Mux(load, last, held_last)

        # Operands: ``simd`` registers select the chunk's channels from the held pixel.
        element = signed(spec.in_bits) if spec.in_signed else unsigned(spec.in_bits)
        heads = []
        for s in range(simd):
            options = [pixel[q * simd + s] if q * simd + s < channels else C(0, element)
                       for q in range(chunks)]
            head = Signal(element, name=f"dense_head_{s}")
            m.d.sync += head.eq(options[0] if chunks == 1 else Array(options)[chunk])
            heads.append(head)
        weights = self._weight_memory(m, spec, stepping, load & first)

        # What the accumulators do with the sum of step j, which reaches them 3 + tree_depth
        # cycles after its selection; a group's sum reaches the ring one cycle later.
        tree_delay = 3 + spec.tree_depth
        at_root = delay(m, Cat(stepping, chunk == 0, stepping & last_chunk, position_first,
                               stepping & last_chunk & position_last), tree_delay, "dense_step")
        add, first_chunk = at_root[0], at_root[1]
        group_step = Signal(3, name="dense_group_step")
        m.d.sync += group_step.eq(at_root[2:])
        turn, start_over, complete = group_step[0], group_step[1], group_step[2]

        xlo, xhi = spec.pixel_range
        cb = spec.coeff_bits
        corners = [c * x for c in (-(1 << (cb - 1)), (1 << (cb - 1)) - 1) for x in (xlo, xhi)]
        acc_lo, acc_hi = spec.acc_range
        acc_shape = signed(signed_bits(acc_lo, acc_hi))
        totals = []
        for k in range(pe):
            products = []
            for s in range(simd):
                lane = f"{k}_{s}"
                value_in = Signal(element, name=f"dense_mul_value_{lane}")
                weight_in = Signal(signed(cb), name=f"dense_mul_weight_{lane}")
                product = Signal(signed(signed_bits(min(corners), max(corners))),
                                 name=f"dense_product_{lane}")
                m.d.sync += [value_in.eq(heads[s]),
                             weight_in.eq(weights[(k * simd + s) * cb:(k * simd + s + 1) * cb]),
                             product.eq(value_in * weight_in)]
                products.append(Term(product, min(corners), max(corners)))
            root = adder_tree(m, products, name=f"dense_lane_{k}")
            value = root.value << root.shift
            value = -value if root.negative else value
            # The group's sum over its chunks, then added to the group's accumulator at the
            # ring's head (or in its place, at a frame's first position), which enters the
            # tail as the ring turns: a multiplexer after each adder, none before.
            partial = Signal(acc_shape, name=f"dense_partial_{k}")
            with m.If(add):
                m.d.sync += partial.eq(Mux(first_chunk, value, partial + value))
            ring = [Signal(acc_shape, name=f"dense_acc_{k}_{p}") for p in range(groups)]
            with m.If(turn):
                m.d.sync += [ring[p].eq(ring[p + 1]) for p in range(groups - 1)]
                m.d.sync += ring[-1].eq(Mux(start_over, partial, ring[0] + partial))
            totals.append(ring[-1])

        # The last position's group totals, one group every ``Q`` cycles: the output stages.
        start = Signal(name="dense_total_ready")
        m.d.sync += start.eq(complete)
        start_group = self._group_counter(m, start, groups, "dense_finish_group")
        write = delay(m, start, finish_stages, "dense_write")
        write_group = self._group_counter(m, write, groups, "dense_write_group")
        lane_results = {}
        for k, total in enumerate(totals):
            lane_channels = [p * pe + k for p in range(groups) if p * pe + k < spec.out_channels]
            term = Term(total, acc_lo, acc_hi)
            if finish is not None:
                result = finish(k, term, lane_channels, start_group, start)
                lane_results.update({co: result for co in lane_channels})
            else:
                lane_results.update({co: requantize(m, term, spec, co, name=f"_{co}")
                                     for co in lane_channels})
        self.results = []
        for co in range(spec.out_channels):
            result = lane_results[co]
            if co // pe == groups - 1:
                self.results.append(result)   # the last group: straight to the output
                continue
            kept = Signal.like(result, name=f"dense_result_{co}")
            with m.If(write & (write_group == co // pe)):
                m.d.sync += kept.eq(result)
            self.results.append(kept)
        self.done = write & (write_group == groups - 1)

    @staticmethod
    def _group_counter(m, strobe, groups, name):
        """The channel group of each ``strobe``: they come in order, ``groups`` a frame."""
        counter = Signal(range(groups), name=name)
        with m.If(strobe):
            m.d.sync += counter.eq(Mux(counter == groups - 1, 0, counter + 1))
        return counter

    @staticmethod
    def _weight_memory(m, spec, stepping, restart):
        """The weight word of the chunk selected in the previous cycle (the block RAM's read
        data, as the operand registers hold that chunk): word ``position * P * Q + step``,
        read at each step from an address register that restarts at a frame's first
        position."""
        pe, simd, cb = spec.pe, spec.simd, spec.coeff_bits
        groups, chunks = spec.pe_folds, spec.position_chunks
        positions = spec.positions_per_frame
        kh, kw = spec.kernel_shape
        init = []
        for position in range(positions):
            row, col = divmod(position, kw)
            for p in range(groups):
                for q in range(chunks):
                    word = 0
                    for k in range(pe):
                        for s in range(simd):
                            co, ci = p * pe + k, q * simd + s
                            if co < spec.out_channels and ci < spec.in_channels:
                                weight = spec.hw_weight(co, ci, row, col)
                                word |= (weight & ((1 << cb) - 1)) << ((k * simd + s) * cb)
                    init.append(word)
        # A power of two deep, so the address wraps by itself (past the frame's last word only
        # a restart follows).
        depth = 1 << ceil_log2(len(init))
        m.submodules.dense_weights = weights = memory.Memory(
            shape=pe * simd * cb, depth=depth, init=init)
        rd = weights.read_port()
        address = Signal(range(depth), name="dense_weight_addr")
        read = Mux(restart, 0, address)
        m.d.comb += rd.addr.eq(read)
        with m.If(stepping):
            m.d.sync += address.eq(read + 1)
        return rd.data
