"""The byte layouts, CRC, spec fingerprint and flow-control window of the board protocol."""

import numpy as np
import pytest

from convhw.board import protocol
from convhw.board.protocol import Status
from convhw.spec import ConvSpec

SPEC = ConvSpec(width=8, height=6, kernel=[[1, 0, -1], [2, 0, -2], [1, 0, -1]], padding="same")
RUNTIME = ConvSpec(width=9, height=7, kernel_shape=(2, 3), coeff_bits=12, in_bits=10,
                   in_signed=True, stride=2)


def test_crc16_is_ccitt_false():
    assert protocol.crc16(b"123456789") == 0x29B1     # the catalogue's check value
    assert protocol.crc16(b"") == 0xFFFF


@pytest.mark.parametrize("bits, is_signed", [(1, False), (8, False), (8, True), (10, True),
                                             (20, True), (33, False), (60, True)])
def test_values_round_trip(bits, is_signed):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if is_signed else (0, (1 << bits) - 1)
    values = [lo, hi, 0, lo // 3, hi // 7]
    data = protocol.encode_values(np.array(values, dtype=object if bits > 62 else np.int64),
                                  bits, is_signed)
    assert len(data) == len(values) * protocol.value_bytes(bits)
    assert [int(v) for v in protocol.decode_values(data, bits, is_signed=is_signed)] == values


def test_values_are_little_endian_twos_complement():
    assert protocol.encode_values([-2, 0x1234], 16, True) == b"\xfe\xff\x34\x12"


def test_value_out_of_range_is_named():
    with pytest.raises(ValueError, match=r"^pixel 1 is 256, which does not fit 8-bit unsigned "
                                         r"\(0\.\.255\)$"):
        protocol.encode_values([0, 256], 8, False, what="pixel")
    with pytest.raises(TypeError, match=r"^pixels must be integers, not float64 values$"):
        protocol.encode_values([0.5], 8, False, what="pixel")


def test_header_layout():
    header = protocol.encode_header(SPEC)
    assert header[:3] == b"CV\x01"
    assert header[3:7] == bytes([8, 0, 6, 0])
    assert int.from_bytes(header[7:11], "little") == protocol.spec_id(SPEC)
    assert len(header) == protocol.header_length(SPEC) == 13
    assert int.from_bytes(header[-2:], "little") == protocol.crc16(header[:-2])


def test_runtime_header_carries_the_coefficients():
    kernel = np.array([[-2048, 2047, 0], [1, -1, 5]])
    header = protocol.encode_header(RUNTIME, kernel)
    assert len(header) == protocol.header_length(RUNTIME) == 11 + 6 * 2 + 2
    assert list(protocol.decode_values(header[11:23], 12)) == kernel.reshape(-1).tolist()


@pytest.mark.parametrize("spec, kernel, message", [
    (RUNTIME, None, r"^a runtime-coefficient spec needs 'kernel' for the header$"),
    (RUNTIME, np.zeros((3, 2), int), r"^'kernel' shape \(3, 2\) does not match the spec's "
                                     r"'kernel_shape' \(2, 3\)$"),
    (SPEC, np.zeros((3, 3), int), r"^'kernel' is only for runtime-coefficient specs"),
    (RUNTIME, np.full((2, 3), 4096), r"^coefficient 0 is 4096, which does not fit 12-bit signed"),
])
def test_bad_header_kernels(spec, kernel, message):
    with pytest.raises(ValueError, match=message):
        protocol.encode_header(spec, kernel)


def test_spec_id_follows_what_changes_the_bytes():
    assert protocol.spec_id(SPEC) == protocol.spec_id(SPEC.replace())
    assert protocol.spec_id(SPEC) != protocol.spec_id(SPEC.replace(flip=True))
    assert protocol.spec_id(SPEC) != protocol.spec_id(SPEC.replace(width=9))
    assert protocol.spec_id(RUNTIME) == protocol.spec_id(RUNTIME.replace(max_dsps=2))


def test_replies_round_trip():
    assert protocol.decode_accept(protocol.encode_accept(16, 200000)) == protocol.Accept(16, 200000)
    reject = protocol.Reject(Status.BAD_SPEC, 8, 6, 0xDEADBEEF, 5)
    assert protocol.decode_reject(protocol.encode_reject(5, 8, 6, 0xDEADBEEF, 5)) == reject
    assert protocol.decode_trailer(protocol.encode_trailer(0, 1, 2)) == \
        protocol.Trailer(Status.OK, 1, 2)
    with pytest.raises(ValueError, match=r"^unknown status code 99 from the board$"):
        protocol.decode_trailer(protocol.encode_trailer(99, 0, 0))


def test_pixels_needed_and_window():
    needed = protocol.pixels_needed(SPEC)
    # "same" 3x3: result (0, 0) needs row 0 and the first two pixels of row 1.
    assert needed[0] == SPEC.width + 2 and needed[-1] == SPEC.width * SPEC.height
    assert np.all(np.diff(needed) >= 0) and len(needed) == 48
    assert protocol.window_pixels(SPEC) == SPEC.width + 2
    assert protocol.rx_fifo_depth(SPEC) == 512 and protocol.rx_fifo_depth(SPEC, minimum=1) == 16


def test_frame_too_wide_for_a_fifo():
    wide = ConvSpec(width=40000, height=3, kernel=[[1], [1], [1]], in_bits=16)
    # Result (0, 0) needs two whole rows and one pixel: 80001 two-byte pixels.
    with pytest.raises(ValueError, match=r"^the board would need a 262144-byte receive FIFO to "
                                         r"hold 80001 pixels between results; at most 65536 "):
        protocol.rx_fifo_depth(wide)
