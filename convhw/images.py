"""Frames in and out of files, and the procedural demo image.

Reading (:func:`load_frame`)
    ``.npy``: a 2-D (frame), 3-D (channels, height, width: a layer's feature map) or 1-D
    (sequence) array of integers, returned exactly.
    ``.png``, ``.pgm``/``.pnm``, ``.bmp``, ``.tif``/``.tiff`` (Pillow): grayscale only, 8-bit
    (mode ``L``), 16-bit (``I;16``, ``I``) or 1-bit (``1``, read as 0/1). Colour or palette
    images are rejected rather than converted, so the numbers that go through the hardware are
    always exactly the file's; convert them first (``Image.open(p).convert("L")``).

Writing (:func:`save_frame`)
    ``.npy``: the exact integers (``int64``; a stack of frames is a 3-D array).
    Image formats: a picture for people, not data (``stretch=False``: 8-bit pixels as they are).
    The mapping is ``|v|`` (edge filters give
    signed results whose magnitude is what an eye wants), then a linear stretch of
    ``min|v|..max|v|`` to ``0..255``, rounded; a constant frame is written black.
"""

import os

import numpy as np

__all__ = ["load_frame", "save_frame", "demo_image", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".pgm", ".pnm", ".bmp", ".tif", ".tiff")
_GRAY_MODES = {"L", "I;16", "I;16B", "I;16L", "I", "1"}


def _suffix(path):
    return os.path.splitext(str(path))[1].lower()


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ValueError("reading and writing images needs Pillow: pip install 'convhw[image]'")
    return Image


def _load_npy(path):
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"{path}: not a readable .npy array ({error})")
    if array.ndim not in (1, 2, 3):
        raise ValueError(f"{path}: must hold a 2-D frame, a 3-D (channels, height, width) "
                         f"feature map or a 1-D sequence of integers, not a {array.ndim}-D "
                         f"array of shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise ValueError(f"{path}: must hold integers, not {array.dtype} values")
    if array.size == 0:
        raise ValueError(f"{path}: is empty (shape {array.shape})")
    return array.astype(np.int64)


def _load_image(path):
    Image = _pillow()
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError) as error:  # Pillow raises SyntaxError for some broken files
        raise ValueError(f"{path}: not a readable image ({error})")
    if image.mode not in _GRAY_MODES:
        raise ValueError(f"{path}: is a {image.mode} image; convhw reads grayscale images only "
                         f"(modes L, I;16, I, 1); convert it, e.g. Image.open(p).convert('L')")
    array = np.array(image)
    return array.astype(np.int64)


def load_frame(path):
    """A 2-D frame, 3-D feature map or 1-D sequence of integers (``int64``) from ``path``.

    Raises
    ------
    ValueError
        For an unknown suffix, an unreadable file, a colour image, or an array that is not 1-D,
        2-D or 3-D integers. ``FileNotFoundError`` when ``path`` does not exist.
    """
    suffix = _suffix(path)
    if suffix not in (".npy",) + IMAGE_SUFFIXES:
        raise ValueError(f"{path}: unknown input format {suffix or '(no suffix)'!r}; "
                         f"use .npy or a grayscale image ({', '.join(IMAGE_SUFFIXES)})")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    if suffix == ".npy":
        return _load_npy(path)
    return _load_image(path)


def viewable(array):
    """``uint8`` picture of ``array``: ``|v|`` stretched from ``min..max`` to ``0..255``, rounded
    half up (exact integer arithmetic)."""
    magnitude = np.abs(np.asarray(array).astype(object))
    if magnitude.ndim == 1:
        magnitude = magnitude[np.newaxis, :]
    lo, hi = magnitude.min(), magnitude.max()
    if hi == lo:
        return np.zeros(magnitude.shape, dtype=np.uint8)
    return ((2 * 255 * (magnitude - lo) + (hi - lo)) // (2 * (hi - lo))).astype(np.uint8)


def save_frame(path, array, *, stretch=True):
    """Write ``array`` to ``path``: exact for ``.npy``, a viewable 8-bit picture otherwise.

    ``stretch=False`` writes an image's pixels as they are; they must then lie in ``0..255``.
    """
    suffix = _suffix(path)
    array = np.asarray(array)
    if suffix == ".npy":
        try:
            array = array.astype(np.int64)
        except OverflowError:
            raise ValueError(f"{path}: values beyond 64-bit integers cannot go in a .npy file "
                             f"without pickling; requantize with --shift/--out-bits")
        np.save(path, array, allow_pickle=False)
        return
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: unknown output format {suffix or '(no suffix)'!r}; "
                         f"use .npy or an image ({', '.join(IMAGE_SUFFIXES)})")
    if array.ndim not in (1, 2):
        raise ValueError(f"{path}: an image holds one 2-D frame, not shape {array.shape}")
    if stretch:
        pixels = viewable(array)
    elif array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"{path}: values {array.min()}..{array.max()} do not fit an 8-bit "
                         f"image; write it with stretch=True")
    else:
        pixels = np.atleast_2d(array).astype(np.uint8)
    _pillow().fromarray(pixels).save(path)


def demo_image(width, height):
    """A procedural 8-bit test picture: a gradient, a disc, a ring, a bar and a checker patch.

    Its straight and curved edges of several strengths make Sobel, Laplacian and blur kernels
    show what they do. Deterministic; nothing is downloaded.
    """
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"'{name}' must be a positive integer, not {value!r}")
    y, x = np.mgrid[0:height, 0:width].astype(float)
    u, v = x / max(width - 1, 1), y / max(height - 1, 1)
    image = 40 + 80 * u                                        # horizontal gradient
    aspect = height / max(width, 1)  # distances in units of the width: round shapes
    radius = np.hypot(u - 0.33, (v - 0.5) * aspect)
    image = np.where(radius < 0.18, 220.0, image)              # bright disc
    ring = np.abs(np.hypot(u - 0.75, (v - 0.35) * aspect) - 0.12) < 0.025
    image = np.where(ring, 10.0, image)                        # dark ring
    bar = (np.abs(u - 0.7) < 0.2) & (np.abs(v - 0.82) < 0.06)
    image = np.where(bar, 170.0, image)                        # horizontal bar
    checker = ((x // 4 + y // 4) % 2 == 0) & (u < 0.15) & (v > 0.75)
    image = np.where(checker, 250.0, image)                    # fine checkerboard
    return np.clip(np.round(image), 0, 255).astype(np.int64)
