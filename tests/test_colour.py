"""Colour images (issue 12, part 3): RGB pictures in, the depthwise layer, colour pictures out.

OpenCV is the oracle: ``cv2.filter2D`` on the colour image with ``ddepth=cv2.CV_64F`` and
``BORDER_CONSTANT`` (zeros, convhw's padding), then ``np.rint``, is exact for integer kernels.
Odd kernels only: for even ones OpenCV's anchor puts the extra tap on the other side.
"""

import json
import re
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from convhw import ConvSpec
from convhw.cli import demo as demo_command, synth as synth_command
from convhw.spec_options import spec_from_args
from convhw.cli.simulate import picture_levels
from convhw.export import to_verilog
from convhw.golden import run_spec
from convhw import images
from convhw.images import (demo_colour_image, demo_photo, load_frame, sample_photo, save_frame,
                           viewable)
from convhw.kernels import parse_kernel

from test_cli import axis_ports, run_cli, verilog_ports

ODD_KERNEL = "1,-2,3;0,4,-1;2,1,-3;-1,0,1;1,2,1"       # 5 rows, 3 columns, signed


@pytest.fixture(scope="module")
def photo():
    """A 40x30 crop of china.jpg, (3, H, W) RGB: a real photo, not noise."""
    return demo_photo(40, 30)


def save_rgb(path, channels, mode="RGB"):
    """Write (3, H, W) (or (4, H, W) for RGBA) 8-bit channels as a picture."""
    Image.fromarray(np.moveaxis(np.asarray(channels), 0, -1).astype(np.uint8), mode).save(path)


def read_picture(path):
    """``(mode, pixels)`` of the picture at ``path``."""
    with Image.open(path) as picture:
        return picture.mode, np.array(picture)


def opencv_filter(path, kernel, padding):
    """``cv2.filter2D`` of the colour picture at ``path``, as (3, OH, OW) RGB integers; zero
    padding ``padding = (py, px)``, a valid convolution where the padding is smaller than
    'same'."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float64)
    full = cv2.filter2D(rgb, cv2.CV_64F, np.asarray(kernel, dtype=np.float64),
                        borderType=cv2.BORDER_CONSTANT)
    (kh, kw), (py, px) = np.shape(kernel), padding
    cy, cx = (kh - 1) // 2 - py, (kw - 1) // 2 - px      # rows/columns 'same' has in excess
    full = full[cy:full.shape[0] - cy, cx:full.shape[1] - cx]
    return np.moveaxis(np.rint(full).astype(np.int64), -1, 0)


# --- reading --------------------------------------------------------------------------------

def test_rgb_and_rgba_read_as_three_channels(tmp_path, photo):
    save_rgb(tmp_path / "rgb.png", photo)
    save_rgb(tmp_path / "rgba.png", np.vstack([photo, np.arange(1200).reshape(1, 30, 40) % 256]),
             "RGBA")
    for name in ("rgb.png", "rgba.png"):
        frame = load_frame(str(tmp_path / name))
        assert frame.shape == (3, 30, 40) and frame.dtype == np.int64
        assert (frame == photo).all()                    # alpha dropped, nothing converted
    # The channel order is R, G, B: what OpenCV holds as B, G, R.
    bgr = cv2.imread(str(tmp_path / "rgb.png"), cv2.IMREAD_COLOR)
    assert (load_frame(str(tmp_path / "rgb.png")) == np.moveaxis(bgr[..., ::-1], -1, 0)).all()


def test_palette_and_la_images(tmp_path):
    palette = [10, 20, 30, 200, 150, 100, 7, 7, 7]
    index = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(palette)
    image.save(tmp_path / "p.png")
    expected = np.array(palette).reshape(3, 3)[index]                   # (H, W, 3) lookup
    assert load_frame(str(tmp_path / "p.png")).tolist() == np.moveaxis(expected, -1, 0).tolist()
    image.info["transparency"] = 1
    image.save(tmp_path / "pt.png")
    assert (load_frame(str(tmp_path / "pt.png")) == np.moveaxis(expected, -1, 0)).all()
    gray = np.array([[0, 9, 255], [3, 4, 5]], dtype=np.uint8)
    Image.fromarray(np.dstack([gray, 255 - gray]), "LA").save(tmp_path / "la.png")
    assert load_frame(str(tmp_path / "la.png")).tolist() == gray.tolist()  # 2-D, alpha dropped


def test_jpeg_read_as_pillow_decodes_it(tmp_path, photo):
    save_rgb(tmp_path / "p.jpg", photo)
    _, decoded = read_picture(tmp_path / "p.jpg")
    assert (load_frame(str(tmp_path / "p.jpg")) == np.moveaxis(decoded, -1, 0)).all()


@pytest.mark.parametrize("channels, mode", [(3, "RGB"), (4, "RGBA")])
def test_16_bit_colour_refused(tmp_path, channels, mode):
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((2, 3, channels), 1000, dtype=np.uint16))
    with pytest.raises(ValueError, match=rf"deep\.png: is a 16-bit {mode} image \({mode};16B\), "
                                         rf"which Pillow reads as 8 bits; save its pixels as a "
                                         rf"\.npy instead \(colour: \(3, H, W\)\)$"):
        load_frame(str(tmp_path / "deep.png"))


# --- writing --------------------------------------------------------------------------------

def test_colour_picture_levels_and_stretch(tmp_path):
    frame = np.array([[[-5, 0, 300]], [[10, 128, 255]], [[-300, 1, 2]]])     # (3, 1, 3)
    save_frame(tmp_path / "clip.png", frame, levels=(0, 255))
    mode, written = read_picture(tmp_path / "clip.png")
    assert mode == "RGB"
    assert written.tolist() == [[[0, 10, 0], [0, 128, 1], [255, 255, 2]]]
    save_frame(tmp_path / "stretch.bmp", frame)       # |v| over all channels: 0..300 -> 0..255
    assert read_picture(tmp_path / "stretch.bmp")[1].tolist() == \
        [[[4, 9, 255], [0, 109, 1], [255, 217, 2]]]
    assert viewable(np.array([[0, 8, 16]]), levels=(0, 16)).tolist() == [[0, 128, 255]]
    with pytest.raises(ValueError, match=r"g\.pgm: a \.pgm holds grayscale; write a colour "
                                         r"picture as \.png, \.ppm, \.bmp or \.tif$"):
        save_frame(tmp_path / "g.pgm", frame)
    with pytest.raises(ValueError, match=r"f\.png: an image holds one 2-D frame, or \(3, H, W\) "
                                         r"colour channels, not shape \(2, 1, 3\)$"):
        save_frame(tmp_path / "f.png", frame[:2])


@pytest.mark.parametrize("kernel, shift, levels", [
    ("gaussian3", 4, (0, 255)), ("sharpen", None, (0, 255)), ("identity", None, (0, 255)),
    ("gaussian3", None, None), ("sobel-x", None, None), ("gaussian3", 3, None),
])
def test_picture_levels_follow_the_gain(kernel, shift, levels):
    spec = ConvSpec(width=8, height=6, kernel=parse_kernel(kernel), in_channels=3, shift=shift)
    assert picture_levels(spec) == levels
    gray = ConvSpec(width=8, height=6, kernel=parse_kernel(kernel), shift=shift)
    assert picture_levels(gray) == levels
    runtime = ConvSpec(width=8, height=6, kernel_shape=(3, 3), in_channels=3, shift=shift)
    weights = np.broadcast_to(parse_kernel(kernel), (3, 1, 3, 3))
    assert picture_levels(runtime, weights) == levels
    assert picture_levels(runtime) is None          # no values: nothing to say the gain is 1


def test_picture_levels_per_channel_scale():
    weights = np.zeros((3, 3, 1, 1), dtype=int)
    weights[:, :, 0, 0] = [[2, 1, 1], [1, 2, 1], [0, 0, 8]]    # gains 4/4, 4/4, 8/8
    spec = ConvSpec(width=4, height=4, weights=weights, scale=[1, 1, 1], shift=[2, 2, 3],
                    in_bits=9, in_signed=True)
    assert picture_levels(spec) == (-256, 255)
    assert picture_levels(spec.replace(shift=2)) is None         # channel 2 has gain 2


# --- simulate ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel, padding, pad, shift, frames", [
    ("sobel-x", "same", (1, 1), None, 2),
    ("gaussian3", "same", (1, 1), 4, 1),
    (ODD_KERNEL, "same", (2, 1), None, 1),
    (ODD_KERNEL, "1,0", (1, 0), None, 1),
])
def test_simulate_colour_png_matches_opencv(tmp_path, capsys, photo, kernel, padding, pad, shift,
                                             frames):
    save_rgb(tmp_path / "photo.png", photo)
    argv = ["simulate", "--input", tmp_path / "photo.png", "--kernel", kernel, "--padding",
            padding, "--output", tmp_path / "out.npy", "--frames", frames, "--json"]
    status, out, _ = run_cli(capsys, *argv + (["--shift", shift] if shift else []))
    report = json.loads(out)
    assert status == 0 and report["match"]
    assert report["in_channels"] == report["out_channels"] == 3
    result = np.load(tmp_path / "out.npy")
    expected = opencv_filter(tmp_path / "photo.png", parse_kernel(kernel), pad)
    if shift:
        expected = (expected + (1 << (shift - 1))) >> shift               # round half up
    if frames == 1:
        assert result.shape == expected.shape == (3, *report["out_shape"][1:])
        assert (result == expected).all()
    else:
        assert result.shape == (2, *expected.shape)
        assert (result[0] == expected).all()
        # Frame 1 is the picture shifted cyclically by 1 row and 3 columns.
        save_rgb(tmp_path / "shifted.png", np.roll(photo, (1, 3), axis=(1, 2)))
        assert (result[1] == opencv_filter(tmp_path / "shifted.png", parse_kernel(kernel),
                                           pad)).all()


@pytest.mark.parametrize("border, opencv_border", [
    ("reflect-101", cv2.BORDER_REFLECT_101),       # OpenCV's default
    ("replicate", cv2.BORDER_REPLICATE),
])
def test_simulate_colour_border_modes_match_opencv(tmp_path, capsys, photo, border,
                                                   opencv_border):
    save_rgb(tmp_path / "photo.png", photo)
    status, _, _ = run_cli(capsys, "simulate", "--input", tmp_path / "photo.png", "--kernel",
                           ODD_KERNEL, "--padding", "same", "--border", border, "--output",
                           tmp_path / "out.npy")
    rgb = cv2.cvtColor(cv2.imread(str(tmp_path / "photo.png")), cv2.COLOR_BGR2RGB)
    expected = cv2.filter2D(rgb.astype(np.float64), cv2.CV_64F, parse_kernel(ODD_KERNEL)
                            .astype(np.float64), borderType=opencv_border)
    assert status == 0
    assert (np.load(tmp_path / "out.npy") == np.moveaxis(np.rint(expected), -1, 0)).all()


def test_simulate_rgba_drops_alpha(tmp_path, capsys, photo):
    alpha = np.random.default_rng(3).integers(0, 256, (1, 30, 40))
    save_rgb(tmp_path / "rgba.png", np.vstack([photo, alpha]), "RGBA")
    save_rgb(tmp_path / "rgb.png", photo)
    for name in ("rgba", "rgb"):
        status, _, _ = run_cli(capsys, "simulate", "--input", tmp_path / f"{name}.png",
                               "--kernel", "laplacian", "--output", tmp_path / f"{name}.npy")
        assert status == 0
    assert np.load(tmp_path / "rgba.npy").shape == (3, 28, 38)
    assert (np.load(tmp_path / "rgba.npy") == np.load(tmp_path / "rgb.npy")).all()


def test_simulate_writes_colour_pictures(tmp_path, capsys, photo):
    save_rgb(tmp_path / "photo.png", photo)
    spec = ConvSpec(width=40, height=30, kernel=parse_kernel("sharpen"), in_channels=3,
                    padding="same")
    exact = run_spec(spec, photo)
    assert exact.min() < 0 and exact.max() > 255          # the clip below is not a no-op
    status, out, _ = run_cli(capsys, "simulate", "--input", tmp_path / "photo.png", "--kernel",
                             "sharpen", "--padding", "same", "--output", tmp_path / "sharp.png",
                             "--frames", 2)
    assert status == 0 and "wrote" in out
    for name in ("sharp.png", "sharp-1.png"):
        mode, picture = read_picture(tmp_path / name)
        assert mode == "RGB" and picture.shape == (30, 40, 3)
    # Gain 1: the sharpened photo as it is, clipped; readable by OpenCV as the same colours.
    clipped = np.clip(exact, 0, 255)
    assert (load_frame(str(tmp_path / "sharp.png")) == clipped).all()
    bgr = cv2.imread(str(tmp_path / "sharp.png"), cv2.IMREAD_COLOR)
    assert (np.moveaxis(bgr[..., ::-1], -1, 0) == clipped).all()
    # An edge filter: |v| stretched once over the three channels.
    status, _, _ = run_cli(capsys, "simulate", "--input", tmp_path / "photo.png", "--kernel",
                           "sobel-y", "--padding", "same", "--output", tmp_path / "edges.png")
    edges = np.abs(run_spec(spec.replace(kernel=parse_kernel("sobel-y")), photo))
    stretched = load_frame(str(tmp_path / "edges.png"))
    assert status == 0 and stretched.shape == (3, 30, 40)
    assert stretched.max() == 255 and (stretched[edges == edges.min()] == 0).all()
    assert (stretched == (2 * 255 * (edges - edges.min()) + (edges.max() - edges.min()))
            // (2 * (edges.max() - edges.min()))).all()


def test_simulate_gray_blur_picture_is_not_stretched(tmp_path, capsys):
    # A grayscale picture follows the same rule: a normalised blur keeps its levels.
    pixels = np.full((8, 9), 100, dtype=np.uint8)
    pixels[2:6, 3:7] = 140
    Image.fromarray(pixels).save(tmp_path / "g.png")
    status, _, _ = run_cli(capsys, "simulate", "--input", tmp_path / "g.png", "--kernel",
                           "gaussian3", "--shift", "4", "--output", tmp_path / "blur.png")
    _, blurred = read_picture(tmp_path / "blur.png")
    spec = ConvSpec(width=9, height=8, kernel=parse_kernel("gaussian3"), shift=4)
    assert status == 0 and (blurred == run_spec(spec, pixels.astype(int))).all()
    assert blurred.min() == 100 and blurred.max() == 140     # a stretch would give 0 and 255


@pytest.mark.parametrize("argv, message", [
    (["--kernel", "box3", "--in-channels", "1"],
     r"--in-channels: 1 does not match the input's 3 channels$"),
    (["--kernel", "box3", "--output", "{tmp}/o.pgm"],
     r"--output: .*o\.pgm: a \.pgm holds grayscale; write a colour picture as \.png"),
])
def test_colour_errors_one_line(tmp_path, capsys, photo, argv, message):
    save_rgb(tmp_path / "photo.png", photo)
    argv = [str(a).replace("{tmp}", str(tmp_path)) for a in argv]
    status, out, err = run_cli(capsys, "simulate", "--input", tmp_path / "photo.png", *argv)
    assert status == 2 and out == "" and len(err.splitlines()) == 1, err
    assert re.match(r"convhw: error: " + message, err.strip()), err


def test_picture_output_refused_for_other_channel_counts(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.ones((2, 5, 5), dtype=int))
    np.save(tmp_path / "g.npy", np.ones((5, 5), dtype=int))
    status, _, err = run_cli(capsys, "simulate", "--input", tmp_path / "x.npy", "--kernel",
                             "box3", "--output", tmp_path / "o.png")
    assert status == 2 and err.strip() == (
        "convhw: error: --output: a picture holds one channel (grayscale) or three (RGB), and "
        "this layer gives 2: write .npy")
    status, _, err = run_cli(capsys, "simulate", "--input", tmp_path / "g.npy", "--kernel",
                             "box3", "--in-channels", "3")
    assert status == 2 and err.strip() == (
        "convhw: error: --in-channels: 3, but --input is one channel (a 2-D frame of shape "
        "(5, 5))")


# --- generate and synth: the same core ------------------------------------------------------

SPEC_OPTIONS = ["--width", "16", "--height", "8", "--in-channels", "3", "--kernel", "gaussian3",
                "--shift", "4", "--padding", "same"]


def test_generate_in_channels_3_is_the_colour_core(tmp_path, capsys):
    status, _, _ = run_cli(capsys, "generate", "-o", tmp_path / "c.v", *SPEC_OPTIONS)
    assert status == 0
    expected = ConvSpec(width=16, height=8, kernel=parse_kernel("gaussian3"), in_channels=3,
                        shift=4, padding="same")
    assert expected.groups == 3 and expected.output_shape == (3, 8, 16)    # depthwise
    text = (tmp_path / "c.v").read_text()
    assert verilog_ports(text, "conv2d") == axis_ports(3 * 8, 3 * expected.out_bits)
    header = next(line for line in text.splitlines() if line.startswith("// Spec: "))
    assert json.loads(header[len("// Spec: "):]) == expected.to_dict()
    # simulate builds the same spec from a (3, H, W) picture and --kernel alone.
    parser_args = _parse(["simulate", "--input", "x.png"] + SPEC_OPTIONS[6:])
    assert spec_from_args(parser_args, frame_shape=(3, 8, 16)) == expected


def test_synth_in_channels_3_is_the_colour_core(monkeypatch, capsys):
    built = []

    def fake_synthesize(spec, target, **_):
        built.append((spec, target))
        raise synth_command.CliError("synth: stopped by the test")

    monkeypatch.setattr(synth_command, "synthesize_spec", fake_synthesize)
    status, _, err = run_cli(capsys, "synth", "--target", "ice40-up5k", *SPEC_OPTIONS)
    assert status == 2 and "stopped by the test" in err
    generate_spec = spec_from_args(_parse(["generate", "-o", "x.v"] + SPEC_OPTIONS))
    assert built == [(generate_spec, "ice40-up5k")]
    spec = built[0][0]
    assert verilog_ports(to_verilog(spec, name="conv2d"), "conv2d") == \
        axis_ports(3 * 8, 3 * spec.out_bits)


def _parse(argv):
    from convhw.cli import build_parser
    return build_parser().parse_args(argv)


# --- demo pictures ----------------------------------------------------------------------------

def test_demo_pictures():
    photo = demo_photo(64, 48)
    assert photo.shape == (3, 48, 64) and photo.dtype == np.int64
    assert photo.min() >= 0 and photo.max() <= 255
    assert (demo_photo(64, 48) == photo).all()
    assert np.std(photo.astype(float), axis=(1, 2)).min() > 20       # a photo, not a flat fill
    assert not (photo[0] == photo[1]).all()                          # in colour
    colour = demo_colour_image(64, 48)
    assert colour.shape == (3, 48, 64) and 0 <= colour.min() and colour.max() <= 255
    assert (colour == demo_colour_image(64, 48)).all()
    assert len({tuple(p) for p in colour.reshape(3, -1).T}) > 100     # many colours
    with pytest.raises(ValueError, match=r"^'height' must be a positive integer, not 0$"):
        demo_photo(4, 0)


def test_sample_photo_is_scikit_learns(tmp_path, monkeypatch):
    from sklearn.datasets import load_sample_image
    photo = sample_photo("china.jpg")                  # read without importing scikit-learn
    assert photo.shape == (427, 640, 3) and photo.dtype == np.uint8
    assert (photo == load_sample_image("china.jpg")).all()
    # Where the file is not found, scikit-learn's own loader reads it.
    (tmp_path / "__init__.py").write_text("")
    monkeypatch.setattr(images.importlib.util, "find_spec",
                        lambda name: type("Spec", (), {"origin": str(tmp_path / "__init__.py")}))
    assert (sample_photo("flower.jpg") == load_sample_image("flower.jpg")).all()


def test_sample_photo_without_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)      # as if it were not installed
    with pytest.raises(ModuleNotFoundError) as error:
        sample_photo()
    assert error.value.name == "sklearn"


# --- convhw demo ------------------------------------------------------------------------------

def test_demo_sharpens_the_photo(tmp_path, capsys):
    status, out, err = run_cli(capsys, "demo", "--output-dir", tmp_path, "--no-synth",
                               "--backend", "pysim", "--width", 32, "--height", 24)
    assert status == 0
    assert "colour: sharpen on china.jpg (scikit-learn's sample photo), 32x24, 3 channels" in out
    assert "  match: yes, bit-exact" in out and "scikit-learn is not installed" not in err
    photo = demo_photo(32, 24)
    spec = ConvSpec(width=32, height=24, kernel=parse_kernel("sharpen"), in_channels=3,
                    padding="same")
    exact = run_spec(spec, photo)
    assert exact.min() < 0 or exact.max() > 255
    assert (load_frame(str(tmp_path / "input-colour.png")) == photo).all()
    assert (np.load(tmp_path / "output-colour.npy") == exact).all()
    mode, picture = read_picture(tmp_path / "output-colour.png")
    assert mode == "RGB" and (np.moveaxis(picture, -1, 0) == np.clip(exact, 0, 255)).all()


def test_demo_without_scikit_learn_uses_a_procedural_picture(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)     # as if it were not installed
    status, out, err = run_cli(capsys, "demo", "--output-dir", tmp_path, "--no-synth",
                               "--backend", "pysim", "--width", 16, "--height", 12)
    assert status == 0 and "colour: sharpen on a procedural colour picture, 16x12" in out
    assert "convhw demo: note: scikit-learn is not installed (pip install scikit-learn" in err
    picture = demo_colour_image(16, 12)
    assert (load_frame(str(tmp_path / "input-colour.png")) == picture).all()
    spec = ConvSpec(width=16, height=12, kernel=parse_kernel("sharpen"), in_channels=3,
                    padding="same")
    assert (np.load(tmp_path / "output-colour.npy") == run_spec(spec, picture)).all()


def test_demo_colour_mismatch_exits_1(tmp_path, capsys, monkeypatch):
    real = demo_command.run_and_compare

    def colour_differs(spec, frames, *args, **kwargs):
        result, expected, report = real(spec, frames, *args, **kwargs)
        if getattr(spec, "in_channels", 1) == 3:
            report = dict(report, match=False, errors=["frame 0: made to differ by the test"])
        return result, expected, report

    monkeypatch.setattr(demo_command, "run_and_compare", colour_differs)
    status, out, _ = run_cli(capsys, "demo", "--output-dir", tmp_path, "--no-synth",
                             "--backend", "pysim", "--width", 8, "--height", 6)
    assert status == 1
    assert "match: yes, bit-exact with the golden model" in out       # the grayscale part
    assert "  match: NO" in out and "made to differ by the test" in out
    status, out, _ = run_cli(capsys, "demo", "--output-dir", tmp_path / "gray", "--no-synth",
                             "--backend", "pysim", "--width", 8, "--height", 6, "--no-colour")
    assert status == 0 and "colour:" not in out
    assert not (tmp_path / "gray" / "output-colour.png").exists()
