"""N pixels per clock (``pixels_per_clock``): wide beats, bit-exact with the golden model.

Every border mode, odd heights, non-square and dilated kernels, runtime coefficients, layers,
random stalls on both streams and frames back to back; the cycles of a frame without stalls equal
``spec.cycles_per_frame``; the line buffer keeps the bits of one pixel per clock; bad widths and
strides are refused with one line. Big frames run on the compiled backend.
"""

import json
import re

import numpy as np
import pytest
from amaranth.hdl import Shape

from convhw import ConvSpec
from convhw.cli import main
from convhw.gateware import Conv2d
from convhw.gateware import conv2d as conv2d_module
from convhw.golden import run_spec
from convhw.harness import simulate
from convhw.stimulus import pack_beats, result_frames, unpack_beats
from streaming import run_stream

BORDERS = ("constant", "replicate", "reflect", "reflect-101")
SHARPEN = [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]


def random_frames(spec, count, seed):
    lo, hi = spec.pixel_range
    rng = np.random.default_rng(seed)
    return [rng.integers(lo, hi, spec.input_shape, endpoint=True) for _ in range(count)]


def check(spec, frames, kernels=None, *, stall=0.3, seed=0, backend="pysim"):
    result = simulate(Conv2d(spec), frames, coefficients=kernels, in_stall=stall,
                      out_stall=stall, seed=seed, backend=backend)
    assert result.errors == []
    for index, frame in enumerate(frames):
        kernel = None if kernels is None else kernels[index]
        np.testing.assert_array_equal(result.frames[index], run_spec(spec, frame, kernel),
                                      err_msg=f"frame {index}")
    return result


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("lanes", [2, 4, 8])
def test_borders_random_stalls(lanes, border):
    """3x3 "same" on an odd height, two frames back to back, stalls on both streams."""
    spec = ConvSpec(width=max(12 // lanes, 2) * lanes, height=5, kernel=SHARPEN,
                    padding="same", border=border, pixels_per_clock=lanes)
    check(spec, random_frames(spec, 2, lanes), seed=lanes)


@pytest.mark.parametrize("border", BORDERS)
def test_non_square_dilated_padding(border):
    """A 2x3 kernel dilated (2, 2), padding (1, 2): each lane's border taps differ."""
    kernel = [[3, -1, 2], [-2, 5, 1]]
    spec = ConvSpec(width=16, height=7, kernel=kernel, dilation=2, padding=(1, 2),
                    border=border, pixels_per_clock=4)
    check(spec, random_frames(spec, 2, 11), seed=3)


def test_even_kernel_same_and_constant_value():
    spec = ConvSpec(width=12, height=7, kernel=[[1, 2, 3, 4], [5, 6, 7, 8]], padding="same",
                    border="constant", border_value=200, pixels_per_clock=2)
    check(spec, random_frames(spec, 2, 12), seed=4)


@pytest.mark.parametrize("lanes", [2, 4, 8])
def test_partial_last_beat(lanes):
    """"valid" padding: the output width 14 is not a multiple of N; the last beat of a row
    carries the remaining outputs (its other lanes hold 0, dropped by the harness)."""
    spec = ConvSpec(width=16, height=6, kernel=SHARPEN, pixels_per_clock=lanes)
    assert spec.out_shape == (4, 14) and spec.out_beats == -(-14 // lanes)
    check(spec, random_frames(spec, 2, 13), seed=5)


def test_runtime_coefficients_change_between_frames():
    """Runtime coefficients, one kernel per frame, signed pixels, flip, some taps in logic."""
    spec = ConvSpec(width=8, height=7, kernel_shape=(3, 3), coeff_bits=5, padding="same",
                    border="reflect-101", in_signed=True, flip=True, max_dsps=10,
                    pixels_per_clock=2)
    assert spec.dsp_taps == 5   # per lane: 10 DSPs for the core
    rng = np.random.default_rng(14)
    kernels = [rng.integers(-16, 16, size=(3, 3)) for _ in range(3)]
    check(spec, random_frames(spec, 3, 14), kernels, seed=6)


def test_layer_channels_requantized():
    """Multi-channel pixels: every lane carries all channels of its pixel."""
    rng = np.random.default_rng(15)
    weights = rng.integers(-4, 5, size=(3, 2, 3, 3))
    spec = ConvSpec(width=8, height=5, weights=weights, bias=[5, -7, 3], relu=True, shift=2,
                    out_bits=6, padding=1, border="replicate", pixels_per_clock=4)
    check(spec, random_frames(spec, 2, 15), seed=7)


@pytest.mark.parametrize("lanes", [2, 4, 8])
def test_cycles_without_stalls(lanes):
    """The beat schedule's prediction: N pixels every clock, borders included; the bottom
    padding row takes a row of beats without input, as at one pixel per clock."""
    spec = ConvSpec(width=32, height=6, kernel_shape=(3, 3), padding="same",
                    border="reflect-101", pixels_per_clock=lanes)
    result = check(spec, random_frames(spec, 1, 16), [np.arange(9).reshape(3, 3) - 4],
                   stall=0)
    beats = 32 // lanes
    assert spec.latency == spec.replace(pixels_per_clock=1).latency
    assert spec.beats_per_frame == (6 + 1) * beats + 1
    assert spec.cycles_per_frame == (6 + 1) * beats + spec.latency
    assert result.cycles == spec.cycles_per_frame


@pytest.mark.parametrize("lanes", [2, 4])
def test_back_to_back_cycles(lanes):
    spec = ConvSpec(width=16, height=5, kernel=SHARPEN, padding="same", pixels_per_clock=lanes)
    result = check(spec, random_frames(spec, 3, 17), stall=0)
    assert result.cycles == 2 * spec.beats_per_frame + spec.cycles_per_frame


def test_line_buffer_same_bits(monkeypatch, unelaborated_ok):
    """N pixels wide, W/N deep: the bits of one pixel per clock."""
    seen = []
    original = conv2d_module.LineBuffer

    def spy(**kwargs):
        seen.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(conv2d_module, "LineBuffer", spy)
    for lanes in (1, 4):
        spec = ConvSpec(width=64, height=4, kernel=SHARPEN, padding="same",
                        pixels_per_clock=lanes)
        Conv2d(spec).elaborate(None)
    bits = [args["rows"] * Shape.cast(args["shape"]).width * args["width"] for args in seen]
    assert bits == [2 * 64 * 8] * 2
    assert [args["width"] for args in seen] == [64, 16]


@pytest.mark.parametrize("value, message", [
    (3, r"^'pixels_per_clock' must be one of 1, 2, 4, 8, not 3$"),
    (16, r"^'pixels_per_clock' must be one of 1, 2, 4, 8, not 16$"),
    ("4", r"^'pixels_per_clock' must be one of 1, 2, 4, 8, not '4'$"),
])
def test_bad_value(value, message):
    with pytest.raises(ValueError, match=message):
        ConvSpec(width=16, height=4, kernel=SHARPEN, pixels_per_clock=value)


def test_width_not_multiple_refused():
    with pytest.raises(ValueError, match=re.escape(
            "'width' 1918 must be a multiple of 'pixels_per_clock' 4 (a beat carries 4 pixels "
            "of one row; widths are never truncated)")):
        ConvSpec(width=1918, height=4, kernel=SHARPEN, pixels_per_clock=4)


def test_stride_refused():
    with pytest.raises(ValueError, match=re.escape(
            "'pixels_per_clock' 2 needs 'stride' 1, not 2 (only 1 pixel per clock allows a "
            "larger stride)")):
        ConvSpec(width=16, height=4, kernel=SHARPEN, stride=2, pixels_per_clock=2)
    with pytest.raises(ValueError, match=re.escape("needs 'stride' 1, not (1, 2)")):
        ConvSpec(width=16, height=4, kernel=SHARPEN, stride=(1, 2), pixels_per_clock=2)


def test_folded_refused():
    with pytest.raises(ValueError, match=re.escape(
            "'pixels_per_clock' 2 needs an unfolded layer ('pe' 4 and 'simd' 18), not 'pe' 1 "
            "and 'simd' 18")):
        ConvSpec(width=16, height=4, kernel_shape=(3, 3), in_channels=2, out_channels=4,
                 pe=1, pixels_per_clock=2)


def test_cli_info_and_refusal(capsys):
    assert main(["info", "--json", "--width", "64", "--height", "8", "--kernel", "gaussian3",
                 "--padding", "same", "--pixels-per-clock", "4"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["pixels_per_clock"] == 4
    assert facts["cycles_per_frame"] == ConvSpec(
        width=64, height=8, kernel=[[1, 2, 1], [2, 4, 2], [1, 2, 1]], padding="same",
        pixels_per_clock=4).cycles_per_frame
    assert main(["info", "--width", "30", "--height", "8", "--kernel", "gaussian3",
                 "--pixels-per-clock", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'width' 30 must be a multiple of 'pixels_per_clock' 4" in err
    assert main(["info", "--dims", "1", "--length", "16", "--kernel", "1,2,1",
                 "--pixels-per-clock", "2"]) == 2
    assert "--pixels-per-clock: a 1-D core takes 1 sample per clock, not 2" in \
        capsys.readouterr().err
    assert main(["prove", "--width", "8", "--height", "4", "--kernel", "gaussian3",
                 "--pixels-per-clock", "2"]) == 2
    assert "--pixels-per-clock: prove checks cores of 1 pixel per clock, not 2" in \
        capsys.readouterr().err


def test_cli_simulate_png(tmp_path, capsys):
    from PIL import Image
    from convhw.images import demo_image
    pixels = demo_image(32, 9).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    status = main(["simulate", "--input", str(tmp_path / "in.png"), "--kernel", "gaussian3",
                   "--shift", "4", "--padding", "same", "--border", "reflect-101",
                   "--pixels-per-clock", "4", "--stall", "0.2", "--frames", "2", "--json",
                   "--output", str(tmp_path / "out.png")])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["match"] is True
    assert np.array(Image.open(tmp_path / "out.png")).shape == (9, 32)


def test_cli_generate_wide_ports(tmp_path, capsys):
    path = tmp_path / "core.v"
    assert main(["generate", "-o", str(path), "--width", "32", "--height", "8",
                 "--runtime-coeffs", "--kernel-size", "3x3", "--padding", "same",
                 "--pixels-per-clock", "8"]) == 0
    text = path.read_text()
    assert re.search(r"input \[63:0\] s_axis_tdata;", text)
    out_bits = ConvSpec(width=32, height=8, kernel_shape=(3, 3)).out_bits
    assert re.search(rf"output \[{8 * out_bits - 1}:0\] m_axis_tdata;", text)
    assert '"pixels_per_clock": 8' in text


@pytest.mark.parametrize("border", ["constant", "reflect-101"])
def test_early_first_cuts_frame(border):
    """A ``first`` on a beat mid-frame ends that frame: its missing pixels count as zeros, all
    its outputs come out, and the next frames are whole (frames are counted by beat)."""
    spec = ConvSpec(width=8, height=5, kernel=SHARPEN, padding="same", border=border,
                    pixels_per_clock=2)
    frames = random_frames(spec, 3, 19)
    cut = frames[0].copy()
    cut.flat[24:] = 0                  # 12 of its 20 beats are sent
    beats = pack_beats(spec, frames[0])[:12] + pack_beats(spec, frames[1]) + \
        pack_beats(spec, frames[2])
    values, markers, _, _, errors = run_stream(Conv2d(spec), beats, 3 * 5 * 4,
                                               firsts=(0, 12, 32), in_stall=0.2,
                                               out_stall=0.2, seed=3)
    assert errors == []
    got = result_frames(spec, unpack_beats(values, spec.out_bits, 2), 3)
    for result, frame in zip(got, [cut, frames[1], frames[2]]):
        np.testing.assert_array_equal(result, run_spec(spec, frame))
    assert markers == [(int(i % 20 == 0), int(i % 4 == 3)) for i in range(60)]


fastsim = pytest.importorskip("convhw.fastsim")
needs_engine = pytest.mark.skipif(not fastsim.available(), reason="Verilator is not installed")


@needs_engine
def test_fast_backend_same_as_pysim():
    spec = ConvSpec(width=24, height=7, kernel_shape=(3, 3), padding="same",
                    border="reflect", pixels_per_clock=4)
    rng = np.random.default_rng(18)
    kernels = [rng.integers(-128, 128, size=(3, 3)) for _ in range(2)]
    frames = random_frames(spec, 2, 18)
    dut = Conv2d(spec)
    slow = simulate(dut, frames, coefficients=kernels, in_stall=0.3, out_stall=0.4, seed=2)
    fast = simulate(dut, frames, coefficients=kernels, in_stall=0.3, out_stall=0.4, seed=2,
                    backend="fast")
    assert fast.engine == "verilator" and fast.errors == slow.errors == []
    assert (fast.cycles, fast.total_cycles) == (slow.cycles, slow.total_cycles)
    for got, want in zip(fast.frames, slow.frames):
        np.testing.assert_array_equal(got, want)


@needs_engine
@pytest.mark.parametrize("lanes, border", [(8, "reflect-101"), (2, "replicate")])
def test_fast_backend_big_frame(lanes, border):
    """A 640x48 frame (the pysim would take minutes) with stalls, and one without: cycles."""
    spec = ConvSpec(width=640, height=48, kernel=[[1, 2, 1], [2, 4, 2], [1, 2, 1]],
                    padding="same", border=border, pixels_per_clock=lanes)
    frames = random_frames(spec, 2, lanes)
    check(spec, frames, stall=0.2, backend="fast")
    result = check(spec, frames[:1], stall=0, backend="fast")
    assert result.cycles == spec.cycles_per_frame
    assert spec.cycles_per_frame < 640 * 48 // lanes + 640 // lanes + 2 + spec.latency
