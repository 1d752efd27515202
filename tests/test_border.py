"""Border modes (issue 12, part 1): OpenCV's constant/replicate/reflect/reflect-101 borders.

The golden model against ``cv2.filter2D`` (stride 1, odd kernels) and against ``np.pad`` plus
scipy (stride, dilation, even kernels); the spec's validation and its unchanged defaults; every
core kind in simulation, bit-exact with random stalls and frames back to back, at the spec's
cycle count without stalls; and the command-line options.
"""

import json

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from scipy.signal import correlate2d

from convhw import Conv1d, Conv1dSpec, Conv2d, ConvSpec
from convhw.border import MODES, NUMPY_MODES, largest_padding
from convhw.cli import main
from convhw.export import to_verilog
from convhw.golden import conv1d, conv2d, conv_layer, run_spec
from convhw.harness import simulate
from convhw.kernels import parse_kernel
from test_conv2d_property import draw_array, specs

CV_BORDER = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE,
             "reflect": cv2.BORDER_REFLECT, "reflect-101": cv2.BORDER_REFLECT_101}
SOURCE_MODES = ("replicate", "reflect", "reflect-101")


def _limit(border, size, span):
    return largest_padding(border, size, span)[0]


# --- golden model against OpenCV ------------------------------------------------------------------

def _opencv(image, kernel, pads, border, value=0):
    """``cv2.filter2D`` (correlation, ``CV_64F``, exact for integer kernels under 50 taps) with
    OpenCV's own border: on the image itself when ``pads`` is "same", else on the image that
    ``cv2.copyMakeBorder`` padded, keeping the outputs whose taps lie inside it."""
    kh, kw = kernel.shape
    (top, bottom), (left, right) = pads
    kernel = kernel.astype(np.float64)
    if border != "constant" and pads == ((kh // 2,) * 2, (kw // 2,) * 2):
        result = cv2.filter2D(image.astype(np.float64), cv2.CV_64F, kernel,
                              borderType=CV_BORDER[border])
    else:
        padded = cv2.copyMakeBorder(image.astype(np.float64), top, bottom, left, right,
                                    CV_BORDER[border], value=float(value))
        result = cv2.filter2D(padded, cv2.CV_64F, kernel, borderType=cv2.BORDER_CONSTANT)
        result = result[kh // 2:padded.shape[0] - kh // 2, kw // 2:padded.shape[1] - kw // 2]
    return np.rint(result).astype(np.int64)


ODD_KERNELS = [(3, 3), (5, 5), (3, 5), (1, 7), (7, 3)]


@pytest.mark.parametrize("border", MODES)
@pytest.mark.parametrize("shape", ODD_KERNELS)
def test_golden_matches_opencv(border, shape):
    rng = np.random.default_rng([MODES.index(border), *shape])
    kernel = rng.integers(-9, 10, size=shape)
    kh, kw = shape
    for height, width in ((7, 9), (11, 5), (kh, kw)):
        image = rng.integers(0, 256, size=(height, width))
        value = 77 if border == "constant" else 0
        py_max = _limit(border, height, kh)
        px_max = _limit(border, width, kw)
        for py in range(py_max + 1):
            for px in range(px_max + 1):
                if height + 2 * py < kh or width + 2 * px < kw:
                    continue
                got = conv2d(image, kernel, padding=(py, px), border=border, border_value=value)
                expected = _opencv(image, kernel, ((py, py), (px, px)), border, value)
                np.testing.assert_array_equal(got, expected, err_msg=f"{border} {shape} "
                                              f"{width}x{height} padding {(py, px)}")


def test_opencv_default_border_is_reflect_101():
    rng = np.random.default_rng(5)
    image, kernel = rng.integers(0, 256, (9, 8)), rng.integers(-5, 6, (5, 5))
    expected = np.rint(cv2.filter2D(image.astype(np.float64), cv2.CV_64F,
                                    kernel.astype(np.float64))).astype(np.int64)
    np.testing.assert_array_equal(conv2d(image, kernel, padding="same", border="reflect-101"),
                                  expected)
    # ... which zero padding does not reproduce: the border test above can fail.
    assert (conv2d(image, kernel, padding="same") != expected).any()


# --- golden model against np.pad + scipy ----------------------------------------------------------

def _scipy(image, kernel, stride, pads, dilation, border, value=0):
    (dy, dx), (sy, sx) = dilation, stride
    kh, kw = kernel.shape
    dilated = np.zeros((dy * (kh - 1) + 1, dx * (kw - 1) + 1), dtype=np.int64)
    dilated[::dy, ::dx] = kernel
    if border == "constant":
        padded = np.pad(image, pads, mode="constant", constant_values=value)
    else:
        padded = np.pad(image, pads, mode=NUMPY_MODES[border])
    return correlate2d(padded, dilated, mode="valid")[::sy, ::sx]


GEOMETRIES = [
    dict(shape=(2, 2), stride=(1, 1), dilation=(1, 1)),
    dict(shape=(4, 2), stride=(2, 1), dilation=(1, 1)),
    dict(shape=(3, 3), stride=(2, 3), dilation=(2, 1)),
    dict(shape=(2, 3), stride=(1, 2), dilation=(3, 2)),
    dict(shape=(4, 4), stride=(3, 2), dilation=(1, 2)),
]


@pytest.mark.parametrize("border", MODES)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "x".join(map(str, g["shape"]))
                         + f"s{g['stride']}d{g['dilation']}")
def test_golden_matches_scipy(border, geometry):
    rng = np.random.default_rng([MODES.index(border), *geometry["shape"], *geometry["stride"]])
    kernel = rng.integers(-9, 10, size=geometry["shape"])
    (kh, kw), (dy, dx) = geometry["shape"], geometry["dilation"]
    spans = (dy * (kh - 1) + 1, dx * (kw - 1) + 1)
    value = -3 if border == "constant" else 0
    for height, width in ((9, 11), (7, 5)):
        image = rng.integers(-50, 50, size=(height, width))
        ly, lx = _limit(border, height, spans[0]), _limit(border, width, spans[1])
        for pads in (((ly, ly), (lx, lx)), ((0, ly), (lx, 0)), ((ly // 2, ly), (lx, lx // 2))):
            if height + sum(pads[0]) < spans[0] or width + sum(pads[1]) < spans[1]:
                continue
            got = conv2d(image, kernel, stride=geometry["stride"], padding=pads,
                         dilation=geometry["dilation"], border=border, border_value=value)
            expected = _scipy(image, kernel, geometry["stride"], pads, geometry["dilation"],
                              border, value)
            np.testing.assert_array_equal(got, expected, err_msg=f"{border} {pads}")


@pytest.mark.parametrize("border", MODES)
def test_golden_1d_and_layer(border):
    rng = np.random.default_rng(7)
    x = rng.integers(-9, 10, size=12)
    kernel = rng.integers(-9, 10, size=5)
    value = 4 if border == "constant" else 0
    padded = (np.pad(x, (2, 1), mode=NUMPY_MODES[border]) if border != "constant"
              else np.pad(x, (2, 1), constant_values=value))
    np.testing.assert_array_equal(
        conv1d(x, kernel, padding=(2, 1), border=border, border_value=value),
        np.correlate(padded, kernel, mode="valid"))
    # A layer pads every channel alike: the sum of its channels' 2-D correlations.
    image = rng.integers(0, 256, size=(3, 7, 6))
    weights = rng.integers(-9, 10, size=(2, 3, 3, 3))
    got = conv_layer(image, weights, padding=1, border=border, border_value=value)
    for co in range(2):
        expected = sum(conv2d(image[ci], weights[co, ci], padding=1, border=border,
                              border_value=value) for ci in range(3))
        np.testing.assert_array_equal(got[co], expected)


def test_golden_exact_beyond_int64():
    image = np.full((4, 5), 2**40, dtype=object)
    kernel = np.full((3, 3), 2**30, dtype=object)
    for border in MODES:
        got = conv2d(image, kernel, padding=1, border=border,
                     border_value=2**40 if border == "constant" else 0)
        assert got.dtype == object and (got == 9 * 2**70).all()


# --- spec -----------------------------------------------------------------------------------------

SOBEL = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]


def test_spec_defaults_unchanged():
    plain = ConvSpec(width=16, height=12, kernel=SOBEL, padding="same")
    assert (plain.border, plain.border_value) == ("constant", 0)
    assert "border" not in plain.to_dict() and "border" not in repr(plain)
    assert plain == ConvSpec(width=16, height=12, kernel=SOBEL, padding="same",
                             border="constant", border_value=0)
    verilog = to_verilog(plain)
    assert "border" not in verilog and "select" not in verilog
    for border in SOURCE_MODES:
        spec = plain.replace(border=border)
        assert spec != plain and spec.to_dict()["border"] == border
        assert (spec.latency, spec.cycles_per_frame, spec.acc_range, spec.out_shape) == \
            (plain.latency, plain.cycles_per_frame, plain.acc_range, plain.out_shape)
    valued = plain.replace(border_value=200)
    assert valued.acc_range == plain.acc_range and valued.to_dict()["border_value"] == 200
    assert "border_value=200" in repr(valued)
    one = Conv1dSpec(length=10, kernel=[1, 2, 1], padding="same")
    assert (one.border, one.border_value) == ("constant", 0) and "border" not in repr(one)
    assert "border='reflect'" in repr(one.replace(border="reflect"))
    assert one.replace(border="reflect").to_dict()["border"] == "reflect"


@pytest.mark.parametrize("args, message", [
    (dict(border="wrap"), r"^'border' must be one of 'constant', 'replicate', 'reflect', "
                          r"'reflect-101', not 'wrap'$"),
    (dict(border_value=256), r"^'border_value' 256 must be a pixel value, 0\.\.255 "
                             r"\('in_bits' and 'in_signed'\)$"),
    (dict(border_value=-1), r"^'border_value' -1 must be a pixel value, 0\.\.255"),
    (dict(border_value=8, in_bits=4, in_signed=True), r"^'border_value' 8 must be a pixel "
                                                      r"value, -8\.\.7"),
    (dict(border="reflect", border_value=3), r"^'border_value' 3 is for 'border' 'constant', "
                                             r"not 'reflect'$"),
    (dict(padding=2, border="reflect"), r"^'border' 'reflect' allows 'padding' at most 1 on "
                                        r"the top \(the pixels it repeats must lie within the "
                                        r"effective kernel size 3, which the core holds\), "
                                        r"not 2$"),
    (dict(padding=(0, 2), border="reflect-101"), r"^'border' 'reflect-101' allows 'padding' "
                                                 r"at most 1 on the left "),
    (dict(kernel=[[1] * 4] * 4, padding="same", border="reflect-101"),
     r"^'border' 'reflect-101' allows 'padding' at most 1 on the bottom .* not 2$"),
    (dict(width=2, kernel=[[1] * 5] * 5, padding=2, border="reflect-101"),
     r"^'border' 'reflect-101' allows 'padding' at most 1 on the left \(a single reflection "
     r"must stay inside the frame width of 2\), not 2$"),
    (dict(height=1, kernel=[[1] * 3] * 3, padding=1, border="reflect-101"),
     r"^'border' 'reflect-101' allows 'padding' at most 0 on the top \(a single reflection "
     r"must stay inside the frame height of 1\), not 1$"),
])
def test_spec_errors(args, message):
    base = dict(width=8, height=6, kernel=SOBEL)
    with pytest.raises(ValueError, match=message):
        ConvSpec(**{**base, **args})


def test_spec_error_types():
    with pytest.raises(TypeError, match=r"^'border' must be one of .*, not 3$"):
        ConvSpec(width=8, height=6, kernel=SOBEL, border=3)
    with pytest.raises(TypeError, match=r"^'border_value' must be an integer, not 1\.5$"):
        ConvSpec(width=8, height=6, kernel=SOBEL, border_value=1.5)


def test_spec_limits_are_exact():
    """The largest padding of each mode is accepted, one more refused, on both axes."""
    for border in SOURCE_MODES:
        for k in (2, 3, 4, 5):
            span = k
            for size in (1, 2, 3, 9):
                limit = _limit(border, size, span)
                expected = {"replicate": span - 1, "reflect": min(size, span // 2),
                            "reflect-101": min(size - 1, (span - 1) // 2)}[border]
                assert limit == expected
                kernel = [[1] * k]
                if limit >= 0 and size + 2 * limit >= span:
                    ConvSpec(width=size, height=3, kernel=kernel, padding=(0, limit),
                             border=border)
                    Conv1dSpec(length=size, kernel=kernel[0], padding=limit, border=border)
                if limit + 1 < span and size + 2 * (limit + 1) >= span:
                    with pytest.raises(ValueError, match=r"^'border' .* on the left"):
                        ConvSpec(width=size, height=3, kernel=kernel, padding=(0, limit + 1),
                                 border=border)
                    with pytest.raises(ValueError, match=r"^'border' .* on the left"):
                        Conv1dSpec(length=size, kernel=kernel[0], padding=limit + 1,
                                   border=border)


def test_spec_1d_errors():
    with pytest.raises(ValueError, match=r"^'border' 'reflect-101' allows 'padding' at most 1 "
                                         r"on the right \(.*\), not 2$"):
        Conv1dSpec(length=9, kernel=[1, 2, 3, 4], padding="same", border="reflect-101")
    with pytest.raises(ValueError, match=r"inside the sequence length of 1\), not 1$"):
        Conv1dSpec(length=1, kernel=[1, 2, 3], padding=1, border="reflect-101")
    with pytest.raises(ValueError, match=r"^'border_value' 128 must be a pixel value, "
                                         r"-128\.\.127"):
        Conv1dSpec(length=9, kernel=[1, 2, 3], in_signed=True, border_value=128)
    # An unbounded stream has no padding: any mode is accepted and changes nothing.
    fir = Conv1dSpec(length=None, kernel=[1, 2, 3], border="reflect-101")
    assert fir.border == "reflect-101" and fir.border_axis is None


# --- hardware -------------------------------------------------------------------------------------

def _frames(spec, count, seed):
    lo, hi = spec.pixel_range
    rng = np.random.default_rng(seed)
    return [rng.integers(lo, hi, size=spec.input_shape if hasattr(spec, "input_shape")
                         else spec.frame_shape, endpoint=True) for _ in range(count)]


def _check(core, spec, frames, kernels=None, seed=0):
    """Bit-exact with stalls on both sides and frames back to back; the border matters (the
    zero-padded result differs, so the check can fail); the spec's cycles without stalls."""
    result = simulate(core(spec), frames, coefficients=kernels, in_stall=0.3, out_stall=0.3,
                      seed=seed)
    assert result.errors == []
    zero = spec.replace(border="constant", border_value=0)
    differs = False
    for index, frame in enumerate(frames):
        kernel = None if kernels is None else kernels[index]
        expected = run_spec(spec, frame, kernel)
        np.testing.assert_array_equal(result.frames[index], expected,
                                      err_msg=f"frame {index} of {spec}")
        differs |= bool((expected != run_spec(zero, frame, kernel)).any())
    assert differs or spec.border == "constant" and spec.border_value == 0
    alone = simulate(core(spec), frames[:1], coefficients=kernels and kernels[:1])
    assert alone.cycles == spec.cycles_per_frame
    return result


BORDERS = [("replicate", 0), ("reflect", 0), ("reflect-101", 0), ("constant", 200)]


def _ids(case):
    return f"{case[0]}-{case[1]}" if case[1] else case[0]


CASES_2D = [
    dict(width=7, height=5, kernel=SOBEL, padding="same"),
    dict(width=9, height=7, kernel=[[1, 2, 3, 4, 5], [-1, 0, 2, -3, 1], [3, 1, 0, 1, 3]],
         padding=(1, 2), stride=(2, 1)),
    dict(width=8, height=7, kernel=[[1, -2, 1], [3, 1, -1]], dilation=(3, 2), padding=(1, 2),
         stride=(1, 3)),
    dict(width=4, height=3, kernel=[[5, -1, 2], [1, 1, -3], [0, 2, 1]], padding=1,
         in_signed=True, in_bits=5),
]


@pytest.mark.parametrize("border, value", BORDERS, ids=[_ids(c) for c in BORDERS])
@pytest.mark.parametrize("case", range(len(CASES_2D)))
def test_conv2d(border, value, case):
    args = dict(CASES_2D[case])
    if border == "constant" and args.get("in_signed"):
        value = -13
    spec = ConvSpec(**args, border=border, border_value=value)
    _check(Conv2d, spec, _frames(spec, 2, case))


@pytest.mark.parametrize("border", SOURCE_MODES)
def test_conv2d_even_kernel_and_replicate_beyond_half(border):
    # An even kernel's "same" padding (reflect-101 refuses its bottom/right cell).
    if border != "reflect-101":
        spec = ConvSpec(width=6, height=5, kernel=[[1, 2], [3, -4]], padding="same",
                        border=border)
        _check(Conv2d, spec, _frames(spec, 2, 1))
    # Replicate allows padding up to span - 1: output rows longer than input rows.
    pad = _limit(border, 5, 3)
    spec = ConvSpec(width=5, height=4, kernel=SOBEL, padding=pad, border=border)
    _check(Conv2d, spec, _frames(spec, 2, 2))


TINY = [dict(width=2, height=5, padding=1), dict(width=1, height=4, padding="same"),
        dict(width=5, height=1, padding=1), dict(width=3, height=2, padding=(1, 1))]


@pytest.mark.parametrize("border", SOURCE_MODES)
@pytest.mark.parametrize("case", range(len(TINY)))
def test_conv2d_tiny_frames(border, case):
    """Rows of 1 or 2 positions (the line buffer reads in the position's own cycle), a single
    row: every tap row or column may be a border one."""
    try:
        spec = ConvSpec(**TINY[case], kernel=[[1, 2, -3], [4, -5, 6], [-7, 8, 9]],
                        border=border)
    except ValueError as error:
        assert "single reflection" in str(error)
        return
    _check(Conv2d, spec, _frames(spec, 3, case))


@pytest.mark.parametrize("border", SOURCE_MODES)
def test_conv2d_runtime_coefficients(border):
    # DSP products and partial products in logic (max_dsps), both fed by border taps.
    spec = ConvSpec(width=6, height=5, kernel_shape=(3, 3), padding="same", border=border,
                    max_dsps=4, in_signed=True)
    rng = np.random.default_rng(3)
    kernels = [rng.integers(-128, 128, (3, 3)) for _ in range(2)]
    _check(Conv2d, spec, _frames(spec, 2, 3), kernels)


@pytest.mark.parametrize("border, value", BORDERS, ids=[_ids(c) for c in BORDERS])
def test_layer(border, value):
    rng = np.random.default_rng(4)
    spec = ConvSpec(width=6, height=5, weights=rng.integers(-9, 10, (3, 2, 3, 3)),
                    bias=rng.integers(-50, 50, 3), padding="same", border=border,
                    border_value=value)
    _check(Conv2d, spec, _frames(spec, 2, 4))


@pytest.mark.parametrize("border, value", BORDERS, ids=[_ids(c) for c in BORDERS])
def test_folded_layer(border, value):
    rng = np.random.default_rng(5)
    spec = ConvSpec(width=6, height=5, weights=rng.integers(-9, 10, (4, 2, 3, 3)),
                    padding=(1, 1), stride=(1, 2), border=border, border_value=value, pe=2,
                    simd=5)
    assert spec.folded
    _check(Conv2d, spec, _frames(spec, 2, 5))


def test_folded_layer_runtime_weights_grouped():
    rng = np.random.default_rng(6)
    spec = ConvSpec(width=5, height=5, kernel_shape=(3, 3), in_channels=4, out_channels=4,
                    groups=2, padding="same", border="reflect-101", pe=2, simd=3)
    weights = [rng.integers(-128, 128, (4, 2, 3, 3)) for _ in range(2)]
    _check(Conv2d, spec, _frames(spec, 2, 6), weights)


CASES_1D = [
    dict(length=9, kernel=[1, -2, 3], padding="same"),
    dict(length=11, kernel=[1, 2, 3, 4, 5], padding=(2, 1), stride=2, in_signed=True),
    dict(length=8, kernel=[3, -1, 2], padding=(2, 1), dilation=2),
    dict(length=3, kernel=[2, -1, 4, 1, 1], padding=2),
]


@pytest.mark.parametrize("border, value", BORDERS + [("constant", 0)],
                         ids=[_ids(c) for c in BORDERS + [("constant", 0)]])
@pytest.mark.parametrize("case", range(len(CASES_1D)))
def test_conv1d(border, value, case):
    args = dict(CASES_1D[case])
    if border == "constant" and args.get("in_signed"):
        value = -100
    try:
        spec = Conv1dSpec(**args, border=border, border_value=value)
    except ValueError:
        # A sequence of 3 allows reflect-101 padding 2 at most... and reflect 2 on a span 5.
        assert border == "reflect-101" and args["length"] == 3
        spec = Conv1dSpec(**{**args, "padding": 1}, border=border)
    _check(Conv1d, spec, _frames(spec, 3, case))


def test_conv1d_runtime_coefficients():
    spec = Conv1dSpec(length=10, kernel_size=4, padding=(1, 2), border="reflect",
                      in_signed=True)
    rng = np.random.default_rng(8)
    _check(Conv1d, spec, _frames(spec, 2, 8), [rng.integers(-128, 128, 4) for _ in range(2)])


def test_accumulator_range_holds_border_value():
    """A constant border at the pixel range's end reaches the accumulator's end exactly."""
    for in_signed, value in ((False, 255), (True, -128)):
        spec = ConvSpec(width=4, height=3, kernel=[[127] * 3] * 3, padding=2,
                        in_signed=in_signed, border="constant", border_value=value)
        frame = np.full(spec.frame_shape, value)
        result = simulate(Conv2d(spec), [frame])
        assert result.frames[0][0, 0] == 9 * 127 * value
        assert 9 * 127 * value in spec.acc_range


# --- command line ---------------------------------------------------------------------------------

def test_cli_info(capsys):
    assert main(["info", "--width", "8", "--height", "6", "--kernel", "box3", "--padding",
                 "same", "--border", "reflect-101", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["border"] == "reflect-101" and facts["border_value"] == 0
    assert main(["info", "--width", "8", "--height", "6", "--kernel", "box3", "--padding",
                 "1", "--signed", "--border-value", "-7", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert (facts["border"], facts["border_value"]) == ("constant", -7)
    assert main(["info", "--dims", "1", "--length", "9", "--kernel", "1,2,1", "--padding",
                 "same", "--border", "replicate", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["border"] == "replicate"


@pytest.mark.parametrize("argv, message", [
    (["--border", "wrap"], r"argument --border: invalid choice: 'wrap'"),
    (["--border", "reflect", "--padding", "2"], r"^convhw: error: --border: 'border' 'reflect' "
                                                r"allows 'padding' at most 1 on the top"),
    (["--border-value", "300", "--padding", "1"], r"^convhw: error: --border-value: "
                                                  r"'border_value' 300 must be a pixel value"),
    (["--border-value", "x"], r"argument --border-value: invalid int value: 'x'"),
])
def test_cli_errors(capsys, argv, message):
    try:
        code = main(["info", "--width", "8", "--height", "6", "--kernel", "box3", *argv])
    except SystemExit as exit_info:    # argparse's own errors
        code = exit_info.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and __import__("re").search(message, err), err


def test_cli_generate_and_simulate(tmp_path, capsys):
    out = tmp_path / "r.v"
    assert main(["generate", "-o", str(out), "--width", "8", "--height", "6", "--kernel",
                 "sobel-x", "--padding", "same", "--border", "reflect"]) == 0
    assert '"border": "reflect"' in out.read_text()
    frame = np.random.default_rng(9).integers(0, 256, (6, 8))
    np.save(tmp_path / "x.npy", frame)
    assert main(["simulate", "--input", str(tmp_path / "x.npy"), "--kernel", "sobel-x",
                 "--padding", "same", "--border", "replicate", "--output",
                 str(tmp_path / "y.npy"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["match"] is True
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"),
                                  conv2d(frame, parse_kernel("sobel-x"), padding="same",
                                         border="replicate"))


def test_no_extra_block_ram(tmp_path):
    """A 640-wide reflect-101 core uses the block RAMs of the zero-padded one (line buffers
    and FIFO) and a few flip-flops more at most: border pixels come from what is held."""
    from test_bram import _yosys_cells

    counts = {}
    for border in ("constant", "reflect-101"):
        spec = ConvSpec(width=640, height=480, kernel=[[1, 2, 1], [2, 4, 2], [1, 2, 1]],
                        padding="same", border=border)
        (tmp_path / border).mkdir()
        cells, _ = _yosys_cells(tmp_path / border, spec, "synth_ice40 -device u")
        counts[border] = (cells.get("SB_RAM40_4K", 0),
                          sum(n for name, n in cells.items() if name.startswith("SB_DFF")))
    (ram, flip_flops), (border_ram, border_flip_flops) = counts["constant"], counts["reflect-101"]
    assert border_ram == ram == 4
    assert border_flip_flops <= flip_flops + 32


@settings(max_examples=30, deadline=None, derandomize=True, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(data=st.data(), spec=specs(), border=st.sampled_from(MODES),
       stall=st.sampled_from([0.0, 0.3, 0.8]))
def test_random_specs_with_borders(data, spec, border, stall):
    """Any valid 2-D spec of the property tests (kernels, strides, dilations, formats, runtime
    coefficients), its padding cut to what the drawn border mode allows."""
    value = data.draw(st.integers(*spec.pixel_range), label="value") if border == "constant" \
        else 0
    (top, _), (left, _) = spec.padding
    (span_y, span_x), (height, width) = spec.span, spec.frame_shape
    padding = (min(top, _limit(border, height, span_y)), min(left, _limit(border, width, span_x)))
    try:
        spec = spec.replace(border=border, border_value=value)
    except ValueError:
        try:
            spec = spec.replace(border=border, border_value=value, padding=padding)
        except ValueError:
            assume(False)
    frames = [draw_array(data.draw, *spec.pixel_range, spec.frame_shape)
              for _ in range(data.draw(st.integers(1, 2), label="frames"))]
    kernels = None
    if spec.runtime_coeffs:
        limit = 1 << (spec.coeff_bits - 1)
        kernels = [draw_array(data.draw, -limit, limit - 1, spec.kernel_shape) for _ in frames]
    result = simulate(Conv2d(spec), frames, coefficients=kernels, in_stall=stall,
                      out_stall=stall, seed=data.draw(st.integers(0, 1000), label="seed"))
    assert result.errors == []
    for index, frame in enumerate(frames):
        kernel = None if kernels is None else kernels[index]
        np.testing.assert_array_equal(result.frames[index], run_spec(spec, frame, kernel))
    if stall == 0 and len(frames) == 1:
        assert result.cycles == spec.cycles_per_frame
