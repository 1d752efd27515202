"""A value carried alongside a pipeline: ``cycles`` registers in a row, or, for sparse events,
a down-counter per event in flight."""

from amaranth import *

__all__ = ["delay", "sparse_delay"]


def delay(m, value, cycles, name):
    """``value`` delayed by ``cycles`` clocks of ``m.d.sync`` (``value`` itself for 0)."""
    for index in range(cycles):
        stage = Signal.like(value, name=f"{name}_d{index}")
        m.d.sync += stage.eq(value)
        value = stage
    return value


def sparse_delay(m, valid, payload, cycles, spacing, name):
    """``(valid, payload)`` delayed by ``cycles`` clocks, for events (``valid``) that come at
    least ``spacing`` clocks apart: ``(valid_out, payload_out)``.

    ``valid_out`` is the ``valid`` of ``cycles`` clocks before, exactly as from :func:`delay`;
    ``payload_out`` is the event's ``payload`` while ``valid_out`` is asserted (and holds
    between events, where the shift register would carry the clocks in between). Each of the
    ``ceil(cycles / spacing)`` events that can be in flight takes a slot: a down-counter and its
    payload. Falls back to :func:`delay` where the slots would cost more registers.
    """
    payload = Value.cast(payload)
    if cycles == 0:
        return valid, payload
    slots = -(-cycles // max(1, spacing))
    count_bits = cycles.bit_length()
    pointer_bits = (slots - 1).bit_length()
    if slots * (count_bits + len(payload)) + pointer_bits + 1 >= cycles * (1 + len(payload)):
        out = delay(m, Cat(valid, payload), cycles, name)
        return out[0], out[1:]
    # Slot ``j`` counts the clocks left to its event's output (0: free); events take the
    # slots in turn.
    lefts = [Signal(range(cycles + 1), name=f"{name}_left{j}") for j in range(slots)]
    kept = [Signal(len(payload), name=f"{name}_payload{j}", reset_less=True)
            for j in range(slots)]
    write = Signal(range(slots), name=f"{name}_write")
    out_valid = Signal(name=f"{name}_valid")
    for j, (left, value) in enumerate(zip(lefts, kept)):
        taken = valid & (write == j) if slots > 1 else valid
        with m.If(taken):
            m.d.sync += [left.eq(cycles), value.eq(payload)]
        with m.Elif(left != 0):
            m.d.sync += left.eq(left - 1)
    # ``out_valid`` is a register: set the clock before a counter reaches 1.
    if cycles == 1:
        m.d.sync += out_valid.eq(valid)
    else:
        m.d.sync += out_valid.eq(Cat(left == 2 for left in lefts).any())
    if slots == 1:
        return out_valid, kept[0]
    # The payload of the slot whose counter is at 1 (no read pointer: the counters alone
    # decide, so no state of the pointers can pair an event with another's payload).
    with m.If(valid):
        m.d.sync += write.eq(Mux(write == slots - 1, 0, write + 1))
    out = Signal(len(payload), name=f"{name}_payload")
    chosen = [Mux(left == 1, value, 0) for left, value in zip(lefts, kept)]
    combined = chosen[0]
    for other in chosen[1:]:
        combined = combined | other
    m.d.comb += out.eq(combined)
    return out_valid, out
