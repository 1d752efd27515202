"""Named kernels and the parsing of ``--kernel`` values.

:func:`parse_kernel` accepts a name from :data:`NAMED_KERNELS`, a ``.npy`` file, a text file
(numbers separated by whitespace or commas, one row per line, ``#`` starts a comment), or inline
rows such as ``"1,2,1;0,0,0;-1,-2,-1"`` (``;`` separates rows). It always returns a 2-D
``int64`` array: ``"1,2,1"`` is one row, shape ``(1, 3)``, which is also how a 1-D kernel is
written.

The named kernels are integer kernels, not normalised: a blur sums to a power of two, so
``--shift`` scales it back (``gaussian3`` sums to 16: ``--shift 4``; ``gaussian5`` to 256:
``--shift 8``). Sobel and the derivative are cross-correlation kernels: with the default
``flip=False`` a brightness step rising to the right (or downwards) gives a positive output.
"""

import os
import re

import numpy as np

__all__ = ["NAMED_KERNELS", "parse_kernel", "kernel_names"]


def _binomial(n):
    row = np.array([1])
    for _ in range(n - 1):
        row = np.convolve(row, [1, 1])
    return row


NAMED_KERNELS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "box3": np.ones((3, 3), dtype=np.int64),
    "box5": np.ones((5, 5), dtype=np.int64),
    "gaussian3": np.outer(_binomial(3), _binomial(3)),
    "gaussian5": np.outer(_binomial(5), _binomial(5)),
    "sobel-x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel-y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
    # Single-row kernels, for 1-D sequences (or horizontal 2-D filters).
    "derivative": [[-1, 0, 1]],
    "binomial3": [_binomial(3)],
    "binomial5": [_binomial(5)],
    "moving-average4": [[1, 1, 1, 1]],
}
NAMED_KERNELS = {name: np.array(value, dtype=np.int64) for name, value in NAMED_KERNELS.items()}
for _kernel in NAMED_KERNELS.values():
    _kernel.setflags(write=False)

_INLINE = re.compile(r"^[\s0-9+\-.,;eE]+$")


def kernel_names():
    """The named kernels, comma separated (for help texts and error messages)."""
    return ", ".join(NAMED_KERNELS)


def _integer(token, row, col):
    try:
        return int(token)
    except ValueError:
        pass
    try:
        value = float(token)
    except ValueError:
        raise ValueError(f"kernel value {token!r} at row {row}, column {col} is not a number")
    if not np.isfinite(value) or value != int(value):
        raise ValueError(f"kernel value {token!r} at row {row}, column {col} is not an integer")
    return int(value)


def _from_rows(rows, source):
    """A 2-D array from lists of tokens; ragged or empty input is an error naming ``source``."""
    rows = [row for row in rows if row]
    if not rows:
        raise ValueError(f"kernel {source} is empty")
    lengths = sorted({len(row) for row in rows})
    if len(lengths) > 1:
        raise ValueError(f"kernel {source} is ragged: its rows have {', '.join(map(str, lengths))} "
                         f"values; every row needs the same number")
    return np.array([[_integer(token, r + 1, c + 1) for c, token in enumerate(row)]
                     for r, row in enumerate(rows)], dtype=np.int64)


def _split_row(text):
    return [token for token in re.split(r"[\s,]+", text.strip()) if token]


def _from_npy(path):
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ValueError(f"kernel file {path!r} is not a readable .npy array: {error}")
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"kernel file {path!r} must hold a non-empty 1-D or 2-D array, "
                         f"not shape {array.shape}")
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"kernel file {path!r} must hold integers, not {array.dtype} values")
    return array.astype(np.int64)


def _from_text_file(path):
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"kernel file {path!r} is not a text file (or a .npy array)")
    rows = []
    for line in lines:
        line = line.split("#", 1)[0]
        rows += [_split_row(part) for part in line.split(";")]
    return _from_rows(rows, f"file {path!r}")


def parse_kernel(text):
    """A 2-D ``int64`` kernel from a name, a ``.npy`` or text file, or inline rows.

    Raises
    ------
    ValueError
        For an unknown name, a missing file, ragged rows, non-integers or an empty kernel, with
        a sentence naming the problem.
    """
    if not isinstance(text, str):
        raise TypeError(f"kernel must be given as a string, not {text!r}")
    stripped = text.strip()
    if stripped.lower() in NAMED_KERNELS:
        return NAMED_KERNELS[stripped.lower()].copy()
    if os.path.isfile(stripped):
        if stripped.lower().endswith(".npy"):
            return _from_npy(stripped)
        return _from_text_file(stripped)
    if not stripped:
        raise ValueError("kernel is empty: give a name, a file or inline rows like '1,2,1;2,4,2'")
    if _INLINE.match(stripped):
        return _from_rows([_split_row(row) for row in stripped.split(";")], repr(text))
    if os.sep in stripped or re.search(r"\.(npy|txt|csv|dat)$", stripped, re.IGNORECASE):
        raise ValueError(f"kernel file {stripped!r} does not exist")
    raise ValueError(f"kernel {text!r} is not a named kernel ({kernel_names()}), an existing "
                     f"file, or inline rows like '1,2,1;0,0,0;-1,-2,-1'")
