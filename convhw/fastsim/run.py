"""Run frames through a compiled model and read back a :class:`~convhw.harness.SimResult`.

The stimulus goes to the model as one binary file and the outputs come back as another (layouts
in ``driver.cpp``), so no Python code runs per pixel.
"""

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..stalls import INPUT, OUTPUT, StallPattern
from ..stimulus import (SimResult, beat_shape, budget, check_probability, coefficient_writes,
                        lanes, pack_beats, result_frames, stimulus)
from .model import build, in_words

__all__ = ["simulate", "marker_errors"]

_JOB_MAGIC = 0x314D495348564E43
_HEADER_WORDS = 16
#: The stream-protocol errors of :func:`convhw.harness.pysim`, by the driver's ``ErrorKind``.
_ERRORS = ("cycle {cycle}: output valid changed with ready",
           "cycle {cycle}: output valid or payload changed before the transfer")


def _masked(values, bits):
    """Two's-complement bit patterns of integers that fit ``bits`` (at most 32), as uint32."""
    return (np.asarray(values).astype(np.int64) & ((1 << bits) - 1)).astype("<u4")


def _words(beats, words):
    """Beats (Python integers) as ``(n, words)`` little-endian uint32 rows."""
    if words == 1:
        return np.array(beats, dtype=np.uint64).astype("<u4").reshape(-1, 1)
    return np.array([[(beat >> (32 * w)) & 0xFFFFFFFF for w in range(words)] for beat in beats],
                    dtype="<u4")


def _job(spec, frames, kernels, in_stall, out_stall, seed, limit):
    words = in_words(spec)
    beats = [_words(pack_beats(spec, frame), words) for frame in frames]
    writes = [] if kernels[0] is None else [coefficient_writes(spec, k) for k in kernels]
    taps = len(writes[0]) if writes else 0
    mask = (1 << spec.coeff_bits) - 1
    coefs = [np.array([(addr, value & mask) for addr, value in w], dtype="<u4").ravel()
             for w in writes]
    stall_in = StallPattern(seed, INPUT, in_stall)
    stall_out = StallPattern(seed, OUTPUT, out_stall)
    header = np.zeros(_HEADER_WORDS, dtype="<u8")
    header[:11] = [_JOB_MAGIC, len(frames), len(beats[0]), spec.frame_shape[-1] // lanes(spec),
                   int(np.prod(beat_shape(spec))), taps, stall_in.key, stall_in.threshold,
                   stall_out.key, stall_out.threshold, limit]
    return b"".join([header.tobytes(), *(b.tobytes() for b in beats),
                     *(c.tobytes() for c in coefs)])


def _values(words, out_bits):
    """Signed integers from ``(n, words)`` uint32 rows, least significant word first."""
    if out_bits <= 62:
        raw = words[:, 0].astype(np.int64)
        if words.shape[1] > 1:
            raw |= words[:, 1].astype(np.int64) << 32
        raw &= (1 << out_bits) - 1
        sign = 1 << (out_bits - 1)
        return (raw ^ sign) - sign
    sign, mask = 1 << (out_bits - 1), (1 << out_bits) - 1
    values = []
    for row in words.tolist():
        value = sum(word << (32 * i) for i, word in enumerate(row)) & mask
        values.append((value ^ sign) - sign)
    return np.array(values, dtype=object)


def _channel_values(words, bits, channels):
    """``(n, channels)`` signed values from ``(n, words)`` rows of side-by-side channels."""
    if channels == 1:
        return _values(words, bits).reshape(-1, 1)
    n = words.shape[0]
    raw = [sum(int(word) << (32 * i) for i, word in enumerate(row)) for row in words.tolist()]
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    values = [[(((value >> (bits * c)) & mask) ^ sign) - sign for c in range(channels)]
              for value in raw]
    return np.array(values, dtype=object if bits > 62 else np.int64).reshape(n, channels)


def marker_errors(markers, out_shape):
    """:func:`convhw.harness.marker_errors`, vectorized: ``markers`` is a uint8 array with
    ``first`` in bit 0 and ``last`` in bit 1."""
    out_h, out_w = (1, *out_shape) if len(out_shape) == 1 else out_shape
    index = np.arange(len(markers))
    x = index % out_w
    y = (index // out_w) % out_h
    first, last = markers & 1, (markers >> 1) & 1
    bad = np.flatnonzero((first != ((x == 0) & (y == 0))) | (last != (x == out_w - 1)))[:11]
    return [f"output {i}: first={first[i]} last={last[i]} at ({y[i]}, {x[i]}) of a "
            f"{out_h}x{out_w} frame" for i in bad.tolist()]


def simulate(dut, frames, *, coefficients=None, in_stall=0.0, out_stall=0.0, seed=0, vcd=None,
             max_cycles=None):
    """:func:`convhw.harness.pysim` on a Verilator model: same arguments, same result.

    Raises :class:`~convhw.fastsim.EngineMissing` when Verilator or a C++ compiler is missing.
    """
    if not hasattr(dut, "i"):   # a spec: its core
        from ..export import core_of
        dut = core_of(dut)
    spec = dut.spec
    if vcd is not None and not isinstance(vcd, (str, os.PathLike)):
        raise TypeError(f"'vcd' must be a file path for the fast backend, not {vcd!r}")
    check_probability("in_stall", in_stall)
    check_probability("out_stall", out_stall)
    frames, kernels = stimulus(spec, frames, coefficients)
    if not frames:
        raise ValueError("'frames' must hold at least one frame, not an empty sequence")
    limit = max_cycles or budget(spec, frames, in_stall, out_stall)
    model = build(dut, trace=vcd is not None)
    out_size = int(np.prod(beat_shape(spec)))

    with tempfile.TemporaryDirectory(prefix="convhw-fastsim-") as tmp:
        job, out = Path(tmp) / "job.bin", Path(tmp) / "out.bin"
        job.write_bytes(_job(spec, frames, kernels, in_stall, out_stall, seed, limit))
        command = [str(model.path), str(job), str(out)]
        if vcd is not None:
            command.append(str(Path(vcd).resolve()))
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"the compiled model {model.path} failed "
                               f"(exit {run.returncode}): {run.stderr.strip()}")
        raw = out.read_bytes()

    status, outputs, first_in, last_out, cycles, n_errors, n_words, _ = \
        np.frombuffer(raw, "<i8", 8).tolist()
    if status == 1:
        raise TimeoutError(f"no progress: {outputs} of {len(frames) * out_size} outputs after "
                           f"{cycles} cycles")
    offset = 64
    error_codes = np.frombuffer(raw, "<i8", n_errors, offset).tolist()
    offset += 8 * n_errors
    words = np.frombuffer(raw, "<u4", outputs * n_words, offset).reshape(outputs, n_words)
    offset += 4 * outputs * n_words
    markers = np.frombuffer(raw, np.uint8, outputs, offset)

    channels = getattr(spec, "out_channels", 1) * lanes(spec)
    values = _channel_values(words, spec.out_bits, channels)
    errors = [_ERRORS[code & 1].format(cycle=code >> 1) for code in error_codes]
    errors += marker_errors(markers, beat_shape(spec))
    return SimResult(frames=result_frames(spec, values, len(frames)), cycles=last_out - first_in,
                     total_cycles=last_out + 1, errors=errors, engine="verilator")
