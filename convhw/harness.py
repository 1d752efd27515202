"""Cycle-accurate simulation harness, shared by the tests, the ``sim/`` scenarios and the CLI.

:func:`simulate` pushes frames through a convolution core with seeded random stalls on both
streams and collects the output frames, the cycle count, and any stream-protocol violation it
saw. Runtime coefficients, one kernel (or set of layer weights) per frame, are written through
the core's ``coef`` port just before each frame's first pixel. ``backend="fast"`` runs the same
stimulus on a compiled model (:mod:`convhw.fastsim`).
"""

import numpy as np
from amaranth.sim import Simulator

from .stalls import INPUT, OUTPUT, StallPattern
from .stimulus import (SimResult, beat_shape, budget, check_probability, coefficient_writes,
                       lanes, marker_errors, pack_beats, result_frames, stimulus, unpack_beats)

__all__ = ["SimResult", "simulate", "pysim", "describe_mismatch", "budget", "stimulus",
           "marker_errors"]

BACKENDS = ("pysim", "fast")


def simulate(dut, frames, *, coefficients=None, in_stall=0.0, out_stall=0.0, seed=0, vcd=None,
             max_cycles=None, backend="pysim"):
    """Run ``frames`` (integer arrays of ``dut.spec.input_shape``) through ``dut``.

    ``dut`` is a core (``Conv2d``, ``Conv1d``, ``Chain``), or a spec (``ConvSpec``,
    ``Conv1dSpec``, ``ChainSpec``) whose core is built here. ``backend="pysim"`` uses the
    Amaranth simulator; ``"fast"`` a compiled model of the same design (:mod:`convhw.fastsim`),
    with the same stall patterns and cycle counts.
    """
    if not hasattr(dut, "i"):
        from .export import core_of
        dut = core_of(dut)
    if backend == "pysim":
        run = pysim
    elif backend == "fast":
        from .fastsim import simulate as run
    else:
        raise ValueError(f"'backend' must be one of {', '.join(BACKENDS)}, not {backend!r}")
    return run(dut, frames, coefficients=coefficients, in_stall=in_stall, out_stall=out_stall,
               seed=seed, vcd=vcd, max_cycles=max_cycles)


def pysim(dut, frames, *, coefficients=None, in_stall=0.0, out_stall=0.0, seed=0, vcd=None,
          max_cycles=None):
    spec = dut.spec
    check_probability("in_stall", in_stall)
    check_probability("out_stall", out_stall)
    frames, kernels = stimulus(spec, frames, coefficients)
    out_size = int(np.prod(beat_shape(spec)))
    expected = len(frames) * out_size
    limit = max_cycles or budget(spec, frames, in_stall, out_stall)
    stall_in = StallPattern(seed, INPUT, in_stall)
    stall_out = StallPattern(seed, OUTPUT, out_stall)
    state = {"first_in": None}
    outputs, markers, errors = [], [], []
    data_bits = len(dut.i.payload.data.as_value()) if hasattr(dut.i.payload.data, "as_value") \
        else len(dut.i.payload.data)
    out_bits = spec.out_bits
    out_data_bits = out_bits * getattr(spec, "out_channels", 1) * lanes(spec)
    payload = dut.i.payload.as_value()

    async def producer(ctx):
        cycle = 0
        for frame, kernel in zip(frames, kernels):
            if kernel is not None:
                ctx.set(dut.i.valid, 0)
                for addr, value in coefficient_writes(spec, kernel):
                    ctx.set(dut.coef.addr, addr)
                    ctx.set(dut.coef.data, value)
                    ctx.set(dut.coef.we, 1)
                    await ctx.tick()
                    cycle += 1
                ctx.set(dut.coef.we, 0)
            beats = pack_beats(spec, frame)
            width = frame.shape[-1] // lanes(spec)
            for index, beat in enumerate(beats):
                if stall_in(cycle):
                    ctx.set(dut.i.valid, 0)
                    while stall_in(cycle):
                        await ctx.tick()
                        cycle += 1
                # data, then first (start of frame), then last (end of row)
                ctx.set(payload, beat | (int(index == 0) << data_bits)
                        | (int(index % width == width - 1) << (data_bits + 1)))
                ctx.set(dut.i.valid, 1)
                while True:
                    _, _, ready = await ctx.tick().sample(dut.i.ready)
                    cycle += 1
                    if ready:
                        break
                if state["first_in"] is None:
                    state["first_in"] = cycle - 1
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        cycle, ready, last_out = 0, None, 0
        waiting = None  # payload offered but not taken last cycle
        mask = (1 << out_data_bits) - 1
        while len(outputs) < expected:
            want = not stall_out(cycle)
            if want != ready:
                valid_before = ctx.get(dut.o.valid)
                ctx.set(dut.o.ready, want)
                if ready is not None and ctx.get(dut.o.valid) != valid_before:
                    errors.append(f"cycle {cycle}: output valid changed with ready")
                ready = want
            _, _, valid, raw = await ctx.tick().sample(dut.o.valid, dut.o.payload.as_value())
            cycle += 1
            if waiting is not None and (not valid or raw != waiting):
                errors.append(f"cycle {cycle - 1}: output valid or payload changed before "
                              f"the transfer")
            waiting = raw if valid and not ready else None
            if valid and ready:
                outputs.append(raw & mask)
                markers.append(((raw >> out_data_bits) & 1, (raw >> (out_data_bits + 1)) & 1))
                last_out = cycle - 1
            if cycle > limit:
                raise TimeoutError(f"no progress: {len(outputs)} of {expected} outputs after "
                                   f"{cycle} cycles")
        state["last_out"] = last_out

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()

    values = unpack_beats(outputs, out_bits, getattr(spec, "out_channels", 1) * lanes(spec))
    errors += marker_errors(markers, beat_shape(spec))
    return SimResult(frames=result_frames(spec, values, len(frames)),
                     cycles=state["last_out"] - state["first_in"],
                     total_cycles=state["last_out"] + 1, errors=errors)


def describe_mismatch(got, expected):
    """``None`` when ``got`` equals ``expected`` exactly, else how many outputs differ and the
    first one (index, got, expected)."""
    got, expected = np.asarray(got), np.asarray(expected)
    bad = np.argwhere(got != expected)
    if not len(bad):
        return None
    where = tuple(int(v) for v in bad[0])
    return (f"{len(bad)} outputs differ, first at {where}: got {got[where]}, "
            f"expected {expected[where]}")
