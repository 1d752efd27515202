"""What every streaming core shows outside: its interface and its credit-managed output queue.

The pipeline of a core never stalls. Instead, a result may enter it only while the output FIFO is
sure to have a slot for it when it comes out: :class:`OutputQueue` counts the results in flight
and in the FIFO (credits) against the FIFO's depth. The FIFO gives the output stream its
valid/ready behaviour: ``valid`` never depends on ``ready`` and the payload holds while waiting.
"""

from amaranth import *
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import coefficient_port_signature, pixel_layout

__all__ = ["core_signature", "OutputQueue", "StreamingCore"]


def core_signature(spec):
    """``i``, ``o`` and, for runtime coefficients, ``coef``: the members of a core for ``spec``.

    Works for any spec with ``in_bits``, ``in_signed``, ``out_bits``, ``runtime_coeffs``,
    ``taps`` and ``coeff_bits`` (and ``in_channels``/``out_channels``: one beat carries every
    channel of a pixel).
    """
    lanes = getattr(spec, "pixels_per_clock", 1)
    members = {
        "i": In(stream.Signature(pixel_layout(spec.in_bits, spec.in_signed,
                                              getattr(spec, "in_channels", 1), lanes))),
        "o": Out(stream.Signature(pixel_layout(spec.out_bits, True,
                                               getattr(spec, "out_channels", 1), lanes))),
    }
    if spec.runtime_coeffs:
        members["coef"] = In(coefficient_port_signature(spec))
    return wiring.Signature(members)


class OutputQueue(wiring.Component):
    """Output FIFO of ``depth`` results of ``bits`` with credits for the results in flight.

    A result written with ``w_en`` is valid on ``o`` two cycles later
    (:attr:`convhw.spec.ConvSpec.FIFO_LATENCY`) when the queue was empty.

    Members
    -------
    start : In(1)
        A result enters the pipeline (it takes a credit until it leaves through ``o``).
    can_start : Out(1)
        A credit is free; depends on registers only.
    next_can_start : Out(1)
        ``can_start`` of the next cycle.
    can_start_after_start, can_start_after_idle : Out(1)
        ``next_can_start`` if ``start`` is 1, and if it is 0 (for an issue decision that
        selects between them last).
    w_en : In(1), w_data : In(pixel_layout(bits, True))
        A result leaving the pipeline.
    o : Out(stream.Signature(pixel_layout(bits, True)))

    A queue of 1 or 2 results is two registers, or with ``small_in_block_ram`` a block RAM
    when its results are wide (:attr:`BLOCK_RAM_WIDTH`): where logic cells are scarce (the
    iCEBreaker's digits network: conv2's and dense's queues, 340 flip-flops). Not by default:
    a block RAM's output is slow (ECP5: 5.6 ns; the digits network at 122 MHz, not 151).
    """

    #: Queues of results of at least this many bits, and this many bits in all, are block RAM.
    BLOCK_RAM_WIDTH, BLOCK_RAM_BITS = 32, 128

    def __init__(self, *, bits, depth, small_in_block_ram=False):
        self._depth = depth
        self._small_in_block_ram = small_in_block_ram
        layout = pixel_layout(bits, True)
        super().__init__({
            "start": In(1), "can_start": Out(1), "next_can_start": Out(1),
            "can_start_after_start": Out(1), "can_start_after_idle": Out(1),
            "w_en": In(1), "w_data": In(layout),
            "o": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        width = len(self.w_data.as_value())
        valid = Signal()
        data = self._formal_write_data(m, platform)
        if self._depth <= 2 and not (self._small_in_block_ram and self._block_ram(width, 2)):
            stored, fetch, payload, state = self._register_stage(m, data, valid)
        else:
            stored, fetch, payload, state = self._memory_stage(m, data, valid, width)
        pop = valid & self.o.ready
        m.d.sync += valid.eq(fetch | (valid & ~self.o.ready))

        owed = Signal(range(self._depth + 1))
        m.d.sync += owed.eq(owed + self.start - pop)
        # ``owed < depth`` kept in a register (it gates a core's issue logic): computed from
        # the present count for each of the three ways the count can move.
        can_start = Signal(init=1)
        m.d.comb += [
            self.can_start_after_start.eq(Mux(pop, owed < self._depth, owed < self._depth - 1)),
            self.can_start_after_idle.eq(pop | (owed < self._depth)),
            self.next_can_start.eq(Mux(self.start, self.can_start_after_start,
                                       self.can_start_after_idle)),
        ]
        m.d.sync += can_start.eq(self.next_can_start)
        m.d.comb += [
            self.can_start.eq(can_start),
            self.o.valid.eq(valid),
            self.o.payload.eq(payload),
        ]
        if getattr(platform, "formal_checks", False):
            self._add_formal_checks(m, platform, stored=stored, valid=valid, owed=owed,
                                    can_start=can_start, fetch=fetch, pop=pop, **state)
        return m

    def _block_ram(self, width, rows):
        return width >= self.BLOCK_RAM_WIDTH and rows * width >= self.BLOCK_RAM_BITS

    def _register_stage(self, m, data, valid):
        """Depth 1 or 2: one register of ``w_data`` before the output register, which is the
        second slot (the credits never let a third result in: a write finds the register
        empty or moving on). ``(stored, fetch, payload, formal state)``."""
        held = Signal(self.w_data.shape(), reset_less=True, name="held")
        shown = Signal(len(held.as_value()), reset_less=True, name="shown")
        stored = Signal(name="stored")        # ``held`` has a result not yet in ``shown``
        fetch = stored & (~valid | self.o.ready)
        with m.If(self.w_en):
            m.d.sync += [held.eq(data), stored.eq(1)]
        with m.Else():
            m.d.sync += stored.eq(stored & ~fetch)
        with m.If(fetch):
            m.d.sync += shown.eq(held.as_value())
        return stored, fetch, shown, dict(rows=1, entries=[held], has_stored=stored,
                                          writable=~stored | fetch)

    def _memory_stage(self, m, data, valid, width):
        """A memory of results and a read stage (the memory's output is the payload).
        ``(stored, fetch, payload, formal state)``."""
        # A memory of results and a read stage (the block RAM's output is the payload). The
        # credits guarantee that a write never finds the memory full, so nothing checks it, and
        # that a row is never read in the cycle it is written (``no_rw_check``).
        rows = 1 << max(1, (self._depth - 1).bit_length())
        # A queue of wide results (several channels) goes into block RAM even where Yosys
        # would build it from flip-flops: the digits' conv1 queue of 4 results of 4 channels,
        # 200 flip-flops and their read multiplexers, 210 UP5K cells, for 3 of 30 block RAMs.
        attrs = {"no_rw_check": 1}
        if self._block_ram(width, rows):
            attrs["ram_style"] = "block"
        m.submodules.storage = storage = memory.Memory(
            shape=width, depth=rows, init=[], attrs=attrs)
        wr, rd = storage.write_port(), storage.read_port()
        # Results live at ``read_addr`` .. ``read_addr + stored - 1``: only ``stored`` needs a
        # reset, so the read address is a register without reset, enabled by the read alone
        # (an iCE40 flip-flop's reset acts only with its enable: a reset would widen that).
        read_addr = Signal(range(rows), reset_less=True)
        stored = Signal(range(rows + 1))      # written, not yet read into the output stage
        has_stored = Signal()                 # ``stored != 0``, kept in a register
        fetch = has_stored & (~valid | self.o.ready)
        m.d.comb += [
            wr.en.eq(self.w_en), wr.addr.eq(read_addr + stored),
            wr.data.eq(data),
            rd.en.eq(fetch), rd.addr.eq(read_addr),
        ]
        # Written as conditions rather than arithmetic on the enables, so a Verilog simulator's
        # unknown values in the pipeline before its first real result never reach the counts.
        # The two flags are plain logic of registers (no clock enable to merge into another LUT).
        # ``stored`` never holds (it adds ``~fetch`` or subtracts ``fetch``: one adder each), so it
        # needs no enable either.
        with m.If(self.w_en):
            m.d.sync += [has_stored.eq(1), stored.eq(stored + ~fetch)]
        with m.Else():
            m.d.sync += [
                has_stored.eq((fetch & (stored > 1)) | (has_stored & valid & ~self.o.ready)),
                stored.eq(stored - fetch),
            ]
        with m.If(fetch):
            m.d.sync += read_addr.eq(read_addr + 1)
        return stored, fetch, rd.data, dict(rows=rows, entries=(storage, read_addr),
                                            has_stored=has_stored, writable=stored < rows)

    def _formal_write_data(self, m, platform):
        """``w_data``; in a formal build that abstracts data (``platform.formal_abstract_data``)
        any value in its ``data`` field: the queue's properties do not depend on it, and the
        datapath that computes it drops out of the proof."""
        if not getattr(platform, "formal_abstract_data", False):
            return self.w_data
        from amaranth.asserts import AnySeq
        abstract = Signal(self.w_data.shape())
        m.d.comb += [
            abstract.data.eq(AnySeq(len(Value.cast(self.w_data.data)))),
            abstract.first.eq(self.w_data.first),
            abstract.last.eq(self.w_data.last),
        ]
        return abstract

    def _add_formal_checks(self, m, platform, *, rows, entries, stored, has_stored, writable,
                           valid, owed, can_start, fetch, pop):
        """Formal builds only (``platform.formal_checks``, see :mod:`convhw.formal`): assert
        the queue's own invariants with ``platform.formal_property`` and keep its state in
        :attr:`formal_view` for a harness to relate to the core around it."""
        prop = platform.formal_property
        depth = self._depth
        if isinstance(entries, tuple):
            # Entry ``j`` of the memory, counted from the read address (comb read ports: formal
            # builds only, they would cost a LUT RAM each).
            storage, read_addr = entries
            entries = []
            for j in range(rows):
                port = storage.read_port(domain="comb")
                m.d.comb += port.addr.eq(read_addr + j)
                entries.append(self.w_data.shape()(port.data))
        m.d.comb += [
            prop("queue_counts", has_stored == (stored != 0)),
            prop("queue_counts", can_start == (owed < depth)),
            prop("queue_counts", owed <= depth),
            prop("queue_counts", stored + valid <= owed),
            # A write always finds a free row (and never the row read in the same cycle, unless
            # that row is the register before the output register).
            prop("fifo_no_overflow", ~self.w_en | writable),
            # A read or a pop always finds a result.
            prop("fifo_no_underflow", ~fetch | (stored != 0)),
            prop("fifo_no_underflow", ~pop | (owed != 0)),
            # Every result written was issued (took a credit) and is still owed.
            prop("fifo_no_underflow", ~self.w_en | (owed > stored + valid)),
        ]
        self.formal_view = dict(depth=depth, rows=rows, stored=stored, valid=valid, owed=owed,
                                can_start=can_start, entries=entries)


class StreamingCore(wiring.Component):
    """What Conv2d and Conv1d share: a spec of ``spec_type``, :func:`core_signature` members,
    and a credit-managed :class:`OutputQueue` that the pipeline's results enter."""

    spec_type = None

    def __init__(self, spec, *, small_queue_in_block_ram=False):
        if not isinstance(spec, self.spec_type):
            raise TypeError(f"'spec' must be a {self.spec_type.__name__}, not {spec!r}")
        self._spec = spec
        self._small_queue_in_block_ram = small_queue_in_block_ram
        super().__init__(core_signature(spec))

    @property
    def spec(self):
        return self._spec

    def output_queue(self, m):
        """Add the output queue to ``m``, driving ``o``; the caller drives its ``start``."""
        spec = self._spec
        bits = len(Value.cast(self.o.payload.data))
        depth = getattr(spec, "output_queue_depth", spec.latency + 1)
        m.submodules.output = output = OutputQueue(
            bits=bits, depth=depth, small_in_block_ram=self._small_queue_in_block_ram)
        # The queue's payload is flat; ``o`` may carry an array of channels in the same bits.
        m.d.comb += [
            self.o.payload.eq(output.o.payload.as_value()),
            self.o.valid.eq(output.o.valid),
            output.o.ready.eq(self.o.ready),
        ]
        return output

    @staticmethod
    def write_result(m, output, control, result):
        """Enter ``result`` (one value, or a list with channel 0 first) into ``output`` with the
        ``emit``/``first``/``last`` of ``control``."""
        if isinstance(result, (list, tuple)):
            result = Cat(*result)
        m.d.comb += [
            output.w_en.eq(control.emit),
            output.w_data.data.eq(result),
            output.w_data.first.eq(control.first),
            output.w_data.last.eq(control.last),
        ]
