"""Soak: 1,000 back-to-back frames per core through the compiled backend, with random stalls on
both streams, bit-exact against the golden model.

Generic over core kinds: every entry of :data:`SOAKS` is one line, a :class:`Soak` naming the
spec, the core factory and the frame maker. Adding a core kind (the multi-channel folded layer,
say) is one more entry; give ``golden`` when :func:`convhw.golden.run_spec` does not cover the
kind's spec.

Each distinct spec costs one Verilator build (seconds, cached across runs); the run itself takes
well under a second per core, most of it in Python making frames and checking them.
"""

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from convhw import Conv1d, Conv1dSpec, Conv2d, ConvSpec, fastsim
from convhw.fastsim import model as fastsim_model
from convhw.golden import run_spec
from convhw.harness import describe_mismatch, simulate
from convhw.stimulus import coefficient_shape, input_shape

FRAMES = 1000
#: (in_stall, out_stall): the producer pauses, the consumer pauses more (the output FIFO fills).
STALLS = (0.3, 0.45)


def random_frames(rng, spec, count):
    """``count`` frames (of ``input_shape(spec)``: ``(C, H, W)`` for a layer), uniform over the
    pixel range, with a few frames at the extremes (all-minimum, all-maximum, alternating), and
    per-frame kernels (a layer's weights) for a runtime-coefficient spec, ``None`` otherwise."""
    lo, hi = spec.pixel_range
    shape = input_shape(spec)
    frames = [rng.integers(lo, hi, shape, endpoint=True) for _ in range(count)]
    frames[1::97] = [np.full(shape, lo)] * len(frames[1::97])
    frames[2::97] = [np.full(shape, hi)] * len(frames[2::97])
    frames[3::97] = [rng.choice([lo, hi], shape) for _ in frames[3::97]]
    if not spec.runtime_coeffs:
        return frames, None
    c_lo, c_hi = -(1 << (spec.coeff_bits - 1)), (1 << (spec.coeff_bits - 1)) - 1
    shape = coefficient_shape(spec)
    kernels = [rng.integers(c_lo, c_hi, shape, endpoint=True) for _ in range(count)]
    kernels[4::89] = [rng.choice([c_lo, c_hi], shape) for _ in kernels[4::89]]
    return frames, kernels


@dataclass(frozen=True)
class Soak:
    """One core kind to soak: ``core(spec)`` builds it, ``frames(rng, spec, count)`` returns
    ``(frames, kernels or None)``, ``golden(spec, frame, kernel)`` the expected output."""
    spec: object
    core: Callable
    frames: Callable = random_frames
    golden: Callable = run_spec


SOAKS = {
    "conv2d runtime 3x3 stride 2 padding": Soak(ConvSpec(
        width=13, height=9, kernel_shape=(3, 3), stride=(2, 1), padding=(1, 2), in_bits=9,
        in_signed=True, coeff_bits=7, max_dsps=4), Conv2d),
    "conv2d constant 3x3 same requantized": Soak(ConvSpec(
        width=12, height=8, kernel=[[1, 2, 1], [2, 4, 2], [1, 2, 1]], padding="same", shift=4,
        out_bits=8), Conv2d),
    "conv2d constant 2x4 dilated": Soak(ConvSpec(
        width=11, height=7, kernel=[[3, -1, 0, 5], [-7, 2, 9, -4]], dilation=(2, 1), stride=(1, 3),
        padding=(2, 1), flip=True), Conv2d),
    "conv1d runtime 5 stride 2 padding": Soak(Conv1dSpec(
        length=37, kernel_size=5, stride=2, padding=(3, 1), in_bits=12, in_signed=True,
        coeff_bits=6, max_dsps=2), Conv1d),
    "conv1d constant same": Soak(Conv1dSpec(
        length=50, kernel=[1, 4, 6, 4, 1], padding="same", shift=4, out_bits=8), Conv1d),
    "layer runtime folded 3->4 pe 2 simd 3": Soak(ConvSpec(
        width=6, height=5, kernel_shape=(3, 3), in_channels=3, out_channels=4, padding="same",
        coeff_bits=6, relu=True, shift=3, out_bits=8, pe=2, simd=3), Conv2d),
    "layer constant 4->6 groups 2 bias": Soak(ConvSpec(
        width=7, height=5, weights=np.arange(-36, 36).reshape(6, 2, 3, 2) % 23 - 11, groups=2,
        bias=[5, -9, 100, -300, 0, 7], stride=(1, 2), padding=1), Conv2d),
}


@pytest.mark.slow
@pytest.mark.skipif(not fastsim.available(), reason=str(fastsim_model._missing()))
@pytest.mark.parametrize("name", SOAKS)
def test_soak(name):
    soak = SOAKS[name]
    spec = soak.spec
    rng = np.random.default_rng(sorted(SOAKS).index(name))
    frames, kernels = soak.frames(rng, spec, FRAMES)
    in_stall, out_stall = STALLS
    fastsim.build(soak.core(spec))              # the build is not part of the soak's time
    start = time.perf_counter()
    result = simulate(soak.core(spec), frames, coefficients=kernels, backend="fast",
                      in_stall=in_stall, out_stall=out_stall, seed=len(name))
    seconds = time.perf_counter() - start
    assert result.engine == "verilator"
    assert result.errors == []
    assert len(result.frames) == FRAMES
    for index, frame in enumerate(frames):
        expected = soak.golden(spec, frame, None if kernels is None else kernels[index])
        mismatch = describe_mismatch(result.frames[index], expected)
        assert mismatch is None, f"frame {index}: {mismatch}"
    # Back to back: the stalls, not gaps between frames, set the time. Every position costs at
    # least a cycle (a folded layer's output positions more), and at these stall rates no run
    # needs twice its unstalled time over the throughput the consumer allows.
    out_size = int(np.prod(spec.out_shape))
    per_frame = spec.positions_per_frame + (getattr(spec, "fold", 1) - 1) * out_size
    unstalled = (FRAMES - 1) * per_frame + spec.cycles_per_frame
    outputs = FRAMES * out_size
    assert FRAMES * spec.positions_per_frame <= result.cycles
    assert result.cycles <= 2 * max(unstalled / (1 - in_stall), outputs / (1 - out_stall))
    assert seconds < 20, f"{FRAMES} frames took {seconds:.1f} s"
