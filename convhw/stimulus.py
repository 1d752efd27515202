"""What a simulation run takes and gives, for every backend: validated frames and coefficients,
beats packed as the stream carries them, the cycle budget, and the :class:`SimResult`.

:mod:`convhw.harness` (the Amaranth simulator) and :mod:`convhw.fastsim` (compiled models) both
build on this module; neither imports the other's internals.

A beat carries one pixel with all its channels, channel 0 in the lowest bits; with N pixels per
clock it carries N consecutive pixels of a row, the leftmost in the lowest bits. A layer's frames
are ``(C, H, W)`` (``spec.input_shape``) and its results ``(Cout, OH, OW)``; other cores' are 2-D
(or 1-D for sequences).
"""

import numbers
from dataclasses import dataclass, field

import numpy as np

from .separable import fitting_factors

__all__ = ["SimResult", "check_probability", "stimulus", "coefficient_writes", "separable_writes",
           "budget", "input_shape", "output_shape", "lanes", "beat_shape", "pack_beats",
           "unpack_beats", "result_frames", "marker_errors"]


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


def check_probability(name, value):
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise ValueError(f"'{name}' must be a probability from 0 up to (not including) 1, "
                         f"not {value!r}")


def input_shape(spec):
    """Shape of one input frame (with the channel axis for a layer)."""
    return getattr(spec, "input_shape", spec.frame_shape)


def output_shape(spec):
    """Shape of one output frame (with the channel axis for a layer)."""
    return getattr(spec, "output_shape", spec.out_shape)


def coefficient_shape(spec):
    """Shape of the coefficients a runtime spec loads: its kernel, or a layer's weights."""
    if getattr(spec, "is_layer", False) or getattr(spec, "out_channels", 1) > 1:
        return (spec.out_channels, spec.group_in_channels, *spec.kernel_shape)
    return tuple(spec.kernel_shape)


def _integers(name, array):
    """``array`` if it holds integers (whole-valued floats become int64), else a TypeError."""
    if array.dtype.kind in "iu" or (array.dtype == object and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in array.flat)):
        return array
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        return array.astype(np.int64)
    raise TypeError(f"'{name}' must hold integers, not {array.dtype} values")


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
    shape = coefficient_shape(spec)
    lo, hi = -(1 << (spec.coeff_bits - 1)), (1 << (spec.coeff_bits - 1)) - 1
    for index, kernel in enumerate(coefficients):
        if kernel.shape != shape:
            what = "weights" if len(shape) == 4 else "kernel"
            raise ValueError(f"runtime {what} shape {kernel.shape} does not match the spec's "
                             f"{shape}" if len(shape) == 4 else
                             f"runtime kernel shape {kernel.shape} does not match "
                             f"'kernel_shape' {spec.kernel_shape}")
        kernel = coefficients[index] = _integers("coefficients", kernel)
        if getattr(spec, "separable", False):
            separable_writes(spec, kernel)   # raises when a kernel does not factor
        elif kernel.min() < lo or kernel.max() > hi:
            raise ValueError(f"runtime coefficients must lie in {lo}..{hi} for "
                             f"'coeff_bits'={spec.coeff_bits}")
    return coefficients


def _frames(spec, frames):
    frames = [np.asarray(f) for f in frames]
    shape = input_shape(spec)
    lo, hi = spec.pixel_range
    for index, frame in enumerate(frames):
        if frame.shape != shape:
            axes = "(channels, height, width)" if len(shape) == 3 else "(height, width)"
            raise ValueError(f"frame shape {frame.shape} does not match the spec's "
                             f"{axes} {shape}")
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


def separable_writes(spec, kernel):
    """The writes that load the two vectors of a runtime separable ``spec`` whose product is
    ``kernel`` (``(KH, KW)``, or ``(C, 1, KH, KW)`` depthwise); a ValueError naming the kernel
    when it does not factor into vectors that fit ``coeff_bits``."""
    kernel = np.asarray(kernel)
    kernels = kernel.reshape(-1, *kernel.shape[-2:])
    writes = []
    for co, k in enumerate(kernels):
        factors = fitting_factors(k.tolist(), spec.coeff_bits)
        if factors is None:
            raise ValueError(f"runtime kernel {k.tolist()} is not an outer product of two "
                             f"integer vectors of 'coeff_bits'={spec.coeff_bits}, which a "
                             f"separable core loads")
        for axis, vector in enumerate(factors):
            writes += [(spec.separable_address(co, axis, i), int(c)) for i, c in enumerate(vector)]
    return writes


def coefficient_writes(spec, kernel):
    """``[(addr, value), ...]``: the coefficient-port writes that load ``kernel`` (a separable
    core's: its two vectors)."""
    if getattr(spec, "separable", False):
        return separable_writes(spec, kernel)
    kernel = np.asarray(kernel)
    if kernel.ndim == 4:
        return [(spec.coefficient_address(*index), int(kernel[index]))
                for index in np.ndindex(kernel.shape)]
    return [(addr, int(value)) for addr, value in enumerate(kernel.flat)]


def budget(spec, frames, in_stall, out_stall):
    """A generous cycle limit: past it, a run is declared hung."""
    positions = getattr(spec, "beats_per_frame", spec.positions_per_frame)
    outputs = int(np.prod(spec.out_shape))
    fold = getattr(spec, "fold", 1)
    writes = getattr(spec, "coefficient_count", spec.taps)
    per_frame = positions + (fold - 1) * outputs + spec.latency + writes + 16
    rate = (1 - in_stall) * (1 - out_stall)
    return int(4 * len(frames) * per_frame / max(rate, 0.01)) + 1000


def lanes(spec):
    """Pixels per beat (``pixels_per_clock``; 1 for specs without it)."""
    return getattr(spec, "pixels_per_clock", 1)


def beat_shape(spec):
    """``(rows, beats per row)`` of an output frame's beats (``out_beats`` with N lanes)."""
    shape = tuple(spec.out_shape)
    if lanes(spec) == 1:
        return shape
    return (shape[0], spec.out_beats)


def pack_beats(spec, frame):
    """The beats of ``frame`` as Python integers: each pixel's channels side by side, and with
    N pixels per clock N consecutive pixels of a row side by side (the leftmost lowest)."""
    bits, mask = spec.in_bits, (1 << spec.in_bits) - 1
    if frame.ndim == 3:
        pixels = frame.reshape(frame.shape[0], -1).T  # (pixels, channels)
    else:
        pixels = frame.reshape(-1, 1)
    n = lanes(spec)
    if n > 1:   # (beats, lanes * channels): lane-major, channel 0 lowest within a lane
        pixels = pixels.reshape(-1, n * pixels.shape[1])
    if pixels.shape[1] == 1:
        return [int(v) & mask for v in pixels[:, 0].tolist()]
    return [sum((int(v) & mask) << (bits * c) for c, v in enumerate(row))
            for row in pixels.tolist()]


def unpack_beats(values, bits, channels):
    """Signed ``(n, channels)`` values from beats' data fields (Python integers)."""
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    rows = [[(((value >> (bits * c)) & mask) ^ sign) - sign for c in range(channels)]
            for value in values]
    return np.array(rows, dtype=object if bits > 62 else np.int64).reshape(len(values), channels)


def result_frames(spec, values, count):
    """``count`` output frames from ``(n, channels)`` output values in stream order (with N
    lanes, ``(beats, N * channels)`` values, and the unused lanes of partial beats dropped)."""
    n = lanes(spec)
    if n > 1:
        out_h, out_w = spec.out_shape
        beats = values.reshape(-1, spec.out_beats * n, values.shape[1] // n)
        values = beats[:, :out_w].reshape(-1, values.shape[1] // n)
    size = int(np.prod(spec.out_shape))
    shape = output_shape(spec)
    frames = []
    for k in range(count):
        block = values[k * size:(k + 1) * size]
        if len(shape) == 3:
            frames.append(block.T.reshape(shape).copy())
        else:
            frames.append(block[:, 0].reshape(shape).copy())
    return frames


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
