"""The properties a formal proof of a core checks, by name, and how a build tags them.

Each assertion of :class:`~convhw.formal.harness.FormalHarness` (and of the cores' formal-only
checks) is tagged with one of these names, so a failed proof says which property broke. The
*external* properties are what a user of the core relies on; the *invariants* relate the core's
state to the harness's counters so that induction can prove the external ones for all time.
"""

from amaranth.hdl import Assert, Assume

__all__ = ["EXTERNAL", "INVARIANTS", "PROPERTIES", "FormalPlatform", "TAG_PREFIX",
           "property_of_source"]

#: What a user relies on: name -> what it says.
EXTERNAL = {
    "output_valid_held": "once o.valid rises it stays high until o.ready",
    "output_payload_stable": "o.payload (data, first, last) does not change while valid waits",
    "input_taken_on_handshake": "the core takes an input beat exactly when i.valid & i.ready "
                                "(a position that needs a pixel is issued then and only then)",
    "input_beats_per_frame": "the core takes at most the frame's pixel count of beats per frame, "
                             "exactly that many when no early first cuts the frame",
    "fifo_no_overflow": "a result written into the output FIFO always finds a free row",
    "fifo_no_underflow": "the output FIFO never reads, pops or writes a result it does not owe",
    "results_all_delivered": "every result issued is written into the FIFO after the pipeline "
                             "depth and stays owed until it leaves through o",
    "credit_free_under_ready": "with o.ready high in the previous cycle a credit is free (a "
                               "folded core: once its fold gap has passed): the FIFO is deep "
                               "enough for one result per clock (per fold)",
    "frame_first": "o.first is set on every OH*OW-th output beat, the first included, and on "
                   "no other (unbounded 1-D: on the first output)",
    "frame_last": "o.last is set on every OW-th output beat and on no other (unbounded 1-D: "
                  "never)",
    "response_within_bound": "with o.ready and i.valid held high, an output beat is taken "
                             "within response_bound(spec) cycles",
}

#: What makes the proof inductive: name -> what it says.
INVARIANTS = {
    "queue_counts": "the output queue's flags and counts agree with each other",
    "scheduler_reachable": "the scheduler's registers hold one of its reachable states",
    "pipeline_accounting": "results owed = results in the pipeline + in the FIFO + on o",
    "fifo_frame_markers": "each result in the FIFO or being written carries the first/last of "
                          "its place in the frame",
    "frame_position": "the outputs of the frame issued so far match the scheduler's position",
    "input_count": "the input beats of the frame taken so far match the scheduler's position",
    "response_budget": "cycles waited so far + cycles still needed <= the response bound",
    "fold_schedule": "a folded layer's issue gap, emitting pipeline stages and engine step "
                     "agree with the cycles since the last emitting issue",
}

PROPERTIES = {**EXTERNAL, **INVARIANTS}

#: Source location prefix that names a property in a proof's report.
TAG_PREFIX = "convhw-property:"


def property_of_source(source):
    """The property name in a failed assertion's source location, or ``None``."""
    for part in str(source).split("|"):
        if part.startswith(TAG_PREFIX):
            return part[len(TAG_PREFIX):].rsplit(":", 1)[0]
    return None


class FormalPlatform:
    """What a formal build passes to ``elaborate``: components that check themselves (the
    output queue) see ``formal_checks`` and tag their assertions with
    :meth:`formal_property`. With ``abstract_data`` the output queue stores any value as a
    result's data (its markers stay): no property here depends on data values, and the
    datapath that computes them drops out of the proof."""

    formal_checks = True

    def __init__(self, *, abstract_data=True):
        self.formal_abstract_data = abstract_data

    def formal_property(self, name, test, *, assume=False):
        """``Assert(test)`` (``Assume`` when ``assume``) tagged as property ``name``."""
        if name not in PROPERTIES and not assume:
            raise ValueError(f"'name' must be one of {', '.join(PROPERTIES)}, not {name!r}")
        statement = (Assume if assume else Assert)(test)
        statement.src_loc = (f"{TAG_PREFIX}{name}", 0)
        return statement
