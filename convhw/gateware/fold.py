"""Folded layer datapath: ``pe`` output channels at a time, ``simd`` products each per cycle.

Contract: in the cycle ``load`` is high (``s2.emit``, a position that completes an output),
``value(n, group)`` holds input ``n`` of that group's output values (PyTorch order
``(ci*KH + row)*KW + col``, taps already masked in padding, except ``held``: there the engine
masks them). The datapath then takes ``spec.fold`` cycles (``P = ceil(Cout/pe)`` channel groups,
each over ``Q = ceil(N/simd)`` input chunks), and ``spec.FOLD_STAGES + spec.fold - 1 +
spec.tree_depth`` cycles after ``load`` every output channel's accumulator stands in
:attr:`accumulators`, for one cycle marked by ``done``.
A new ``load`` may come ``spec.fold`` cycles after the previous one (the issue gate sees to it).

Operands
    ``held`` (``spec.folded_operands == "window"``): ``value`` holds from ``load`` to the last
    chunk, and ``simd`` head registers per group take the next chunk's inputs from it each cycle,
    selected in two registered levels by a one-hot chunk register, and masked in the second.
    Otherwise one rotator per group holds the position's ``N`` inputs (zero-padded to
    ``Q*simd``) and turns by ``simd`` each cycle, so its first ``simd`` registers are always the
    current chunk. A lane whose channel changes group from one channel group to the next
    selects among the groups' heads by the channel group.

Weights
    One block RAM word per cycle: word ``p*Q + q`` holds the ``pe*simd`` weights of channel group
    ``p``, chunk ``q`` (lane ``k*simd + s``: channel ``p*pe + k``, input ``q*simd + s``). Constant
    weights are its initial contents; runtime weights go into a second half (the shadow) through
    the coefficient port, which is swapped in at the next start of frame after a write.

Pipeline
    heads (or rotators) -> multiplier input registers -> products -> SIMD adder tree ->
    accumulators -> collector (every channel's total) -> ``accumulators``.
"""

import operator
from functools import reduce

from amaranth import *
from amaranth.lib import memory
from amaranth.utils import ceil_log2

from ..spec import signed_bits
from .adder_tree import Term, adder_tree
from .delay import delay

__all__ = ["FoldedDatapath"]


#: ``held``: chunks per register of the first level of a head's selector.
HELD_PART_CHUNKS = 8


class FoldedDatapath:
    """The folded engine of a layer spec, built into ``m``.

    Parameters
    ----------
    m : Module
    spec : ConvSpec
        A folded spec (``spec.fold > 1``).
    value : callable
        ``value(n, group)``: input ``n`` of ``group`` in the ``load`` cycle.
    load : Value
        A position that completes an output is in the window.
    prefetch : Value
        ``load`` of the next cycle: the weight memory is read one cycle ahead, into a register
        that synthesis can move into the block RAM's output register.
    swap : Value, optional
        Runtime weights: a start of frame is one cycle past its issue (with ``prefetch`` when
        that position completes an output).
    coef : interface, optional
        Runtime weights: the core's coefficient port (``we``, ``addr``, ``data``).
    finish : callable, optional
        ``finish(lane, total, channels, select, start)`` registers a lane's output stage for
        its accumulator ``total`` (a :class:`Term`), which belongs to ``channels[select]`` and
        is complete in the cycle ``start`` is high, and returns the result, ``finish_stages``
        cycles later. The collector then keeps results,
        not accumulators.
    held : bool
        ``value`` holds from ``load`` to the last chunk: head registers select each chunk from
        it (no rotator). ``value`` is then the unmasked input, and ``inside`` its mask.
    inside : callable, optional
        ``held``: ``inside(n)``, whether input ``n`` is inside the image (else the border
        value replaces it), from ``load`` to the last chunk.

    Attributes
    ----------
    accumulators : list of Value
        Per output channel (finished, when ``finish`` was given), valid while ``done``.
    final : Value
        The last chunk is at the rotators' heads (``done`` follows ``final_to_done`` cycles
        later).
    active, step : Value
        A position's chunks are at the heads; which one (for formal invariants).
    done : Value
    """

    def __init__(self, m, spec, value, load, prefetch, swap=None, coef=None, finish=None,
                 finish_stages=0, held=False, inside=None):
        self._m, self._spec = m, spec
        pe, simd = spec.pe, spec.simd
        folds_p, folds_q, fold = spec.pe_folds, spec.simd_folds, spec.fold
        inputs = spec.inputs_per_output

        # Step counters of the chunk at the rotators' heads (cycles after ``load``).
        active = Signal()
        step = Signal(range(fold))
        chunk = Signal(range(folds_q))
        group = Signal(range(folds_p))
        last_chunk = chunk == folds_q - 1
        with m.If(load):
            m.d.sync += [active.eq(1), step.eq(0), chunk.eq(0), group.eq(0)]
        with m.Elif(active):
            m.d.sync += [
                active.eq(step != fold - 1), step.eq(step + 1),
                chunk.eq(Mux(last_chunk, 0, chunk + 1)), group.eq(group + last_chunk),
            ]

        # Operands: per group, the current chunk in ``simd`` registers.
        length = folds_q * simd
        heads = []
        element = signed(spec.in_bits) if spec.in_signed else unsigned(spec.in_bits)
        if held:
            heads = self._held_heads(value, inside, prefetch, element)
        else:
            # Rotators: one per group, loaded with the position's inputs, turning by ``simd``.
            for g in range(spec.groups):
                ring = [Signal(element, name=f"ring_{g}_{j}") for j in range(length)]
                with m.If(load):
                    m.d.sync += [ring[j].eq(value(j, g) if j < inputs else 0)
                                 for j in range(length)]
                with m.Elif(active):
                    m.d.sync += [ring[j].eq(ring[(j + simd) % length]) for j in range(length)]
                heads.append(ring[:simd])

        weights = self._weight_memory(prefetch, swap, coef)

        # Lanes: multiplier input registers, products, the SIMD tree, the accumulator.
        xlo, xhi = spec.pixel_range
        cb = spec.coeff_bits
        clo, chi = -(1 << (cb - 1)), (1 << (cb - 1)) - 1
        corners = [c * x for c in (clo, chi) for x in (xlo, xhi)]
        acc_lo, acc_hi = spec.acc_range
        tree_delay = 2 + spec.tree_depth       # head -> root
        first_at_root = delay(m, active & (chunk == 0), tree_delay, "first_chunk")
        lanes = []
        for k in range(pe):
            channel_groups = [spec.input_channel(p * pe + k, 0) // spec.group_in_channels
                              if p * pe + k < spec.out_channels else 0 for p in range(folds_p)]
            products = []
            for s in range(simd):
                if len(set(channel_groups)) == 1:
                    operand = heads[channel_groups[0]][s]
                else:
                    operand = Array(heads[g][s] for g in channel_groups)[group]
                lane = f"{k}_{s}"
                value_in = Signal.like(operand, name=f"mul_value_{lane}")
                weight_in = Signal(signed(cb), name=f"mul_weight_{lane}")
                product = Signal(signed(signed_bits(min(corners), max(corners))),
                                 name=f"product_{lane}")
                m.d.sync += [
                    value_in.eq(operand),
                    weight_in.eq(weights.word(k * simd + s)),
                    product.eq(value_in * weight_in),
                ]
                products.append(Term(product, min(corners), max(corners)))
            root = adder_tree(m, products, name=f"lane_{k}")
            total = root.value << root.shift
            total = -total if root.negative else total
            acc = Signal(signed(signed_bits(acc_lo, acc_hi)), name=f"acc_{k}")
            m.d.sync += acc.eq(Mux(first_at_root, total, acc + total))
            lanes.append(acc)

        # A lane's total is complete the cycle after its group's last chunk accumulated; its
        # output stage (when given) follows, then the collector keeps it.
        complete_group = delay(m, group, tree_delay + 1, "group_of_total")
        group_last = active & last_chunk
        if finish is None:
            self.accumulators = self._collect(lanes, signed(signed_bits(acc_lo, acc_hi)),
                                              group_last, complete_group, tree_delay + 1, 0)
        elif spec.serial_stage_shared:
            complete = delay(m, group_last, tree_delay + 1, "total_complete")
            self.accumulators = self._shared_output_stage(lanes, complete, complete_group,
                                                          finish)
        else:
            complete = delay(m, group_last, tree_delay + 1, "total_complete")
            results = []
            for k, acc in enumerate(lanes):
                channels = [p * pe + k for p in range(folds_p) if p * pe + k < spec.out_channels]
                results.append(finish(k, Term(acc, acc_lo, acc_hi), channels, complete_group,
                                      complete))
            self.accumulators = self._collect(results, results[0].shape(), group_last,
                                              complete_group, tree_delay + 1 + finish_stages,
                                              finish_stages)
        self.active, self.step = active, step
        # ``active & (step == fold - 1)``, kept in a register: it starts the folded control's
        # delay lines, whose clock enables it fed through five LUTs (conv1 2x1 on the UP5K,
        # 55 MHz).
        self.final = Signal(name="fold_final")
        m.d.sync += self.final.eq(Mux(load, fold == 1,
                                      active & (step == fold - 2) if fold > 1 else 0))
        self.final_to_done = tree_delay + 2 + finish_stages
        self.done = delay(m, self.final, self.final_to_done, "fold_done")

    def _collect(self, results, shape, group_last, complete_group, to_write, finish_stages):
        """Every channel's register, written from its lane's ``results`` ``to_write`` cycles
        after its group's last chunk was at the heads (``group_last``), ``finish_stages``
        after its group's totals were complete."""
        m, spec = self._m, self._spec
        pe = spec.pe
        write = delay(m, group_last, to_write, "group_done")
        write_group = delay(m, complete_group, finish_stages, "group_of_result")
        accumulators = []
        for co in range(spec.out_channels):
            total = Signal(shape, name=f"total_{co}")
            with m.If(write & (write_group == co // pe)):
                m.d.sync += total.eq(results[co % pe])
            accumulators.append(total)
        return accumulators

    def _shared_output_stage(self, lanes, complete, complete_group, finish):
        """One serial output stage for every lane (``spec.serial_stage_shared``): the channels'
        results, in registers that shift as each comes out.

        When the lanes' totals are complete they are captured in a queue; from the next cycle
        the stage starts every ``digits + 1`` cycles, each time on the queue's head (which
        then moves up), for the group's channels in order (the last group may have fewer).
        Its results leave in channel order, ``spec.serial_stage_cycles`` after each start, and
        shift into the channels' registers: after a position's last, register ``co`` holds
        channel ``co``. The next position's first comes at least ``simd_folds`` cycles after
        that position's last group started, so after ``done``.
        """
        m, spec = self._m, self._spec
        pe, cout, folds_p = spec.pe, spec.out_channels, spec.pe_folds
        digits = spec.serial_output_stage[1]
        acc_lo, acc_hi = spec.acc_range
        assert pe * (digits + 1) <= spec.simd_folds
        queue = [Signal.like(acc, name=f"shared_total_{k}") for k, acc in enumerate(lanes)]
        # ``start`` is a register (it drives the queue and the stage's operand registers): set
        # the cycle after ``complete``, then whenever ``wait`` has counted ``digits + 1``
        # cycles from the previous start while starts are ``left``.
        start = Signal(name="shared_start")
        left = Signal(range(pe), name="shared_left")
        wait = Signal(range(digits + 1), name="shared_wait")
        channel = Signal(range(folds_p * pe), name="shared_channel")
        last_lanes = cout - (folds_p - 1) * pe
        count = pe if last_lanes == pe else Mux(complete_group == folds_p - 1, last_lanes, pe)
        following = ~start & (left != 0) & (wait == 1)
        m.d.sync += start.eq(complete | following)
        with m.If(complete):
            m.d.sync += left.eq(count - 1)
        with m.Elif(following):
            m.d.sync += left.eq(left - 1)
        m.d.sync += wait.eq(Mux(start, digits, wait - 1))
        with m.If(complete):
            m.d.sync += [q.eq(acc) for q, acc in zip(queue, lanes)]
            m.d.sync += channel.eq(complete_group * pe)
        with m.Elif(start):
            m.d.sync += [queue[k].eq(queue[k + 1]) for k in range(pe - 1)]
            m.d.sync += channel.eq(channel + 1)
        result = finish(None, Term(queue[0], acc_lo, acc_hi), list(range(cout)), channel, start)
        ready = delay(m, start, spec.serial_stage_cycles, "shared_result")
        totals = [Signal(result.shape(), name=f"total_{co}") for co in range(cout)]
        with m.If(ready):
            m.d.sync += [total.eq(following) for total, following in zip(totals, totals[1:])]
            m.d.sync += totals[-1].eq(result)
        return totals

    def _held_heads(self, value, inside, prefetch, element):
        """Per group, ``simd`` heads that take the next chunk from the held inputs.

        A one-hot chunk select (chunk 0 after ``prefetch``, then turning every cycle: what the
        heads take outside a position's chunks is never used) picks each input by an AND-OR in
        two levels: registers hold the OR over parts of at most :data:`HELD_PART_CHUNKS`
        chunks, and a head is their OR, masked by flags registered from the select and the
        masks alone, in front of the multiplier input registers. Neither the masks nor the
        select's fan-out are in series with the whole selector (the held masks through a
        15-way one were the UP5K critical path).
        """
        m, spec = self._m, self._spec
        simd, folds_q, inputs = spec.simd, spec.simd_folds, spec.inputs_per_output
        if folds_q == 1:
            select = [C(1)]
        else:
            select = Signal(folds_q, name="operand_chunk")
            m.d.sync += select.eq(Mux(prefetch, 1, select.rotate_left(1)))
        parts = -(-folds_q // HELD_PART_CHUNKS)
        border = spec.border_value
        heads = [[] for _ in range(spec.groups)]
        for s in range(simd):
            chunks = [q for q in range(folds_q) if q * simd + s < inputs]
            # The input is inside the image (else padding: the border value), and, where the
            # lane has chunks past the inputs, a real one (else 0: its weight is 0 too).
            keep = Signal(name=f"head_inside_{s}")
            m.d.sync += keep.eq(_any([select[q] & inside(q * simd + s) for q in chunks]))
            fill = C(1)
            if border != 0 and len(chunks) < folds_q:
                fill = Signal(name=f"head_real_{s}")
                m.d.sync += fill.eq(_any([select[q] for q in chunks]))
            for g in range(spec.groups):
                ors = []
                for k in range(parts):
                    part = [q for q in chunks if q * parts // folds_q == k]
                    reg = Signal(element, name=f"head_{g}_{s}_part{k}")
                    m.d.sync += reg.eq(_any([Mux(select[q], value(q * simd + s, g), 0)
                                             for q in part]))
                    ors.append(reg)
                head = Signal(element, name=f"head_{g}_{s}")
                m.d.comb += head.eq(Mux(keep, _any(ors), Mux(fill, border, 0)))
                heads[g].append(head)
        return heads

    def _weight_memory(self, prefetch, swap, coef):
        """The weight word of the chunk at the rotators' heads, in a register.

        The memory is read a cycle ahead: word 0 while ``prefetch`` (the cycle before
        ``load``), then word ``i + 1`` in the cycle of step ``i - 1``, from a free-running
        address register. The read data goes straight into a register (the block RAM's own
        output register on ECP5), which holds the word of the chunk at the heads.
        """
        m, spec = self._m, self._spec
        lanes, cb, fold = spec.pe * spec.simd, spec.coeff_bits, spec.fold
        width = lanes * cb
        depth = 1 << ceil_log2(fold)
        ahead = Signal(range(depth), name="weight_addr_ahead")
        m.d.sync += ahead.eq(Mux(prefetch, 1, ahead + 1))
        read_addr = Mux(prefetch, 0, ahead)
        if coef is None:
            init = [self._constant_word(word) for word in range(fold)]
            m.submodules.weights = weights = memory.Memory(shape=width, depth=depth, init=init)
            rd = weights.read_port()
            m.d.comb += rd.addr.eq(read_addr)
        else:
            # Two halves: the active one is read, the other (the shadow) written; a start of
            # frame swaps them after a write. Read and write address different halves in every
            # cycle (both from the same effective bank), so they never collide: no bypass logic
            # between the block RAM and its output register (``no_rw_check``).
            m.submodules.weights = weights = memory.Memory(
                shape=width, depth=2 * depth, init=[], attrs={"no_rw_check": 1})
            rd, wr = weights.read_port(), weights.write_port(granularity=cb)
            # The port's writes are registered first (the port comes from outside: its path to
            # the block RAM starts at a flip-flop), and so is the swap: ``swap`` is the start of
            # frame one cycle after its issue, when its first weight word is read, so the bank
            # in use that cycle is already the swapped one (registers and one LUT, no path from
            # the issue decision).
            lane_bits = ceil_log2(lanes)
            # The lane enables are decoded before the register: on ECP5 a 36-bit-wide block
            # RAM takes them on its address pins (byte enables), which then see flip-flops only.
            we, addr = Signal(name="coef_we_r"), Signal.like(coef.addr, name="coef_addr_r")
            data = Signal.like(coef.data, name="coef_data_r")
            enables = Signal(lanes, name="coef_lanes_r")
            port_word, port_lane = coef.addr[lane_bits:], coef.addr[:lane_bits]
            m.d.sync += [
                we.eq(coef.we), addr.eq(coef.addr), data.eq(coef.data),
                enables.eq(Cat(coef.we & (port_lane == index) & (port_word < fold)
                               for index in range(lanes))),
            ]
            bank, pending = Signal(), Signal()
            swapping = swap & pending
            in_use = bank ^ swapping
            word = addr[lane_bits:]
            m.d.comb += [
                wr.addr.eq(Cat(word[:ceil_log2(depth)], ~in_use)),
                wr.data.eq(data.as_unsigned().replicate(lanes)),
                rd.addr.eq(Cat(read_addr, in_use)),
                wr.en.eq(enables),
            ]
            m.d.sync += [bank.eq(in_use), pending.eq(Mux(swapping, we, pending | we))]
        held = Signal(width, name="weight_word")
        m.d.sync += held.eq(rd.data)
        return _Word(held, cb)

    def _constant_word(self, word):
        spec = self._spec
        p, q = divmod(word, spec.simd_folds)
        kh, kw = spec.kernel_shape
        bits = 0
        for k in range(spec.pe):
            for s in range(spec.simd):
                co, n = p * spec.pe + k, q * spec.simd + s
                if co >= spec.out_channels or n >= spec.inputs_per_output:
                    continue
                ci, tap = divmod(n, kh * kw)
                row, col = divmod(tap, kw)
                weight = spec.hw_weight(co, ci, row, col)
                bits |= (weight & ((1 << spec.coeff_bits) - 1)) << ((k * spec.simd + s)
                                                                    * spec.coeff_bits)
        return bits


def _any(values):
    """The OR of ``values`` (0 when none)."""
    return reduce(operator.or_, values) if values else C(0)


class _Word:
    """Lane ``index``'s signed weight in a memory word."""

    def __init__(self, data, bits):
        self._data, self._bits = data, bits

    def word(self, index):
        return self._data[index * self._bits:(index + 1) * self._bits].as_signed()
