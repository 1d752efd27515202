"""Hypothesis-drawn valid 2-D specs, frames, kernels and stalls: Conv2d must match the golden
model bit for bit, with a clean stream protocol, and take exactly the spec's cycles when nothing
stalls."""

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from convhw import ConvSpec
from test_conv2d import check_run

STALLS = st.sampled_from([0.0, 0.3, 0.9])
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def specs(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dy, dx = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    sy, sx = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    span_y, span_x = dy * (kh - 1) + 1, dx * (kw - 1) + 1
    coeff_bits = draw(st.integers(1, 10))
    kwargs = dict(stride=(sy, sx), dilation=(dy, dx), in_bits=draw(st.integers(1, 16)),
                  in_signed=draw(st.booleans()), coeff_bits=coeff_bits, flip=draw(st.booleans()))
    if draw(st.booleans()):
        limit = 1 << (coeff_bits - 1)
        coeff = st.one_of(st.sampled_from([-limit, limit - 1, 0]), st.integers(-limit, limit - 1))
        kwargs["kernel"] = draw(st.lists(st.lists(coeff, min_size=kw, max_size=kw),
                                         min_size=kh, max_size=kh))
    else:
        kwargs["kernel_shape"] = (kh, kw)
        kwargs["max_dsps"] = draw(st.sampled_from([None, 0, 1, (kh * kw) // 2]))
    if draw(st.booleans()):
        kwargs["shift"] = draw(st.integers(0, 8))
    if draw(st.booleans()):
        kwargs["out_bits"] = draw(st.integers(2, 20))
    pad_y, pad_x = st.integers(0, span_y - 1), st.integers(0, span_x - 1)
    options = [st.tuples(pad_y, pad_x), st.integers(0, min(span_y, span_x) - 1)]
    if (sy, sx) == (1, 1):
        options.append(st.just("same"))
    kwargs["padding"] = draw(st.one_of(*options))
    probe = ConvSpec(width=span_x, height=span_y, **kwargs)  # always big enough
    (top, bottom), (left, right) = probe.padding
    # From the smallest frame the kernel allows to a few pixels more, kept small for pysim.
    width = max(1, span_x - left - right) + draw(st.integers(0, 6))
    height = max(1, span_y - top - bottom) + draw(st.integers(0, 5))
    return probe.replace(width=width, height=height)


def draw_array(draw, lo, hi, shape):
    # The corners are where exactness breaks first: mix them in with anything in range.
    value = st.one_of(st.sampled_from([lo, hi, 0]), st.integers(lo, hi))
    flat = draw(st.lists(value, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return np.array(flat, dtype=np.int64).reshape(shape)


@SETTINGS
@given(data=st.data(), spec=specs(), in_stall=STALLS, out_stall=STALLS)
def test_random_specs(data, spec, in_stall, out_stall):
    count = data.draw(st.integers(1, 3), label="frames")
    frames = [draw_array(data.draw, *spec.pixel_range, spec.frame_shape) for _ in range(count)]
    kernels = None
    if spec.runtime_coeffs:
        limit = 1 << (spec.coeff_bits - 1)
        kernels = [draw_array(data.draw, -limit, limit - 1, spec.kernel_shape)
                   for _ in range(count)]
    seed = data.draw(st.integers(0, 1000), label="seed")
    result = check_run(spec, frames, kernels, in_stall=in_stall, out_stall=out_stall, seed=seed)
    if in_stall == out_stall == 0 and (kernels is None or count == 1):
        # (Runtime kernels written between frames hold the input back for KH*KW cycles.)
        assert result.cycles == (count - 1) * spec.positions_per_frame + spec.cycles_per_frame
