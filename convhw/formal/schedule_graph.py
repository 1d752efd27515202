"""The reachable states of a core's position scheduler, explored in simulation.

A scheduler (:class:`~convhw.gateware.schedule.Scheduler`,
:class:`~convhw.gateware.schedule1d.Schedule1d`) is a small machine driven by three inputs:
``advance`` (issue the current position), ``truncate`` (an early start of frame) and ``restart``
(unbounded 1-D: a new sequence). Its registers say where in a frame it is. An induction proof
needs that as an invariant: "the scheduler is in one of its reachable states", with what each
state means (how many outputs of the frame were issued before it, how many inputs it took, how
many cycles at most until it issues the next output).

:func:`explore` finds those states by simulating a fresh scheduler of the same spec, setting
its registers to each state found and applying each input the core can give. The states are
only *candidates*: the proof checks that the core's scheduler never leaves them, so a mistake
here makes a proof fail, never pass wrongly.
"""

from dataclasses import dataclass, field

from amaranth import Cat
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

__all__ = ["ScheduleGraph", "explore", "sync_registers", "MAX_STATES"]

#: More reachable states than this: no scheduler invariant (the proof may then stay bounded).
MAX_STATES = 20000


def sync_registers(fragment):
    """The signals assigned in ``fragment``'s (and its subfragments') ``sync`` domain."""
    found, seen = [], set()

    def walk(frag):
        for domain, statements in frag.statements.items():
            if domain != "sync":
                continue
            for statement in statements:
                for signal in statement._lhs_signals():
                    if id(signal) not in seen:
                        seen.add(id(signal))
                        found.append(signal)
        for sub, _name, _src_loc in frag.subfragments:
            walk(sub)

    walk(fragment)
    return found


@dataclass
class ScheduleGraph:
    """Reachable scheduler states (``Cat`` of :attr:`register_names` as integers) and facts.

    Attributes
    ----------
    register_names : list of str
        The registers, in ``Cat`` order.
    states : list of int
        Reachable states, the reset state first.
    outputs : dict of int -> dict
        Per state, the scheduler's ``needs_input``, ``at_start``, ``emit``, ``first``, ``last``.
    advance, truncate, restart : dict of int -> int
        The state after each move, where the core can make that move.
    emitted : dict of int -> int or None
        Outputs of the current frame issued before this state (bounded cores).
    consumed : dict of int -> (int, int) or None
        Least and most input beats of the current frame taken before this state.
    cycles_to_emit : dict of int -> int or None
        Most cycles, with input offered, before the next output is issued.
    next_emit_first : dict of int -> int
        The ``first`` marker of the next output issued, advancing only.
    """

    register_names: list
    states: list
    outputs: dict
    advance: dict = field(default_factory=dict)
    truncate: dict = field(default_factory=dict)
    restart: dict = field(default_factory=dict)
    emitted: dict = None
    consumed: dict = None
    cycles_to_emit: dict = None
    next_emit_first: dict = None

    def frame_end(self, state):
        """Whether advancing from ``state`` starts a new frame."""
        return bool(self.outputs[self.advance[state]]["at_start"])


def explore(scheduler, *, bounded, max_states=MAX_STATES):
    """The :class:`ScheduleGraph` of a fresh, unelaborated ``scheduler`` component, or ``None``
    when it has more than ``max_states`` states.

    ``bounded`` cores truncate frames (``truncate`` at a position that takes input and does not
    start a frame); unbounded ones restart (``restart`` with ``advance``).
    """
    fragment = Fragment.get(scheduler, None)
    registers = sync_registers(fragment)
    names = [signal.name for signal in registers]
    state_value = Cat(*registers)
    report = ("needs_input", "at_start", "emit", "first", "last")
    # ``moves`` (where a scheduler has it) is ``advance | truncate``, its registers' enable.
    has = {name: hasattr(scheduler, name) for name in ("truncate", "restart", "moves")}
    graph = ScheduleGraph(register_names=names, states=[], outputs={})
    too_many = []

    async def testbench(ctx):
        initial = ctx.get(state_value)
        pending, known = [initial], {initial}

        async def step(state, advance, truncate, restart):
            ctx.set(state_value, state)
            ctx.set(scheduler.advance, advance)
            if has["moves"]:
                ctx.set(scheduler.moves, advance | truncate)
            if has["truncate"]:
                ctx.set(scheduler.truncate, truncate)
            if has["restart"]:
                ctx.set(scheduler.restart, restart)
            await ctx.tick()
            return ctx.get(state_value)

        while pending:
            state = pending.pop()
            graph.states.append(state)
            ctx.set(state_value, state)
            for name in ("truncate", "restart", "moves"):
                if has[name]:
                    ctx.set(getattr(scheduler, name), 0)
            outputs = {name: int(ctx.get(getattr(scheduler, name))) for name in report}
            graph.outputs[state] = outputs
            moves = [("advance", (1, 0, 0))]
            if bounded and has["truncate"] and outputs["needs_input"] and not outputs["at_start"]:
                moves.append(("truncate", (0, 1, 0)))
            if not bounded and has["restart"]:
                moves.append(("restart", (1, 0, 1)))
            for move, inputs in moves:
                following = await step(state, *inputs)
                getattr(graph, move)[state] = following
                if following not in known:
                    if len(known) >= max_states:
                        too_many.append(True)
                        return
                    known.add(following)
                    pending.append(following)

    simulator = Simulator(fragment)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    if too_many:
        return None
    if bounded:
        graph.emitted = _frame_counts(graph, "emit")
        graph.consumed = _frame_ranges(graph, "needs_input")
    graph.cycles_to_emit = _cycles_to_emit(graph, bounded)
    graph.next_emit_first = _next_emit_first(graph)
    return graph


def _next_emit_first(graph):
    """Per state, the ``first`` of the next position that emits, advancing only (0 when no
    position ahead emits)."""
    result = {}
    for root in graph.states:
        path, state = [], root
        while state not in result and not graph.outputs[state]["emit"] and state not in path:
            path.append(state)
            state = graph.advance[state]
        if state in result:
            value = result[state]
        elif graph.outputs[state]["emit"]:
            value = graph.outputs[state]["first"]
        else:
            value = 0
        for visited in path + [state]:
            result.setdefault(visited, value)
    return result


def _frame_counts(graph, key):
    """Per state, how many positions of the frame before it had ``key`` set; ``None`` when a
    state is reached with different counts (then there is no such invariant)."""
    ranges = _frame_ranges(graph, key)
    if any(lo != hi for lo, hi in ranges.values()):
        return None
    return {state: lo for state, (lo, hi) in ranges.items()}


def _frame_ranges(graph, key):
    """Per state, the least and most positions of the frame before it with ``key`` set."""
    start = graph.states[0]
    ranges = {start: (0, 0)}
    pending = [start]
    while pending:
        state = pending.pop()
        lo, hi = ranges[state]
        step = graph.outputs[state][key]
        moves = [(graph.advance[state], step)]
        if state in graph.truncate:
            moves.append((graph.truncate[state], 0))
        for following, add in moves:
            if graph.outputs[following]["at_start"] and following == graph.advance[state]:
                new = (0, 0)
            else:
                new = (lo + add, hi + add)
            old = ranges.get(following)
            merged = new if old is None else (min(old[0], new[0]), max(old[1], new[1]))
            if merged != old:
                ranges[following] = merged
                pending.append(following)
    return ranges


def _cycles_to_emit(graph, bounded):
    """Per state, the most cycles before the next output position is issued, with input offered
    (every move but ``restart``: an unbounded stream restarts only on an input ``first``).
    ``None`` when some path never issues an output."""
    def moves(state):
        following = [graph.advance[state]]
        if state in graph.truncate:
            following.append(graph.truncate[state])
        return following

    result, on_path = {}, set()
    for root in graph.states:
        stack = [root]
        while stack:
            state = stack[-1]
            if state in result:
                stack.pop()
                continue
            if graph.outputs[state]["emit"]:
                result[state] = 0
                stack.pop()
                continue
            missing = [s for s in moves(state) if s not in result]
            if not missing:
                result[state] = 1 + max(result[s] for s in moves(state))
                on_path.discard(state)
                stack.pop()
                continue
            if state in on_path:
                return None      # a cycle of positions without an output
            on_path.add(state)
            for following in missing:
                if following in on_path:
                    return None
                stack.append(following)
    return result
