"""A cycle-level stream driver for core tests that the shared harness cannot express.

:func:`run_stream` sends a flat stream with ``first`` markers wherever a test wants them (mid-frame,
or none at all), writes runtime coefficients at chosen points, even while pixels flow, and
records the cycle of every transfer and every stream-rule violation.

Any core kind: a pixel of several channels is one beat, given as the integer
:func:`convhw.stimulus.pack_beats` makes, and comes back as the raw integer of its output beat
(:func:`convhw.stimulus.unpack_beats` splits it); runtime coefficients are written as
:func:`convhw.stimulus.coefficient_writes` says.
"""

from amaranth.sim import Simulator

from convhw.stalls import INPUT, OUTPUT, StallPattern
from convhw.stimulus import coefficient_writes

__all__ = ["run_stream"]


def run_stream(dut, pixels, outputs, *, firsts=(0,), lasts=(), kernels=None, meddle=None,
               in_stall=0.0, out_stall=0.0, seed=0, quiet=None):
    """Stream ``pixels`` (flat, ``first`` at the indices in ``firsts``, ``last`` at those in
    ``lasts``) and take ``outputs``.

    ``kernels`` maps a pixel index to a runtime kernel written (with ``valid`` low) just before
    that pixel. ``meddle`` is ``(index, kernel)``: that kernel is written one coefficient per
    cycle while the producer goes on streaming, from the cycle pixel ``index`` is accepted.
    After the last output, ``o.ready`` stays high and ``o.valid`` must stay low for ``quiet``
    cycles (default ``latency + 4``) and until the producer has sent every pixel (an output
    beyond those expected is an error, and cannot hold the input back). A run that stops making
    progress fails an assertion instead of hanging.
    Returns ``(values, markers, accept_cycles, output_cycles, errors)``.
    """
    spec = dut.spec
    firsts, lasts = frozenset(firsts), frozenset(lasts)
    payload = dut.i.payload.as_value()
    data_bits = len(payload) - 2                # data, then first, then last
    out_channels = getattr(spec, "out_channels", 1)
    lanes = getattr(spec, "pixels_per_clock", 1)    # (a beat of N pixels: raw values)
    out_mask = (1 << (spec.out_bits * out_channels * lanes)) - 1
    stall_in, stall_out = StallPattern(seed, INPUT, in_stall), StallPattern(seed, OUTPUT, out_stall)
    values, markers, accepted, produced, errors = [], [], [], [], []
    produced_all = []               # not empty once the producer has sent every pixel
    writes = getattr(spec, "coefficient_count", spec.taps)
    work = (len(pixels) + outputs * getattr(spec, "fold", 1) + spec.latency + 16
            + writes * (len(kernels or {}) + 1))
    limit = int(4 * work / max(0.01, (1 - in_stall) * (1 - out_stall)))

    def write(ctx, addr, coeff):
        ctx.set(dut.coef.addr, addr)
        ctx.set(dut.coef.data, int(coeff))
        ctx.set(dut.coef.we, 1)

    async def producer(ctx):
        cycle = 0
        for index, value in enumerate(pixels):
            if kernels and index in kernels:
                ctx.set(dut.i.valid, 0)
                for addr, coeff in coefficient_writes(spec, kernels[index]):
                    write(ctx, addr, coeff)
                    await ctx.tick()
                    cycle += 1
                ctx.set(dut.coef.we, 0)
            while stall_in(cycle):
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
                cycle += 1
            ctx.set(payload, (int(value) & ((1 << data_bits) - 1))
                    | (index in firsts) << data_bits | (index in lasts) << (data_bits + 1))
            ctx.set(dut.i.valid, 1)
            ready = 0
            while not ready:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                cycle += 1
                assert cycle < limit, f"no progress: {index} of {len(pixels)} pixels taken"
            accepted.append(cycle - 1)
        ctx.set(dut.i.valid, 0)
        produced_all.append(True)

    async def meddler(ctx):
        index, kernel = meddle
        while len(accepted) <= index:
            await ctx.tick()
        for addr, coeff in coefficient_writes(spec, kernel):
            write(ctx, addr, coeff)
            await ctx.tick()
        ctx.set(dut.coef.we, 0)

    async def consumer(ctx):
        cycle, held = 0, None
        quiet_left = spec.latency + 4 if quiet is None else quiet
        while len(values) < outputs or quiet_left > 0 or not produced_all:
            ready = not stall_out(cycle) if len(values) < outputs else True
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            cycle += 1
            raw = payload.as_value().value
            if held is not None and (not valid or raw != held):
                errors.append(f"cycle {cycle - 1}: output changed before its transfer")
            held = raw if valid and not ready else None
            if len(values) == outputs:
                quiet_left -= 1
                if valid:
                    errors.append(f"cycle {cycle - 1}: output beyond the {outputs} expected")
            elif valid and ready:
                values.append(payload.data if out_channels == lanes == 1 else raw & out_mask)
                markers.append((payload.first, payload.last))
                produced.append(cycle - 1)
            assert cycle < limit, f"no progress: {len(values)} of {outputs} outputs"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    if meddle is not None:
        sim.add_testbench(meddler, background=True)
    sim.add_testbench(consumer)
    sim.run()
    return values, markers, accepted, produced, errors
