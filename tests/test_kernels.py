"""Named kernels and ``--kernel`` parsing."""

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy import ndimage

from convhw.kernels import NAMED_KERNELS, parse_kernel


def test_required_names_present():
    for name in ("identity", "box3", "box5", "gaussian3", "gaussian5", "sobel-x", "sobel-y",
                 "laplacian", "sharpen", "emboss"):
        kernel = parse_kernel(name)
        assert kernel.dtype == np.int64 and kernel.ndim == 2


def test_named_values():
    assert parse_kernel("sobel-x").tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert (parse_kernel("sobel-y") == parse_kernel("sobel-x").T).all()
    assert parse_kernel("gaussian3").sum() == 16 and parse_kernel("gaussian5").sum() == 256
    assert parse_kernel("gaussian5")[2].tolist() == [6, 24, 36, 24, 6]
    assert (parse_kernel("box5") == 1).all() and parse_kernel("box5").shape == (5, 5)
    assert parse_kernel("laplacian").sum() == 0 and parse_kernel("sharpen").sum() == 1
    assert parse_kernel("emboss").sum() == 1
    assert parse_kernel("binomial3").tolist() == [[1, 2, 1]]


def test_identity_and_sobel_match_scipy_meaning():
    # identity leaves a picture alone; sobel-x correlates like scipy's horizontal Sobel.
    image = np.random.default_rng(1).integers(0, 256, size=(7, 9))
    same = ndimage.correlate(image, parse_kernel("identity"), mode="constant")
    assert (same == image).all()
    expected = ndimage.sobel(image, axis=1, mode="constant")
    got = ndimage.correlate(image, parse_kernel("sobel-x"), mode="constant")
    assert (got == expected).all()


def test_names_are_case_insensitive_and_copies():
    kernel = parse_kernel(" Sobel-X ")
    kernel[0, 0] = 99
    assert NAMED_KERNELS["sobel-x"][0, 0] == -1


def test_inline_rows():
    assert parse_kernel("1,2,1;0,0,0;-1,-2,-1").tolist() == [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]
    assert parse_kernel("1 2; 3 4").tolist() == [[1, 2], [3, 4]]
    assert parse_kernel("+3, -4, 2.0").tolist() == [[3, -4, 2]]


def test_single_row_is_1xN():
    assert parse_kernel("1,2,1").shape == (1, 3)
    assert parse_kernel("7").shape == (1, 1)


def test_ragged_inline():
    with pytest.raises(ValueError, match=r"^kernel '1,2;3' is ragged: its rows have 1, 2 values"):
        parse_kernel("1,2;3")


def test_non_integer_inline():
    with pytest.raises(ValueError, match=r"^kernel value '1.5' at row 2, column 1 is not an "
                                         r"integer$"):
        parse_kernel("1,2;1.5,3")


def test_empty():
    with pytest.raises(ValueError, match=r"^kernel is empty"):
        parse_kernel("  ")
    with pytest.raises(ValueError, match=r"^kernel ';' is empty$"):
        parse_kernel(";")


def test_unknown_name():
    with pytest.raises(ValueError, match=r"^kernel 'gauss' is not a named kernel \(identity, "):
        parse_kernel("gauss")


def test_not_a_string():
    with pytest.raises(TypeError, match=r"^kernel must be given as a string, not \[1\]$"):
        parse_kernel([1])


def test_missing_file():
    with pytest.raises(ValueError, match=r"^kernel file 'nope/k.npy' does not exist$"):
        parse_kernel("nope/k.npy")


def test_npy_files(tmp_path):
    path = tmp_path / "k.npy"
    np.save(path, np.array([[1, -2], [3, 4]], dtype=np.int16))
    assert parse_kernel(str(path)).tolist() == [[1, -2], [3, 4]]
    np.save(path, np.array([1.0, 2.0, 1.0]))
    assert parse_kernel(str(path)).tolist() == [[1, 2, 1]]
    np.save(path, np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match=r"must hold integers, not float64 values$"):
        parse_kernel(str(path))
    np.save(path, np.zeros((2, 2, 2), dtype=int))
    with pytest.raises(ValueError, match=r"must hold a non-empty 1-D or 2-D array, not shape "
                                         r"\(2, 2, 2\)$"):
        parse_kernel(str(path))
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"is not a readable \.npy array"):
        parse_kernel(str(path))


def test_text_files(tmp_path):
    path = tmp_path / "k.txt"
    path.write_text("# a Sobel kernel\n-1, 0, 1\n-2 0 2   # middle row\n\n-1,0,1\n")
    assert parse_kernel(str(path)).tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    path.write_text("1 2 3\n4 5\n")
    with pytest.raises(ValueError, match=r"^kernel file '.*k\.txt' is ragged"):
        parse_kernel(str(path))
    path.write_text("1 x 3\n")
    with pytest.raises(ValueError, match=r"^kernel value 'x' at row 1, column 2 is not a number$"):
        parse_kernel(str(path))
    path.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ValueError, match=r"is not a text file"):
        parse_kernel(str(path))


@given(st.lists(st.lists(st.integers(-10**12, 10**12), min_size=3, max_size=3), min_size=1,
                max_size=4),
       st.sampled_from([",", ", ", " ", "\t"]))
def test_inline_round_trip(rows, separator):
    text = ";".join(separator.join(str(v) for v in row) for row in rows)
    assert parse_kernel(text).tolist() == rows
