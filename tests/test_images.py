"""Frame files (.npy, grayscale images) and the procedural demo image (colour images:
tests/test_colour.py)."""

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from convhw.images import demo_image, load_frame, save_frame, viewable


def test_npy_round_trip_exact(tmp_path):
    frame = np.random.default_rng(0).integers(-(2**40), 2**40, size=(5, 7))
    save_frame(tmp_path / "f.npy", frame)
    loaded = load_frame(str(tmp_path / "f.npy"))
    assert loaded.dtype == np.int64 and (loaded == frame).all()


def test_npy_beyond_int64(tmp_path):
    with pytest.raises(ValueError, match=r"values beyond 64-bit integers"):
        save_frame(tmp_path / "big.npy", np.array([[2**70]], dtype=object))


def test_npy_sequence(tmp_path):
    np.save(tmp_path / "s.npy", np.arange(10, dtype=np.uint16))
    assert load_frame(str(tmp_path / "s.npy")).tolist() == list(range(10))


@pytest.mark.parametrize("array, message", [
    (np.zeros((2, 2, 3, 4), dtype=int), r"must hold a 2-D frame, a 3-D \(channels, height, width\) "
                                        r"feature map or a 1-D sequence of integers, not a 4-D "
                                        r"array of shape \(2, 2, 3, 4\)$"),
    (np.zeros((2, 3)), r"must hold integers, not float64 values$"),
    (np.zeros((2, 3), dtype=bool), r"must hold integers, not bool values$"),
    (np.zeros((0, 3), dtype=int), r"is empty \(shape \(0, 3\)\)$"),
])
def test_bad_npy(tmp_path, array, message):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(ValueError, match=message):
        load_frame(str(tmp_path / "x.npy"))


def test_unreadable_files(tmp_path):
    (tmp_path / "x.npy").write_text("not numpy")
    with pytest.raises(ValueError, match=r"not a readable \.npy array"):
        load_frame(str(tmp_path / "x.npy"))
    (tmp_path / "x.png").write_text("not a png")
    with pytest.raises(ValueError, match=r"x\.png: not a readable image"):
        load_frame(str(tmp_path / "x.png"))
    with pytest.raises(FileNotFoundError, match=r"missing\.png: no such file$"):
        load_frame(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match=r"unknown input format '\.jpg2'"):
        load_frame(str(tmp_path / "x.jpg2"))


@pytest.mark.parametrize("suffix", [".png", ".pgm"])
def test_grayscale_images_read_exactly(tmp_path, suffix):
    pixels = np.random.default_rng(2).integers(0, 256, size=(6, 9)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / f"g{suffix}")
    loaded = load_frame(str(tmp_path / f"g{suffix}"))
    assert loaded.dtype == np.int64 and (loaded == pixels).all()


def test_16_bit_png(tmp_path):
    pixels = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(pixels).save(tmp_path / "g16.png")
    assert load_frame(str(tmp_path / "g16.png")).tolist() == pixels.tolist()


@pytest.mark.parametrize("mode", ["CMYK", "F"])
def test_other_image_modes_rejected(tmp_path, mode):
    # Colour images are read (tests/test_colour.py); modes with no exact RGB meaning are not.
    Image.new(mode, (4, 3)).save(tmp_path / "c.tif")
    with pytest.raises(ValueError, match=rf"c\.tif: is a {mode} image; convhw reads grayscale "
                                         rf"\(L, I;16, I, 1, LA\) and colour \(RGB, RGBA, "
                                         rf"RGBX, P, PA\) images; convert it first"):
        load_frame(str(tmp_path / "c.tif"))


def test_png_output_mapping(tmp_path):
    frame = np.array([[-100, 0, 50], [100, 25, -25]])
    save_frame(tmp_path / "o.png", frame)
    written = np.array(Image.open(tmp_path / "o.png"))
    assert written.dtype == np.uint8
    assert written.tolist() == [[255, 0, 128], [255, 64, 64]]  # |v| stretched 0..100 -> 0..255
    assert viewable(np.full((2, 2), 7)).tolist() == [[0, 0], [0, 0]]


def test_png_without_stretch(tmp_path):
    frame = np.array([[0, 7, 255]])
    save_frame(tmp_path / "raw.png", frame, stretch=False)
    assert np.array(Image.open(tmp_path / "raw.png")).tolist() == [[0, 7, 255]]
    with pytest.raises(ValueError, match=r"values -1\.\.3 do not fit an 8-bit image"):
        save_frame(tmp_path / "raw.png", np.array([[-1, 3]]), stretch=False)


def test_sequence_png_is_one_row(tmp_path):
    save_frame(tmp_path / "s.png", np.arange(5))
    assert np.array(Image.open(tmp_path / "s.png")).shape == (1, 5)


def test_bad_output_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"unknown output format '\.txt'"):
        save_frame(tmp_path / "o.txt", np.zeros((2, 2), dtype=int))


def test_demo_image():
    image = demo_image(128, 96)
    assert image.shape == (96, 128) and image.dtype == np.int64
    assert image.min() >= 0 and image.max() <= 255
    assert (demo_image(128, 96) == image).all()          # deterministic
    assert len(np.unique(image)) > 50                     # a gradient, not a few flat levels
    edges = np.abs(ndimage.sobel(image.astype(float), axis=1))
    assert (edges > 200).sum() > 100                      # strong edges for Sobel to find
    assert demo_image(1, 1).shape == (1, 1)
    with pytest.raises(ValueError, match=r"^'width' must be a positive integer, not 0$"):
        demo_image(0, 5)
