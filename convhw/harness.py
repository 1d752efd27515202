"""Cycle-accurate simulation harness, shared by the tests, the ``sim/`` scenarios and the CLI.

:func:`simulate` pushes frames through a convolution core with seeded random stalls on both
streams and collects the output frames, the cycle count, and any stream-protocol violation it
saw. Runtime coefficients, one kernel per frame, are written through the core's ``coef`` port
just before each frame's first pixel.
"""

import numbers
from dataclasses import dataclass, field

import numpy as np
from amaranth.sim import Simulator

from .stalls import INPUT, OUTPUT, StallPattern

__all__ = ["SimResult", "simulate", "pysim", "describe_mismatch"]


@dataclass
class SimResult:
    """Outputs of a run.

    ``cycles`` counts clock edges from the first input transfer to the last output transfer;
    ``total_cycles`` from reset to the last output transfer. ``errors`` lists stream-protocol
    and frame-marker violations (empty when the core behaved).
    """
    frames: list
    cycles: int
    total_cycles: int
    errors: list = field(default_factory=list)
    engine: str = "pysim"


def _check_probability(name, value):
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise ValueError(f"'{name}' must be a probability from 0 up to (not including) 1, "
                         f"not {value!r}")


def _kernels(spec, frames, coefficients):
    if not spec.runtime_coeffs:
        if coefficients is not None:
            raise ValueError("'coefficients' are only for runtime-coefficient specs")
        return [None] * len(frames)
    if coefficients is None:
        raise ValueError("a runtime-coefficient spec needs 'coefficients'")
    coefficients = [np.asarray(k) for k in coefficients]
    if len(coefficients) == 1:
        coefficients = coefficients * len(frames)
    if len(coefficients) != len(frames):
        raise ValueError(f"'coefficients' must give one kernel, or one per frame "
                         f"({len(frames)}), not {len(coefficients)}")
    lo, hi = -(1 << (spec.coeff_bits - 1)), (1 << (spec.coeff_bits - 1)) - 1
    for index, kernel in enumerate(coefficients):
        if kernel.shape != spec.kernel_shape:
            raise ValueError(f"runtime kernel shape {kernel.shape} does not match "
                             f"'kernel_shape' {spec.kernel_shape}")
        kernel = coefficients[index] = _integers("coefficients", kernel)
        if kernel.min() < lo or kernel.max() > hi:
            raise ValueError(f"runtime coefficients must lie in {lo}..{hi} for "
                             f"'coeff_bits'={spec.coeff_bits}")
    return coefficients


def _integers(name, array):
    """``array`` if it holds integers (whole-valued floats become int64), else a TypeError."""
    if array.dtype.kind in "iu" or (array.dtype == object and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in array.flat)):
        return array
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        return array.astype(np.int64)
    raise TypeError(f"'{name}' must hold integers, not {array.dtype} values")


def _frames(spec, frames):
    frames = [np.asarray(f) for f in frames]
    lo, hi = spec.pixel_range
    for index, frame in enumerate(frames):
        if frame.shape != spec.frame_shape:
            raise ValueError(f"frame shape {frame.shape} does not match the spec's "
                             f"(height, width) {spec.frame_shape}")
        frame = frames[index] = _integers("frames", frame)
        if frame.size and (frame.min() < lo or frame.max() > hi):
            raise ValueError(f"pixel values must lie in {lo}..{hi} for "
                             f"{spec.in_bits}-bit {'signed' if spec.in_signed else 'unsigned'} "
                             f"input")
    return frames


def stimulus(spec, frames, coefficients=None):
    """``(frames, kernels)`` validated for ``spec``; a kernel is ``None`` for constant specs."""
    frames = _frames(spec, frames)
    return frames, _kernels(spec, frames, coefficients)


BACKENDS = ("pysim", "fast")


def simulate(dut, frames, *, coefficients=None, in_stall=0.0, out_stall=0.0, seed=0, vcd=None,
             max_cycles=None, backend="pysim"):
    """Run ``frames`` (integer arrays of ``dut.spec.frame_shape``) through ``dut``.

    ``backend="pysim"`` uses the Amaranth simulator; ``"fast"`` a compiled model of the same
    design (:mod:`convhw.fastsim`), with the same stall patterns and cycle counts.
    """
    if backend == "pysim":
        run = pysim
    elif backend == "fast":
        from .fastsim import simulate as run
    else:
        raise ValueError(f"'backend' must be one of {', '.join(BACKENDS)}, not {backend!r}")
    return run(dut, frames, coefficients=coefficients, in_stall=in_stall, out_stall=out_stall,
               seed=seed, vcd=vcd, max_cycles=max_cycles)


def budget(spec, frames, in_stall, out_stall):
    """A generous cycle limit: past it, a run is declared hung."""
    per_frame = spec.positions_per_frame + spec.latency + spec.taps + 16
    rate = (1 - in_stall) * (1 - out_stall)
    return int(4 * len(frames) * per_frame / max(rate, 0.01)) + 1000


def pysim(dut, frames, *, coefficients=None, in_stall=0.0, out_stall=0.0, seed=0, vcd=None,
          max_cycles=None):
    spec = dut.spec
    _check_probability("in_stall", in_stall)
    _check_probability("out_stall", out_stall)
    frames, kernels = stimulus(spec, frames, coefficients)
    out_size = int(np.prod(spec.out_shape))
    expected = len(frames) * out_size
    limit = max_cycles or budget(spec, frames, in_stall, out_stall)
    stall_in = StallPattern(seed, INPUT, in_stall)
    stall_out = StallPattern(seed, OUTPUT, out_stall)
    state = {"first_in": None}
    outputs, markers, errors = [], [], []

    async def producer(ctx):
        cycle = 0
        for frame, kernel in zip(frames, kernels):
            if kernel is not None:
                ctx.set(dut.i.valid, 0)
                for addr, value in enumerate(kernel.flat):
                    ctx.set(dut.coef.addr, addr)
                    ctx.set(dut.coef.data, int(value))
                    ctx.set(dut.coef.we, 1)
                    await ctx.tick()
                    cycle += 1
                ctx.set(dut.coef.we, 0)
            rows = frame.reshape(-1, frame.shape[-1])  # a 1-D sequence is one row
            height, width = rows.shape
            values = rows.tolist()
            for y in range(height):
                for x in range(width):
                    if stall_in(cycle):
                        ctx.set(dut.i.valid, 0)
                        while stall_in(cycle):
                            await ctx.tick()
                            cycle += 1
                    ctx.set(dut.i.payload, {"data": values[y][x], "first": x == 0 and y == 0,
                                            "last": x == width - 1})
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
        while len(outputs) < expected:
            want = not stall_out(cycle)
            if want != ready:
                valid_before = ctx.get(dut.o.valid)
                ctx.set(dut.o.ready, want)
                if ready is not None and ctx.get(dut.o.valid) != valid_before:
                    errors.append(f"cycle {cycle}: output valid changed with ready")
                ready = want
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            cycle += 1
            if waiting is not None and (not valid or payload.as_value().value != waiting):
                errors.append(f"cycle {cycle - 1}: output valid or payload changed before "
                              f"the transfer")
            waiting = payload.as_value().value if valid and not ready else None
            if valid and ready:
                outputs.append(payload.data)
                markers.append((payload.first, payload.last))
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

    result_frames = [np.array(outputs[k * out_size:(k + 1) * out_size],
                              dtype=object if spec.out_bits > 62 else np.int64)
                     .reshape(spec.out_shape) for k in range(len(frames))]
    errors += marker_errors(markers, spec.out_shape)
    return SimResult(frames=result_frames, cycles=state["last_out"] - state["first_in"],
                     total_cycles=state["last_out"] + 1, errors=errors)


def marker_errors(markers, out_shape):
    """Check ``(first, last)`` of each output against row-major frames of ``out_shape``."""
    out_h, out_w = (1, *out_shape) if len(out_shape) == 1 else out_shape
    errors = []
    for index, (first, last) in enumerate(markers):
        x = index % out_w
        y = (index // out_w) % out_h
        if bool(first) != (x == 0 and y == 0) or bool(last) != (x == out_w - 1):
            errors.append(f"output {index}: first={int(first)} last={int(last)} at "
                          f"({y}, {x}) of a {out_h}x{out_w} frame")
            if len(errors) > 10:
                break
    return errors


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
