"""Frames in and out of files, and the demo pictures.

Reading (:func:`load_frame`)
    ``.npy``: a 2-D (frame), 3-D (channels, height, width: a layer's feature map) or 1-D
    (sequence) array of integers, returned exactly.
    ``.png``, ``.pgm``/``.ppm``/``.pnm``, ``.bmp``, ``.tif``/``.tiff`` and (lossy, so the pixels
    are Pillow's decoding) ``.jpg``/``.jpeg``, read with Pillow:

    - grayscale, a 2-D ``(H, W)`` frame: 8-bit (mode ``L``), 16-bit (``I;16``, ``I``), 1-bit
      (``1``, read as 0/1), and ``LA`` (alpha dropped);
    - colour, a 3-D ``(3, H, W)`` frame, channels R, G, B (the order ``cv2.filter2D`` sees after
      ``cv2.cvtColor(image, cv2.COLOR_BGR2RGB)``): ``RGB``; ``RGBA`` and ``RGBX`` (alpha or
      padding dropped); palette images ``P`` and ``PA`` (each pixel looked up in its palette,
      which is exact; alpha dropped), three channels also when the palette is gray.

    Every other mode (``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, floating point ``F``, premultiplied
    ``RGBa``/``La``) is refused rather than converted, and so are 16-bit colour images, which
    Pillow can only read as 8 bits: the numbers that go through the hardware are the file's.

Writing (:func:`save_frame`)
    ``.npy``: the exact integers (``int64``; a stack of frames is a 3-D array).
    Image formats: a picture for people, not data. A 2-D array (or ``(1, H, W)``) is a grayscale
    picture, ``(3, H, W)`` an RGB one. The mapping to 8 bits is one of:

    - ``levels=(lo, hi)``: values clipped to ``lo..hi``, which maps linearly onto ``0..255``
      (rounded half up). ``(0, 255)`` writes 8-bit pixels as they are, clipped: what a filter
      that keeps the input's range (a normalised blur, a sharpen) should show;
    - otherwise ``|v|`` (edge filters give signed results whose magnitude is what an eye
      wants), stretched linearly from ``min|v|..max|v|`` over all channels to ``0..255``, rounded;
      a constant frame is written black (``stretch=False``: 8-bit pixels as they are, which must
      lie in ``0..255``).
"""

import importlib.util
import os

import numpy as np

__all__ = ["load_frame", "save_frame", "viewable", "demo_image", "demo_colour_image",
           "demo_photo", "sample_photo", "IMAGE_SUFFIXES", "INPUT_SUFFIXES"]

#: Picture formats that ``save_frame`` writes and ``load_frame`` reads.
IMAGE_SUFFIXES = (".png", ".pgm", ".ppm", ".pnm", ".bmp", ".tif", ".tiff")
#: Every format ``load_frame`` reads: ``.npy``, the picture formats and JPEG (read only).
INPUT_SUFFIXES = (".npy",) + IMAGE_SUFFIXES + (".jpg", ".jpeg")
_GRAY_MODES = {"L", "I;16", "I;16B", "I;16L", "I", "1"}
#: Colour modes read as RGB, and how: the first three bands, or a palette lookup.
_RGB_BANDS = {"RGB", "RGBA", "RGBX"}
_PALETTE_MODES = {"P", "PA"}


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


def _raw_modes(image):
    """The raw modes of ``image``'s tiles (before loading): ``RGB;16B`` for a 48-bit PNG."""
    modes = []
    for tile in getattr(image, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        raw = args[0] if isinstance(args, tuple) and args else args
        if isinstance(raw, str):
            modes.append(raw)
    return modes


def _load_image(path):
    Image = _pillow()
    try:
        with Image.open(path) as image:
            wide = [raw for raw in _raw_modes(image) if "16" in raw]
            if image.mode not in _GRAY_MODES and wide:
                raise ValueError(f"{path}: is a 16-bit {image.mode} image ({wide[0]}), which "
                                 f"Pillow reads as 8 bits; save its pixels as a .npy instead "
                                 f"(colour: (3, H, W))")
            image.load()
    except (OSError, SyntaxError) as error:  # Pillow raises SyntaxError for some broken files
        raise ValueError(f"{path}: not a readable image ({error})")
    if image.mode in _GRAY_MODES:
        return np.array(image).astype(np.int64)
    if image.mode == "LA":
        return np.array(image)[..., 0].astype(np.int64)
    if image.mode in _PALETTE_MODES:
        image = image.convert("RGB")
    if image.mode in _RGB_BANDS:
        pixels = np.array(image)[..., :3]
        return np.ascontiguousarray(np.moveaxis(pixels, -1, 0)).astype(np.int64)
    raise ValueError(f"{path}: is a {image.mode} image; convhw reads grayscale (L, I;16, I, 1, "
                     f"LA) and colour (RGB, RGBA, RGBX, P, PA) images; convert it first, e.g. "
                     f"Image.open(p).convert('RGB')")


def load_frame(path):
    """A 2-D frame, 3-D ``(C, H, W)`` feature map or 1-D sequence of integers (``int64``).

    A grayscale picture is a 2-D frame; a colour picture is ``(3, H, W)``, channels R, G, B
    (alpha dropped). See the module's docstring for the modes read.

    Raises
    ------
    ValueError
        For an unknown suffix, an unreadable file, an image mode that is neither grayscale nor
        colour as listed (CMYK, floating point, ...), a 16-bit colour image, or an array that
        is not 1-D, 2-D or 3-D integers. ``FileNotFoundError`` when ``path`` does not exist.
    """
    suffix = _suffix(path)
    if suffix not in INPUT_SUFFIXES:
        raise ValueError(f"{path}: unknown input format {suffix or '(no suffix)'!r}; "
                         f"use .npy or an image ({', '.join(INPUT_SUFFIXES[1:])})")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    if suffix == ".npy":
        return _load_npy(path)
    return _load_image(path)


def viewable(array, levels=None):
    """``uint8`` picture of ``array`` (exact integer arithmetic, rounded half up).

    ``levels=(lo, hi)``: values clipped to ``lo..hi``, mapped linearly onto ``0..255``.
    Otherwise ``|v|`` stretched from its ``min..max`` (over the whole array) to ``0..255``.
    A 1-D array becomes one row.
    """
    values = np.asarray(array).astype(object)
    if values.ndim == 1:
        values = values[np.newaxis, :]
    if levels is not None:
        lo, hi = (int(v) for v in levels)
        if not lo < hi:
            raise ValueError(f"'levels' must be (lo, hi) with lo < hi, not {levels!r}")
        values = np.minimum(np.maximum(values, lo), hi)
    else:
        values = np.abs(values)
        lo, hi = (values.min(), values.max()) if values.size else (0, 0)
        if hi == lo:
            return np.zeros(values.shape, dtype=np.uint8)
    return ((2 * 255 * (values - lo) + (hi - lo)) // (2 * (hi - lo))).astype(np.uint8)


def _picture_channels(path, array):
    """1 or 3: the channels of the picture ``array`` describes, or a ValueError."""
    if array.ndim in (1, 2):
        return 1
    if array.ndim == 3 and array.shape[0] in (1, 3):
        if array.shape[0] == 3 and _suffix(path) == ".pgm":
            raise ValueError(f"{path}: a .pgm holds grayscale; write a colour picture as .png, "
                             f".ppm, .bmp or .tif")
        return array.shape[0]
    raise ValueError(f"{path}: an image holds one 2-D frame, or (3, H, W) colour channels, not "
                     f"shape {array.shape}")


def save_frame(path, array, *, stretch=True, levels=None):
    """Write ``array`` to ``path``: exact for ``.npy``, a viewable 8-bit picture otherwise.

    Parameters
    ----------
    path : str or path-like
        ``.npy`` or a picture format (:data:`IMAGE_SUFFIXES`).
    array : array of int
        Pictures: ``(H, W)`` or ``(1, H, W)`` grayscale, ``(3, H, W)`` RGB, or 1-D (one row).
    levels : (int, int), optional
        Pictures: clip to ``lo..hi`` and map that range linearly onto ``0..255``.
    stretch : bool
        Pictures without ``levels``: ``|v|`` stretched from its ``min..max`` (default), or
        (``False``) the pixels as they are, which must then lie in ``0..255``.

    Raises
    ------
    ValueError
        For an unknown suffix, a shape no picture holds, values that do not fit ``.npy``
        (beyond 64 bits) or, with ``stretch=False``, 8 bits.
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
    channels = _picture_channels(path, array)
    if levels is not None or stretch:
        pixels = viewable(array, levels)
    elif array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"{path}: values {array.min()}..{array.max()} do not fit an 8-bit "
                         f"image; write it with stretch=True")
    else:
        pixels = np.atleast_2d(array).astype(np.uint8)
    if array.ndim == 3:
        pixels = pixels[0] if channels == 1 else np.ascontiguousarray(np.moveaxis(pixels, 0, -1))
    _pillow().fromarray(pixels).save(path)


def _demo_shapes(width, height):
    """Coordinates ``u, v`` (0..1) and the masks of the demo pictures' shapes."""
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"'{name}' must be a positive integer, not {value!r}")
    y, x = np.mgrid[0:height, 0:width].astype(float)
    u, v = x / max(width - 1, 1), y / max(height - 1, 1)
    aspect = height / max(width, 1)  # distances in units of the width: round shapes
    disc = np.hypot(u - 0.33, (v - 0.5) * aspect) < 0.18
    ring = np.abs(np.hypot(u - 0.75, (v - 0.35) * aspect) - 0.12) < 0.025
    bar = (np.abs(u - 0.7) < 0.2) & (np.abs(v - 0.82) < 0.06)
    checker = ((x // 4 + y // 4) % 2 == 0) & (u < 0.15) & (v > 0.75)
    return u, v, (disc, ring, bar, checker)


def demo_image(width, height):
    """A procedural 8-bit test picture: a gradient, a disc, a ring, a bar and a checker patch.

    Its straight and curved edges of several strengths make Sobel, Laplacian and blur kernels
    show what they do. Deterministic; nothing is downloaded.
    """
    u, _, shapes = _demo_shapes(width, height)
    image = 40 + 80 * u                                        # horizontal gradient
    for mask, level in zip(shapes, (220.0, 10.0, 170.0, 250.0)):  # disc, ring, bar, checker
        image = np.where(mask, level, image)
    return np.clip(np.round(image), 0, 255).astype(np.int64)


def demo_colour_image(width, height):
    """The shapes of :func:`demo_image` in colour, ``(3, height, width)`` 8-bit RGB.

    A red disc, a green ring, a blue bar and a yellow checker patch on a two-way colour
    gradient. Deterministic; nothing is downloaded.
    """
    u, v, shapes = _demo_shapes(width, height)
    image = np.stack([40 + 150 * u, 50 + 120 * v, 190 - 130 * u])
    colours = ((220, 40, 40), (30, 190, 70), (40, 80, 220), (250, 230, 20))
    for mask, colour in zip(shapes, colours):
        image = np.where(mask, np.array(colour, dtype=float)[:, None, None], image)
    return np.clip(np.round(image), 0, 255).astype(np.int64)


def sample_photo(name="china.jpg"):
    """``(H, W, 3)`` ``uint8`` pixels of a photo that ships with scikit-learn (``china.jpg``,
    ``flower.jpg``): ``sklearn.datasets.load_sample_image(name)``.

    The file is read with Pillow where scikit-learn keeps it, without importing scikit-learn
    (which takes a second or two); the result is the same. ``load_sample_image`` does the work
    when the file is not there.

    Raises
    ------
    ModuleNotFoundError
        When scikit-learn is not installed (it is in convhw's ``test`` extra).
    """
    try:
        found = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        found = None
    if found is None or not found.origin:
        raise ModuleNotFoundError("No module named 'sklearn'", name="sklearn")
    path = os.path.join(os.path.dirname(found.origin), "datasets", "images", name)
    if os.path.isfile(path):
        with _pillow().open(path) as photo:
            return np.array(photo.convert("RGB"))
    from sklearn.datasets import load_sample_image
    return load_sample_image(name)


def demo_photo(width, height, name="china.jpg"):
    """A photo that ships with scikit-learn, ``(3, height, width)`` 8-bit RGB (int64).

    The largest centred crop of :func:`sample_photo` ``name`` (640x427) with the aspect
    ``width:height``, resized with Pillow's box filter (an area average). Nothing is downloaded.

    Raises
    ------
    ModuleNotFoundError
        When scikit-learn is not installed (it is in convhw's ``test`` extra).
    """
    _demo_shapes(width, height)  # validates the size
    photo = sample_photo(name)
    rows, cols = photo.shape[:2]
    if cols * height > rows * width:          # wider than asked: crop the sides
        crop_rows, crop_cols = rows, max(1, round(rows * width / height))
    else:
        crop_rows, crop_cols = max(1, round(cols * height / width)), cols
    top, left = (rows - crop_rows) // 2, (cols - crop_cols) // 2
    crop = np.ascontiguousarray(photo[top:top + crop_rows, left:left + crop_cols, :3])
    Image = _pillow()
    small = Image.fromarray(crop).resize((width, height), Image.Resampling.BOX)
    return np.ascontiguousarray(np.moveaxis(np.array(small), -1, 0)).astype(np.int64)
