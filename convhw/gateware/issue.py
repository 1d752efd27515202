"""Issue decision of a streaming core, from one 2-bit register and the input's valid and first.

A position is issued when the output queue has a credit and, if it takes an input pixel, that
pixel is valid and does not start a frame early (``first`` on a position other than a frame's
first). That depends on three registers of the core (credit, needs input, at start) and two
input signals: five inputs, two LUT levels on iCE40, and the decision is the clock enable of
the scheduler, the line-buffer read and the pixel capture (a global buffer's worth of
flip-flops). So the three registers are mirrored in one 2-bit mode register, computed from
their next values, and the decision is a single 4-input function.

The next mode depends on the decision (an issue moves the scheduler and may take a credit), so
it is computed for each outcome, issue, early start of frame or wait, from registers and the
output queue's late ``pop`` only, and the decision selects one last: the loop from the mode
back to itself no longer runs through the scheduler and the credit logic (the UP5K critical
path of the digits chain, five LUTs deep).
"""

from amaranth import *
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["IssueMode", "IssueGate"]


class IssueMode(enum.Enum, shape=2):
    WAIT = 0     # no credit
    FREE = 1     # credit, no input needed
    PIXEL = 2    # credit, needs a pixel that does not start a frame
    START = 3    # credit, needs a pixel at a frame's first position

    @classmethod
    def of(cls, credit, needs_input, at_start):
        """The mode for these conditions (hardware values or Python ints)."""
        if not isinstance(credit, Value) and not isinstance(needs_input, Value) \
                and not isinstance(at_start, Value):
            if not credit:
                return cls.WAIT
            if not needs_input:
                return cls.FREE
            return cls.START if at_start else cls.PIXEL
        return Mux(~credit, cls.WAIT, Mux(~needs_input, cls.FREE,
                                          Mux(at_start, cls.START, cls.PIXEL)))


class IssueGate(wiring.Component):
    """Issue decision; ``init`` is ``(credit, needs_input, at_start)`` after reset.

    Members
    -------
    credit_after_issue, credit_after_wait : In(1)
        Whether a credit is free next cycle if this one issues, and if it does not.
    needs_after_advance, at_start_after_advance : In(1)
        The scheduler's ``needs_input`` and ``at_start`` of the next cycle if this one issues.
    needs_input, at_start : In(1)
        The same for the current position (kept by a wait; an early start of frame clears
        ``needs_input``).
    valid, first : In(1)
        The input stream's ``valid`` and ``payload.first``.
    issue : Out(1)
        Issue the current position (and take the input pixel if it needs one).
    ready : Out(1)
        The input stream's ``ready``; does not depend on ``valid``.
    early_first : Out(1)
        A valid pixel with ``first`` waits at a position that needs a pixel but does not start
        a frame (while a credit is free: ending the frame early takes no credit, but waiting
        for one keeps this a function of the same four inputs as ``issue``).
    moves : Out(1)
        ``issue | early_first``: the scheduler steps or truncates. A function of three inputs
        (the mode and ``valid``), the clock enable of the scheduler's registers.
    """

    credit_after_issue: In(1)
    credit_after_wait: In(1)
    needs_after_advance: In(1)
    at_start_after_advance: In(1)
    needs_input: In(1)
    at_start: In(1)
    valid: In(1)
    first: In(1)
    issue: Out(1)
    ready: Out(1)
    early_first: Out(1)
    moves: Out(1)

    def __init__(self, init):
        self._init = IssueMode.of(*init)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        mode = Signal(IssueMode, init=self._init)
        after = {
            "issue": IssueMode.of(self.credit_after_issue, self.needs_after_advance,
                                  self.at_start_after_advance),
            "truncate": IssueMode.of(self.credit_after_wait, 0, self.at_start),
            "wait": IssueMode.of(self.credit_after_wait, self.needs_input, self.at_start),
        }
        kept = {}
        for outcome, value in after.items():
            kept[outcome] = Signal(2, name=f"mode_after_{outcome}", attrs={"keep": 1})
            m.d.comb += kept[outcome].eq(value)
        takes_pixel = (mode == IssueMode.START) | ((mode == IssueMode.PIXEL) & ~self.first)
        # Kept nets: each decision is mapped as one LUT of its own inputs, not built from
        # another's (a shared intermediate made the clock enable three LUTs deep).
        issue = Signal(attrs={"keep": 1})
        moves = Signal(attrs={"keep": 1})
        needs_pixel = (mode == IssueMode.START) | (mode == IssueMode.PIXEL)
        m.d.comb += [
            issue.eq((mode == IssueMode.FREE) | (takes_pixel & self.valid)),
            moves.eq((mode == IssueMode.FREE) | (needs_pixel & self.valid)),
            self.ready.eq(takes_pixel),
            self.early_first.eq((mode == IssueMode.PIXEL) & self.first & self.valid),
            self.issue.eq(issue),
            self.moves.eq(moves),
        ]
        m.d.sync += mode.eq(Mux(issue, kept["issue"],
                                Mux(self.early_first, kept["truncate"], kept["wait"])))
        return m
