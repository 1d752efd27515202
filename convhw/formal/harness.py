"""A formal harness around any streaming core: its stream rules, no loss, framing, progress.

:class:`FormalHarness` wraps a core by its stream signature (``i``, ``o``, optional ``coef``)
and its ``spec``. Every input of the core is free (``AnySeq``: any value in any cycle), reset is
held low, and the harness asserts the properties of :data:`~convhw.formal.properties.EXTERNAL`
about what it sees on the ports. Nothing is assumed about the input stream: not that ``valid``
holds, not where ``first`` comes.

To prove them for all time by k-induction, the harness also relates its own counters to the
core's state (:data:`~convhw.formal.properties.INVARIANTS`). It finds, in the elaborated core,
the output queue (:class:`~convhw.gateware.core_io.OutputQueue`, which adds its own checks in a
formal build and shows its counts) and the position scheduler, whose reachable states it
learns in simulation (:mod:`convhw.formal.schedule_graph`). A core without them is still
checked, but its proof may stop at ``bounded``.

Unbounded 1-D cores (``Conv1dSpec(length=None)``) have no frames: there, ``last`` is never set
and the first output after reset has ``first``. Which later outputs carry ``first`` (the first
after each input ``first``) is checked through the scheduler, not from the ports.
"""

import math

from amaranth import *
from amaranth.asserts import AnySeq
from amaranth.hdl import Fragment

from ..gateware.core_io import OutputQueue
from ..gateware.schedule import Scheduler
from ..gateware.schedule1d import Schedule1d
from .properties import EXTERNAL, FormalPlatform
from .schedule_graph import explore, sync_registers

__all__ = ["FormalHarness", "response_bound", "is_bounded", "SCHEDULER_TYPES"]

#: Scheduler components whose reachable states the harness learns (a core kind with another
#: scheduler adds its class here).
SCHEDULER_TYPES = (Scheduler, Schedule1d)


def is_bounded(spec):
    """Whether ``spec`` streams frames (every 2-D spec; 1-D with a ``length``)."""
    return getattr(spec, "length", 0) is not None


def _output_positions(spec):
    """Stream positions of a frame's outputs, in order, and the positions of a frame."""
    if len(spec.out_shape) == 1:
        return [spec.output_position(ox) for ox in range(spec.out_shape[0])], \
            spec.positions_per_frame
    out_h, out_w = spec.out_shape[-2:]
    return [spec.output_position(oy, ox) for oy in range(out_h) for ox in range(out_w)], \
        spec.positions_per_frame


def response_bound(spec):
    """Cycles within which an output beat is taken while ``o.ready`` and ``i.valid`` are held
    high (for an unbounded 1-D stream: and ``i.first`` low, which restarts it).

    The longest run of positions without an output (between two outputs' positions, across a
    frame's end included), two cycles for early-``first`` cuts (one per frame, at most two
    frames), and the latency from a position's issue to its output being valid::

        max_gap + latency + 2

    An unbounded 1-D stream has no cuts; after reset (or a restart) its first output's position
    is ``span - 1``: ``max(stride, span) + latency``. A core that accumulates positions (a dense
    layer, ``accumulates_positions``) takes ``fold_per_position`` cycles for every position:
    ``frame_interval + latency + 2``.
    """
    if getattr(spec, "accumulates_positions", False):
        return spec.frame_interval + spec.latency + 2
    if not is_bounded(spec):
        return max(spec.stride, spec.output_position(0) + 1) + spec.latency
    positions, per_frame = _output_positions(spec)
    gaps = [b - a for a, b in zip(positions, positions[1:])]
    gaps.append(per_frame - positions[-1] + positions[0])
    return max(gaps) + spec.latency + 2


def _modulo(value, divisor, limit):
    """``value % divisor`` for ``0 <= value < limit``, by comparisons with constants (a solver
    handles them far better than a remainder)."""
    result = value
    for multiple in range(divisor, limit, divisor):
        result = Mux(value >= multiple, value - multiple, result)
    return result


def _row_end(index, frame, row):
    """Whether output ``index`` (``< frame``) of a frame is the last of its row."""
    return Cat(*(index == end for end in range(row - 1, frame, row))).any()


def _walk(fragment, path=()):
    yield fragment, path
    for sub, name, _src_loc in fragment.subfragments:
        yield from _walk(sub, path + (name,))


class _Elaborated(Elaboratable):
    """An already elaborated fragment as a submodule."""

    def __init__(self, fragment):
        self._fragment = fragment

    def elaborate(self, platform):
        return self._fragment


class FormalHarness(Elaboratable):
    """The core ``core`` with free inputs and the properties of its streams asserted.

    Parameters
    ----------
    core : wiring.Component
        Members ``i`` and ``o`` (streams of ``{data, first, last}``), optionally ``coef``, and a
        ``spec`` with ``out_shape`` and ``latency``.

    Attributes
    ----------
    properties : list of str
        The external properties asserted (after elaboration).
    notes : list of str
        What could not be related to the core's state (after elaboration): each makes a
        ``bounded`` result more likely.
    """

    def __init__(self, core):
        for member in ("i", "o"):
            if not hasattr(core, member):
                raise TypeError(f"'core' must have stream members 'i' and 'o', not {core!r}")
        if not hasattr(core, "spec"):
            raise TypeError(f"'core' must have a 'spec', not {core!r}")
        self._core = core
        self.properties = []
        self.notes = []

    @property
    def core(self):
        return self._core

    def elaborate(self, platform):
        m = Module()
        formal = FormalPlatform()
        core, spec = self._core, self._core.spec
        fragment = Fragment.get(core, formal)
        m.submodules.core = _Elaborated(fragment)
        prop = formal.formal_property
        checked = set()

        def check(name, test):
            checked.add(name)
            m.d.comb += prop(name, test)

        m.d.comb += prop("reset", ResetSignal() == 0, assume=True)
        # Every input of the core is free in every cycle.
        m.d.comb += [
            core.i.valid.eq(AnySeq(1)),
            core.i.payload.eq(AnySeq(len(Value.cast(core.i.payload)))),
            core.o.ready.eq(AnySeq(1)),
        ]
        if hasattr(core, "coef"):
            for name in ("we", "addr", "data"):
                port = getattr(core.coef, name)
                m.d.comb += port.eq(AnySeq(len(Value.cast(port))))

        i, o = core.i, core.o
        bounded = is_bounded(spec)
        out_shape = tuple(spec.out_shape)
        frame = math.prod(out_shape) if bounded else None
        row = out_shape[-1] if bounded else None
        taken = o.valid & o.ready
        handshake = i.valid & i.ready

        # Output stream rules: after the first cycle, a beat that waited is still there.
        started = Signal()
        past_valid, past_ready = Signal(), Signal()
        past_payload = Signal.like(o.payload)
        m.d.sync += [started.eq(1), past_valid.eq(o.valid), past_ready.eq(o.ready),
                     past_payload.eq(o.payload)]
        waited = started & past_valid & ~past_ready
        check("output_valid_held", ~waited | o.valid)
        check("output_payload_stable", ~waited | (Value.cast(o.payload) ==
                                                   Value.cast(past_payload)))

        # Framing, counted on the output port.
        if bounded:
            index = Signal(range(frame))
            with m.If(taken):
                m.d.sync += index.eq(Mux(index == frame - 1, 0, index + 1))
            check("frame_position", index < frame)
            check("frame_first", ~taken | (o.payload.first == (index == 0)))
            check("frame_last", ~taken | (o.payload.last == _row_end(index, frame, row)))
        else:
            seen = Signal()
            with m.If(taken):
                m.d.sync += seen.eq(1)
            check("frame_first", ~taken | seen | o.payload.first)
            check("frame_last", ~taken | ~o.payload.last)

        # What the core is made of.
        queues = [origin for frag, _ in _walk(fragment) for origin in (frag.origins or ())
                  if isinstance(origin, OutputQueue)]
        schedulers = [(origin, frag) for frag, _ in _walk(fragment)
                      for origin in (frag.origins or ()) if isinstance(origin, SCHEDULER_TYPES)]
        queue = queues[0] if len(queues) == 1 and hasattr(queues[0], "formal_view") else None
        if queue is None:
            self.notes.append(f"{len(queues)} output queues found (1 expected): the FIFO is not "
                              f"related to the outputs")
        scheduler, graph = None, None
        if len(schedulers) == 1:
            scheduler, scheduler_fragment = schedulers[0]
            graph = explore(type(scheduler)(spec), bounded=bounded)
            registers = sync_registers(scheduler_fragment)
            if graph is None or [r.name for r in registers] != graph.register_names:
                self.notes.append("the scheduler's states are not known: its position is not "
                                  "related to the outputs")
                graph = None
        else:
            self.notes.append(f"{len(schedulers)} position schedulers found (1 expected)")

        # The input side: a position that needs a pixel is issued on a handshake, and only then.
        if scheduler is not None:
            check("input_taken_on_handshake",
                  handshake == (scheduler.advance & scheduler.needs_input))

        # The state the invariants talk about.
        view = queue.formal_view if queue is not None else None
        pipeline_depth = getattr(spec, "pipeline_depth", None)
        in_flight = None
        if view is not None:
            # A folded core issues an emitting position at most every ``fold`` cycles: a credit
            # must be free whenever that gap has passed.
            gap_open = C(1, 1)
            fold = getattr(spec, "fold", 1)
            if fold > 1 and scheduler is not None:
                recent = Signal(fold - 1, name="emitting_issues_recently")
                m.d.sync += recent.eq(Cat(scheduler.advance & scheduler.emit, recent[:-1]))
                gap_open = recent == 0
            check("credit_free_under_ready",
                  ~(started & past_ready & gap_open) | view["can_start"])
            if pipeline_depth is not None:
                # Results issued 1 .. pipeline_depth cycles ago, the oldest last.
                issued = Signal(pipeline_depth)
                m.d.sync += issued.eq(Cat(queue.start, issued[:-1]))
                check("results_all_delivered", queue.w_en == issued[-1])
                in_flight = Signal(range(pipeline_depth + 1))
                m.d.comb += in_flight.eq(sum(issued[k] for k in range(pipeline_depth)))
                check("pipeline_accounting",
                      view["owed"] == in_flight + view["stored"] + view["valid"])
            else:
                self.notes.append("the spec has no 'pipeline_depth': results in flight are "
                                  "not counted")

        state = None
        if graph is not None:
            state = Cat(*registers)
            known = Signal()
            with m.Switch(state):
                for value in graph.states:
                    with m.Case(value):
                        m.d.comb += known.eq(1)
            check("scheduler_reachable", known)

        def table(values, shape):
            """``values[state]`` of the scheduler's present state, as a signal."""
            result = Signal(shape)
            with m.Switch(state):
                for value in graph.states:
                    with m.Case(value):
                        m.d.comb += result.eq(values[value])
            return result

        # Framing inside the core: the FIFO's results and the scheduler's position agree with
        # the outputs counted on the port.
        if view is not None and in_flight is not None:
            # Outputs counted where they leave the queue (the port, unless a wrapper sits
            # between them): the invariants describe the core, the port properties its user.
            queue_taken = queue.o.valid & queue.o.ready
            queue_index = None
            if bounded:
                queue_index = Signal(range(frame))
                with m.If(queue_taken):
                    m.d.sync += queue_index.eq(Mux(queue_index == frame - 1, 0, queue_index + 1))
                check("frame_position", queue_index < frame)
                # Every beat that leaves the queue appears on the port, none other.
                check("results_all_delivered", index == queue_index)
            else:
                queue_seen = Signal()
                with m.If(queue_taken):
                    m.d.sync += queue_seen.eq(1)
                check("results_all_delivered", seen == queue_seen)
                # Until the first output, the oldest result owed is a sequence's first.
                check("fifo_frame_markers", seen | view["valid"] | ~queue.w_en
                      | (view["stored"] != 0) | queue.w_data.first)
                check("fifo_frame_markers", seen | view["valid"] | (view["stored"] == 0)
                      | view["entries"][0].first)
                check("fifo_frame_markers", seen | ~view["valid"] | queue.o.payload.first)
                if graph is not None:
                    first_next = table(graph.next_emit_first, 1)
                    check("frame_position", seen | (view["owed"] != 0) | first_next)
            ahead = view["valid"]

            def markers_ok(entry, offset):
                if not bounded:
                    return ~entry.last
                at = _modulo(queue_index + offset, frame, frame + len(view["entries"]) + 2)
                return (entry.first == (at == 0)) & (entry.last == _row_end(at, frame, row))

            check("fifo_frame_markers", ~view["valid"] | markers_ok(queue.o.payload, 0))
            for j, entry in enumerate(view["entries"]):
                check("fifo_frame_markers", (j >= view["stored"]) | markers_ok(entry, ahead + j))
            check("fifo_frame_markers", ~queue.w_en
                  | markers_ok(queue.w_data, ahead + view["stored"]))
            if bounded and graph is not None and graph.emitted is not None:
                emitted = table({s: graph.emitted[s] % frame for s in graph.states},
                                range(frame))
                check("frame_position",
                      _modulo(queue_index + view["owed"], frame, frame + view["depth"] + 1)
                      == emitted)

        # Input beats per frame.
        if bounded and graph is not None and graph.consumed is not None:
            pixels = math.prod(spec.frame_shape)
            count = Signal(range(pixels + 2))
            ends = table({s: int(graph.frame_end(s)) for s in graph.states}, 1)
            with m.If(scheduler.advance & ends):
                m.d.sync += count.eq(0)
            with m.Elif(handshake & (count <= pixels)):
                m.d.sync += count.eq(count + 1)
            check("input_beats_per_frame", count <= pixels)
            lo = table({s: graph.consumed[s][0] for s in graph.states}, range(pixels + 1))
            hi = table({s: graph.consumed[s][1] for s in graph.states}, range(pixels + 1))
            check("input_count", (count >= lo) & (count <= hi))

        # Progress: with o.ready and i.valid held, an output within the bound.
        bound = response_bound(spec)
        offered = o.ready & i.valid
        if not bounded:
            offered &= ~i.payload.first
        waiting = Signal(range(bound + 1))
        with m.If(offered & ~taken):
            m.d.sync += waiting.eq(Mux(waiting == bound, bound, waiting + 1))
        with m.Else():
            m.d.sync += waiting.eq(0)
        check("response_within_bound", waiting < bound)
        accumulating = getattr(spec, "accumulates_positions", False)
        if accumulating:
            self.notes.append("no response budget invariant: the accumulating form takes "
                              "'fold_per_position' cycles per position, the scheduler graph "
                              "one")
        elif view is not None and in_flight is not None and graph is not None \
                and graph.cycles_to_emit is not None:
            latency = spec.latency
            oldest = Signal(range(latency + 1))     # cycles until the oldest in flight is valid
            for k in range(pipeline_depth):         # later k (older results) win
                with m.If(issued[k]):
                    m.d.comb += oldest.eq(latency - 1 - k)
            scheduled = table({s: graph.cycles_to_emit[s] + latency for s in graph.states},
                              range(max(graph.cycles_to_emit.values()) + latency + 1))
            remaining = Mux(view["valid"], 0,
                            Mux(view["stored"] != 0, 1, Mux(in_flight != 0, oldest, scheduled)))
            check("response_budget", waiting + remaining <= bound - 1)
        elif not accumulating:
            self.notes.append("no response budget invariant: the progress proof may not close")

        self.properties = [name for name in EXTERNAL if name in checked
                           or name in ("fifo_no_overflow", "fifo_no_underflow")
                           and view is not None]
        return m
