"""Separable kernels: the factorization, the automatic choice, both forms bit-exact and alike,
runtime vectors, refusals, the command line, and the resources of both forms."""

import json
import shutil

import cv2
import numpy as np
import pytest

from convhw import Conv2d, ConvSpec, fastsim
from convhw.cli import main
from convhw.export import to_verilog
from convhw.golden import run_spec
from convhw.harness import simulate
from convhw.kernels import parse_kernel
from convhw.separable import best_factors, factor, fitting_factors
from convhw.stimulus import coefficient_writes
from convhw.toolchain import ToolchainMissing, find_tool, synthesize
from streaming import run_stream

CV_BORDER = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE,
             "reflect": cv2.BORDER_REFLECT, "reflect-101": cv2.BORDER_REFLECT_101}


def run_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


# --- factorization and the automatic choice ------------------------------------------------------

@pytest.mark.parametrize("name, u, v", [
    ("gaussian3", [1, 2, 1], [1, 2, 1]),
    ("gaussian5", [1, 4, 6, 4, 1], [1, 4, 6, 4, 1]),
    ("box3", [1, 1, 1], [1, 1, 1]),
    ("box5", [1] * 5, [1] * 5),
    ("sobel-x", [1, 2, 1], [-1, 0, 1]),
    ("sobel-y", [-1, 0, 1], [1, 2, 1]),
])
def test_named_kernels_separable(name, u, v):
    spec = ConvSpec(width=8, height=8, kernel=parse_kernel(name), padding="same")
    assert spec.separable and spec.form == "separable"
    assert spec.separable_factors == ((u, v),)
    assert spec.multipliers_built == sum(1 for c in u + v if c)
    assert spec.multipliers_built < spec.replace(separable=False).multipliers_built


@pytest.mark.parametrize("name", ["laplacian", "sharpen", "emboss", "identity"])
def test_other_kernels_stay_2d(name):
    """Not outer products (laplacian, sharpen, emboss), or no cheaper that way (identity)."""
    spec = ConvSpec(width=8, height=8, kernel=parse_kernel(name), padding="same")
    assert not spec.separable and spec.form == "2-d" and spec.separable_factors is None
    assert spec == spec.replace(separable=False)
    assert to_verilog(spec) == to_verilog(spec.replace(separable=False))


def test_factorization_choice():
    assert factor([[0, 0], [0, 0]]) is None and factor([[1, 2], [2, 3]]) is None
    # The gcd goes to the horizontal vector, the sign makes the vertical sum positive.
    assert best_factors([[-6, -12], [-9, -18]]) == ([6, 9], [-1, -2])
    assert best_factors(np.outer([2, 4], [3, 5]).tolist()) == ([1, 2], [6, 10])
    # Fewest CSD digits, then the narrower vertical sums: outer([6, 18], [1, 1]) and
    # outer([3, 9], [2, 2]) both take 6 digits ([1, 3] x [6, 6] takes 7).
    assert best_factors(np.outer([2, 6], [3, 3]).tolist()) == ([3, 9], [2, 2])
    # Runtime vectors must fit 'coeff_bits': 128 does not, -128 does.
    assert fitting_factors(np.outer([128], [127]).tolist(), 8) == ([-128], [-127])
    assert fitting_factors([[200 * 127]], 8) is None


def test_flip_factors_in_tap_order():
    kernel = np.outer([1, 2, 3], [1, 0, -2]).tolist()
    spec = ConvSpec(width=8, height=8, kernel=kernel, flip=True, separable=True)
    assert spec.separable_factors == (([3, 2, 1], [-2, 0, 1]),)
    assert spec.to_dict()["separable_vectors"] == [[[1, 2, 3], [1, 0, -2]]]


def test_golden_separable_equals_2d_and_opencv():
    """The golden model is the same integer function for both forms, and both equal OpenCV's
    2-D filter and its separable filter on the factors."""
    rng = np.random.default_rng(1)
    for border in CV_BORDER:
        u, v = rng.integers(-9, 10, 5), rng.integers(-9, 10, 3)
        u[0], v[0] = 1, 1
        kernel = np.outer(u, v)
        spec = ConvSpec(width=11, height=9, kernel=kernel.tolist(), padding="same", border=border)
        assert spec.separable
        image = rng.integers(0, 256, spec.frame_shape)
        golden = run_spec(spec, image)
        np.testing.assert_array_equal(golden, run_spec(spec.replace(separable=False), image))
        x = image.astype(np.float64)
        flat = cv2.filter2D(x, cv2.CV_64F, kernel.astype(np.float64), borderType=CV_BORDER[border])
        split = cv2.sepFilter2D(x, cv2.CV_64F, v.astype(np.float64), u.astype(np.float64),
                                borderType=CV_BORDER[border])
        np.testing.assert_array_equal(golden, np.rint(flat))
        np.testing.assert_array_equal(golden, np.rint(split))


# --- both forms bit-exact and alike -------------------------------------------------------------

def _outer(seed, shape, extreme=False):
    rng = np.random.default_rng(seed)
    lo, hi = (-128, 128) if extreme else (-7, 8)
    u, v = rng.integers(lo, hi, shape[0]), rng.integers(lo, hi, shape[1])
    u[rng.integers(shape[0])] = hi - 1
    v[rng.integers(shape[1])] = lo
    return np.outer(u, v).tolist()


CASES = [
    dict(width=9, height=7, kernel=_outer(1, (3, 3)), padding="same"),
    dict(width=9, height=7, kernel=_outer(2, (3, 5)), padding=(2, 4), border_value=200),
    dict(width=8, height=6, kernel=_outer(3, (5, 3)), padding="same", border="replicate"),
    dict(width=8, height=7, kernel=_outer(4, (3, 3)), padding=(1, 1), border="reflect",
         stride=(2, 3)),
    dict(width=10, height=8, kernel=_outer(5, (3, 2)), padding=(2, 1), border="reflect-101",
         dilation=(2, 3), flip=True),
    dict(width=7, height=6, kernel=_outer(6, (2, 4), extreme=True), padding=(1, 3),
         in_signed=True, border_value=-128, shift=5, out_bits=8),
    dict(width=9, height=7, kernel=_outer(7, (5, 5)), padding=(4, 4), stride=2, shift=6,
         out_bits=6),
    dict(width=8, height=8, kernel=_outer(8, (3, 3)), padding=(2, 2), dilation=2,
         border="replicate", in_bits=4),
]


@pytest.mark.parametrize("kwargs", CASES, ids=range(len(CASES)))
def test_forms_identical(kwargs):
    """Random outer-product kernels: both forms give the golden result, with stalls on both
    sides and two frames back to back, and the spec's cycle count without stalls."""
    spec = ConvSpec(**kwargs, separable=True)
    flat = spec.replace(separable=False)
    assert spec.acc_range == flat.acc_range and spec.out_bits == flat.out_bits
    rng = np.random.default_rng(len(kwargs))
    lo, hi = spec.pixel_range
    frames = [rng.integers(lo, hi + 1, spec.frame_shape) for _ in range(2)]
    frames[1][0, :] = hi
    for form in (spec, flat):
        result = simulate(Conv2d(form), frames, in_stall=0.3, out_stall=0.3, seed=5)
        assert result.errors == []
        for got, frame in zip(result.frames, frames):
            np.testing.assert_array_equal(got, run_spec(spec, frame))
    result = simulate(Conv2d(spec), frames[:1])
    assert result.cycles == spec.cycles_per_frame


def test_colour_depthwise():
    """A colour Gaussian: one kernel on three channels, separable per channel."""
    spec = ConvSpec(width=9, height=6, kernel=parse_kernel("gaussian5"), in_channels=3,
                    padding="same", border="reflect-101", shift=8, out_bits=9)
    assert spec.separable and spec.multipliers_built == 30
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, spec.input_shape)
    result = simulate(Conv2d(spec), [image], in_stall=0.2, out_stall=0.2, seed=1)
    assert result.errors == []
    np.testing.assert_array_equal(result.frames[0], run_spec(spec, image))


def test_depthwise_weights_per_channel():
    """Depthwise weights with a different outer product per channel."""
    weights = np.array([[_outer(10 + c, (3, 3))] for c in range(2)])
    spec = ConvSpec(width=6, height=5, weights=weights, groups=2, padding="same",
                    border_value=9)
    assert spec.separable
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, spec.input_shape)
    result = simulate(Conv2d(spec), [image], in_stall=0.3, out_stall=0.3, seed=2)
    np.testing.assert_array_equal(result.frames[0], run_spec(spec, image))


@pytest.mark.skipif(not fastsim.available(), reason="Verilator is not installed")
def test_compiled_backend():
    spec = ConvSpec(width=40, height=30, kernel=parse_kernel("gaussian5"), padding="same",
                    border="reflect-101", shift=8)
    rng = np.random.default_rng(6)
    frames = [rng.integers(0, 256, spec.frame_shape) for _ in range(2)]
    result = simulate(Conv2d(spec), frames, in_stall=0.2, out_stall=0.2, backend="fast")
    for got, frame in zip(result.frames, frames):
        np.testing.assert_array_equal(got, run_spec(spec, frame))


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog is not installed")
@pytest.mark.parametrize("border", [dict(border="reflect"), dict(border_value=201)])
def test_icarus_runtime_vectors(tmp_path, border):
    """The generated Verilog of a runtime separable core, vectors changing between frames."""
    from test_verilog_sim import check, random_frames
    spec = ConvSpec(width=9, height=6, kernel_shape=(3, 5), padding="same", max_dsps=4,
                    separable=True, **border)
    rng = np.random.default_rng(11)
    kernels = [np.outer(rng.integers(-128, 128, 3), rng.integers(-128, 128, 5))
               for _ in range(2)]
    check(tmp_path, spec, random_frames(spec, 2, 11), kernels, seed=11)


# --- runtime vectors ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    dict(kernel_shape=(3, 3), padding="same"),
    dict(kernel_shape=(5, 3), padding=(2, 1), max_dsps=3, border="reflect-101", flip=True),
    dict(kernel_shape=(3, 2), padding=(1, 1), max_dsps=0, in_signed=True, stride=(1, 2)),
    dict(kernel_shape=(3, 3), padding="same", in_channels=3, groups=3, max_dsps=4),
    dict(kernel_shape=(3, 4), padding=(2, 3), border_value=-77, in_signed=True, max_dsps=5),
])
def test_runtime_vectors(kwargs):
    spec = ConvSpec(width=7, height=6, separable=True, **kwargs)
    kh, kw = spec.kernel_shape
    assert spec.coefficient_count == spec.out_channels * (kh + kw)
    rng = np.random.default_rng(kh * kw)
    kernels = [np.outer(rng.integers(-128, 128, kh), rng.integers(-128, 128, kw))
               for _ in range(3)]
    kernels[1] = np.outer([-128] * kh, [-128] * kw)     # the accumulator's extreme
    if spec.out_channels > 1:
        kernels = [np.broadcast_to(k, (3, 1, kh, kw)).copy() for k in kernels]
    lo, hi = spec.pixel_range
    frames = [rng.integers(lo, hi + 1, spec.input_shape) for _ in range(3)]
    frames[1][...] = lo
    result = simulate(Conv2d(spec), frames, coefficients=kernels, in_stall=0.3, out_stall=0.3,
                      seed=9)
    assert result.errors == []
    for got, frame, kernel in zip(result.frames, frames, kernels):
        np.testing.assert_array_equal(got, run_spec(spec, frame, kernel))
    assert simulate(Conv2d(spec), frames[:1], coefficients=kernels[:1]).cycles == \
        spec.cycles_per_frame


def test_runtime_products_fit_dsp_blocks():
    """A horizontal DSP product takes at most 16 bits of the vertical sum; each lower bit gates
    the coefficient instead."""
    spec = ConvSpec(width=8, height=8, kernel_shape=(5, 5), separable=True)
    assert spec.vertical_range(0) == (5 * -128 * 255, 5 * 127 * 255)     # 19 bits
    kinds = [(kind, shift) for _, _, _, kind, shift, _ in spec.horizontal_terms(0)]
    assert kinds[:4] == [("product", 3), ("low-bit", 0), ("low-bit", 1), ("low-bit", 2)]
    assert all(kind == "product" and shift == 0 for _, _, _, kind, shift, _ in
               spec.vertical_terms(0))


def test_runtime_address_order():
    spec = ConvSpec(width=6, height=5, kernel_shape=(3, 2), separable=True, flip=True)
    assert coefficient_writes(spec, np.outer([1, 2, 3], [4, 5])) == [
        (0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]


@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_runtime_vectors_swap_at_start_of_frame(stall):
    """Vectors written while a frame streams take effect at the next start of frame only."""
    spec = ConvSpec(width=7, height=6, kernel_shape=(3, 3), padding="same", in_signed=True,
                    separable=True, max_dsps=2)
    rng = np.random.default_rng(50)
    k1, k2, k3 = (np.outer(rng.integers(-128, 128, 3), rng.integers(-128, 128, 3))
                  for _ in range(3))
    a, b = rng.integers(-128, 128, (2, *spec.frame_shape))
    size = spec.width * spec.height
    expected = [*run_spec(spec, a, k1).ravel(), *run_spec(spec, b, k2).ravel()]
    for meddle, kernels in (((20, k2), {0: k1}), ((size + 3, k3), {0: k1, size: k2}),
                            ((size - 1, k2), {0: k1})):
        values, _, _, _, errors = run_stream(
            Conv2d(spec), [*a.ravel(), *b.ravel()], len(expected), firsts=(0, size),
            kernels=kernels, meddle=meddle, in_stall=stall, out_stall=stall, seed=7)
        assert errors == [] and values == expected


# --- refusals -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    (dict(kernel=parse_kernel("laplacian"), separable=True), ValueError,
     r"^'separable' True: kernel \[\[0, 1, 0\], \[1, -4, 1\], \[0, 1, 0\]\] is not an outer "
     r"product of two integer vectors \(use 'separable' False or None\)$"),
    (dict(kernel=parse_kernel("gaussian3"), in_channels=2, pe=1, separable=True), ValueError,
     r"^'separable' True: a folded layer \('pe' 1, 'simd' 9\) is built in the 2-D form"),
    (dict(weights=np.ones((2, 2, 3, 3), int), separable=True), ValueError,
     r"^'separable' True: it needs one kernel per channel \(single channel or depthwise\), not "
     r"2->2 channels with 'groups' 1"),
    (dict(kernel=parse_kernel("gaussian3"), pixels_per_clock=2, separable=True), ValueError,
     r"^'separable' True: 'pixels_per_clock' 2 is built in the 2-D form"),
    (dict(kernel_shape=(3, 3), operation="max-pool", separable=True), ValueError,
     r"^'separable' True: 'operation' 'max-pool' has no kernel to separate"),
    (dict(kernel=parse_kernel("gaussian3"), separable=1), TypeError,
     r"^'separable' must be None \(automatic\), True or False, not 1$"),
])
def test_refusals(kwargs, error, message):
    kwargs = {"width": 8, "height": 8, **kwargs}
    with pytest.raises(error, match=message):
        ConvSpec(**kwargs)


def test_automatic_choice_falls_back():
    """Folded layers and runtime coefficients are built in the 2-D form unless asked for."""
    folded = ConvSpec(width=8, height=8, kernel=parse_kernel("gaussian3"), in_channels=2, pe=1)
    assert folded.folded and not folded.separable
    lanes = ConvSpec(width=8, height=8, kernel=parse_kernel("gaussian3"), pixels_per_clock=2)
    assert not lanes.separable
    assert not ConvSpec(width=8, height=8, kernel_shape=(3, 3), operation="max-pool").separable
    assert not ConvSpec(width=8, height=8, kernel_shape=(3, 3)).separable


def test_runtime_tiny_frame_refused():
    with pytest.raises(ValueError, match=r"^'separable' True with runtime coefficients needs "
                                         r"frames of more than \d+ positions"):
        ConvSpec(width=1, height=1, kernel_shape=(2, 2), max_dsps=0, coeff_bits=16,
                 separable=True, padding=1)


# --- command line -------------------------------------------------------------------------------

def test_cli_info_forms(capsys):
    common = ["info", "--width", 32, "--height", 24, "--kernel", "gaussian5", "--padding", "same",
              "--json"]
    status, out, _ = run_cli(capsys, *common)
    facts = json.loads(out)
    assert status == 0 and facts["form"] == "separable" and facts["multipliers"] == 10
    assert facts["separable_vectors"] == [[[1, 4, 6, 4, 1], [1, 4, 6, 4, 1]]]
    status, out, _ = run_cli(capsys, *common, "--no-separable")
    facts = json.loads(out)
    assert facts["form"] == "2-d" and facts["multipliers"] == 25
    status, out, _ = run_cli(capsys, "info", "--width", 32, "--height", 24, "--runtime-coeffs",
                             "--kernel-size", "5x3", "--separable")
    assert status == 0 and "form: separable" in out and "multipliers: 8" in out


@pytest.mark.parametrize("argv, message", [
    (["--kernel", "sharpen", "--separable"],
     "--separable: 'separable' True: kernel [[0, -1, 0], [-1, 5, -1], [0, -1, 0]] is not an "
     "outer product of two integer vectors"),
    (["--dims", "1", "--kernel", "1,2,1", "--separable"],
     "--separable: a 1-D core has one row"),
])
def test_cli_refusals(capsys, argv, message):
    status, out, err = run_cli(capsys, "info", "--width", 8, "--height", 8, *argv) \
        if "--dims" not in argv else run_cli(capsys, "info", *argv)
    assert status == 2 and out == "" and err.startswith(f"convhw: error: {message}")
    assert len(err.splitlines()) == 1


def test_cli_simulate_runtime_separable(tmp_path, capsys):
    image = np.random.default_rng(2).integers(0, 256, (9, 8))
    np.save(tmp_path / "x.npy", image)
    common = ["simulate", "--input", tmp_path / "x.npy", "--runtime-coeffs", "--separable",
              "--padding", "same", "--border", "replicate"]
    status, out, _ = run_cli(capsys, *common, "--kernel", "gaussian3", "--output",
                             tmp_path / "y.npy", "--json")
    assert status == 0 and json.loads(out)["match"]
    spec = ConvSpec(width=8, height=9, kernel=parse_kernel("gaussian3"), padding="same",
                    border="replicate")
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), run_spec(spec, image))
    status, out, err = run_cli(capsys, *common, "--kernel", "laplacian")
    assert status == 2 and err.startswith(
        "convhw: error: --kernel: runtime kernel [[0, 1, 0], [1, -4, 1], [0, 1, 0]] is not an "
        "outer product of two integer vectors of 'coeff_bits'=8")


# --- resources ----------------------------------------------------------------------------------

def test_synth_separable_uses_fewer_cells(tmp_path):
    """A 5x5 Gaussian on the UP5K: the separable form takes far fewer logic cells."""
    try:
        find_tool("nextpnr-ice40")
    except ToolchainMissing as error:
        pytest.skip(f"toolchain not installed: {error}")
    spec = ConvSpec(width=128, height=16, kernel=parse_kernel("gaussian5"), shift=8)
    cells = {}
    for form in (spec, spec.replace(separable=False)):
        report = synthesize(form, "ice40-up5k", build_dir=tmp_path / form.form).to_dict()
        assert report["dsps"] == 0
        cells[form.form] = report["logic_cells"]
    assert cells["separable"] < 0.8 * cells["2-d"]
