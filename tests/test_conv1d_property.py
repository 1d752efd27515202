"""Hypothesis-drawn 1-D specs, sequences and stalls: Conv1d must match the golden model."""

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from convhw.gateware.conv1d import Conv1d
from convhw.spec1d import Conv1dSpec
from test_conv1d import check_run, golden, run_stream

STALLS = st.sampled_from([0.0, 0.3, 0.9])
SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def specs(draw, bounded=True):
    size = draw(st.integers(1, 9))
    dilation = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    span = dilation * (size - 1) + 1
    in_bits = draw(st.integers(1, 16))
    coeff_bits = draw(st.integers(1, 10))
    limit = 1 << (coeff_bits - 1)
    kwargs = dict(stride=stride, dilation=dilation, in_bits=in_bits,
                  in_signed=draw(st.booleans()), coeff_bits=coeff_bits, flip=draw(st.booleans()))
    if draw(st.booleans()):
        kwargs["kernel"] = draw(st.lists(st.integers(-limit, limit - 1), min_size=size,
                                         max_size=size))
    else:
        kwargs["kernel_size"] = size
        kwargs["max_dsps"] = draw(st.sampled_from([None, 0, size // 2]))
    if draw(st.booleans()):
        kwargs["shift"] = draw(st.integers(0, 6))
    if draw(st.booleans()):
        kwargs["out_bits"] = draw(st.integers(2, 20))
    if not bounded:
        return Conv1dSpec(length=None, **kwargs)
    padding = draw(st.one_of(
        st.integers(0, span - 1),
        st.tuples(st.integers(0, span - 1), st.integers(0, span - 1)),
        st.just("same") if stride == 1 else st.just(0)))
    spec = Conv1dSpec(length=span, padding=padding, **kwargs)
    shortest = max(1, span - sum(spec.padding))
    return spec.replace(length=draw(st.integers(shortest, shortest + 8)))


def draw_values(draw, lo, hi, size):
    # Corners are where exactness breaks first: mix them in with anything in range.
    value = st.one_of(st.sampled_from([lo, hi, 0]), st.integers(lo, hi))
    return np.array(draw(st.lists(value, min_size=size, max_size=size)), dtype=np.int64)


def draw_kernels(draw, spec, count):
    if not spec.runtime_coeffs:
        return None
    limit = 1 << (spec.coeff_bits - 1)
    return [draw_values(draw, -limit, limit - 1, spec.kernel_size) for _ in range(count)]


@SETTINGS
@given(data=st.data(), spec=specs(), in_stall=STALLS, out_stall=STALLS)
def test_bounded_random(data, spec, in_stall, out_stall):
    count = data.draw(st.integers(1, 3))
    sequences = [draw_values(data.draw, *spec.pixel_range, spec.length) for _ in range(count)]
    kernels = draw_kernels(data.draw, spec, count)
    seed = data.draw(st.integers(0, 1000))
    result = check_run(spec, sequences, kernels, in_stall=in_stall, out_stall=out_stall,
                       seed=seed)
    if in_stall == out_stall == 0 and (kernels is None or count == 1):
        # (Runtime kernels written between sequences hold the input back for K cycles.)
        assert result.cycles == (count - 1) * spec.positions_per_frame + spec.cycles_per_frame


@SETTINGS
@given(data=st.data(), spec=specs(bounded=False), in_stall=STALLS, out_stall=STALLS)
def test_unbounded_random(data, spec, in_stall, out_stall):
    x = draw_values(data.draw, *spec.pixel_range, spec.span + data.draw(st.integers(0, 20)))
    kernels = draw_kernels(data.draw, spec, 1)
    seed = data.draw(st.integers(0, 1000))  # draw everything before building the core
    expected = list(golden(spec, x, None if kernels is None else kernels[0]))
    values, markers, _, _, errors = run_stream(
        Conv1d(spec), x, len(expected), kernels=None if kernels is None else {0: kernels[0]},
        in_stall=in_stall, out_stall=out_stall, seed=seed)
    assert errors == [] and values == expected
    assert markers == [(k == 0, False) for k in range(len(expected))]
