# amaranth: UnusedElaboratable=no
"""The whole board design (UART RX, protocol, Conv2d, UART TX) in the Amaranth simulator.

The host side is the real :class:`~convhw.board.host.BoardClient`, talking to the simulated pins
through :class:`~convhw.board.transport.SimulatedSerial`, whose bit-level UART model is separate
from the gateware's. The line runs at 4 clocks per bit so that pysim stays quick.
"""

import os
import re

import numpy as np
import pytest

from convhw.board import protocol
from convhw.board.accelerator import UARTAccelerator
from convhw.board.host import BoardClient, BoardError
from convhw.board.protocol import Status
from convhw.board.transport import SimulatedSerial
from convhw.golden import run_spec
from convhw.spec import ConvSpec

CLK, BAUD, TIMEOUT = 1e6, 250_000, 300e-6        # 4 clocks per bit, 300-cycle timeout
SOBEL = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
SOBEL_SPEC = ConvSpec(width=8, height=6, kernel=SOBEL, padding="same")


def board(spec, *, fifo_depth=None, **port_options):
    """A simulated board and a client for it; ``fifo_depth="min"`` uses the bare window."""
    if fifo_depth == "min":
        fifo_depth = protocol.rx_fifo_depth(spec, minimum=1)
    dut = UARTAccelerator(spec, clk_freq=CLK, baud=BAUD, timeout=TIMEOUT, fifo_depth=fifo_depth)
    port = SimulatedSerial(dut, clk_freq=CLK, baud=BAUD, timeout=0.05, **port_options)
    return dut, port, BoardClient(port, spec, timeout=TIMEOUT)


def image(spec, seed):
    lo, hi = spec.pixel_range
    return np.random.default_rng(seed).integers(lo, hi, size=spec.frame_shape, endpoint=True)


def check_frame(client, spec, frame, kernel=None):
    result = client.run_frame(frame, kernel)
    expected = run_spec(spec, frame, kernel) if kernel is not None else run_spec(spec, frame)
    np.testing.assert_array_equal(result.output, expected)
    assert result.status == Status.OK and result.in_crc_ok and result.out_crc_ok and result.ok
    return result


def read_reply(port, length):
    data = port.read(length)
    assert len(data) == length, f"expected a {length}-byte reply, got {data!r}"
    return data


def test_round_trip_two_frames_bit_exact():
    spec = SOBEL_SPEC
    dut, port, client = board(spec, fifo_depth="min")      # a 16-pixel window: pacing matters
    with port:
        assert dut.window == 16 < spec.width * spec.height
        first = check_frame(client, spec, image(spec, 1))
        check_frame(client, spec, image(spec, 2))
        assert port.line_errors == []
        assert port.peek(dut.error) == 0 and port.peek(dut.busy) == 0
    out_bytes = protocol.value_bytes(spec.out_bits)
    assert first.bytes_received == protocol.ACCEPT_LEN + 48 * out_bytes + protocol.TRAILER_LEN
    assert first.pixels_per_second > 0


def test_runtime_coefficients_two_kernels_and_wide_pixels():
    # Signed 10-bit pixels and coefficients (2 bytes each), 3-byte results; stride 2 and
    # padding 1, so results come at irregular pixel counts and the host's pacing follows them.
    spec = ConvSpec(width=9, height=7, kernel_shape=(3, 3), stride=2, padding=1, in_bits=10,
                    in_signed=True, coeff_bits=10)
    dut, port, client = board(spec, fifo_depth="min")
    with port:
        for seed, kernel in ((3, [[-512, 511, 0], [1, -1, 300], [7, 0, -9]]),
                             (4, [[0, 0, 0], [0, 1, 0], [0, 0, 0]])):
            check_frame(client, spec, image(spec, seed), np.array(kernel))


def test_bad_magic_rejected_then_board_resynchronizes():
    spec = SOBEL_SPEC
    dut, port, client = board(spec)
    with port:
        port.write(b"XY" + protocol.encode_header(spec)[2:] + bytes(range(20)))
        reject = protocol.decode_reject(read_reply(port, protocol.REJECT_LEN))
        assert reject == protocol.Reject(Status.BAD_MAGIC, spec.width, spec.height,
                                         protocol.spec_id(spec), round(TIMEOUT * 1e6))
        assert port.peek(dut.error) == 1
        client.resync()
        check_frame(client, spec, image(spec, 5))
        assert port.peek(dut.error) == 0


@pytest.mark.parametrize("change, code", [
    (lambda header: header[:-1] + bytes([header[-1] ^ 0x40]), Status.BAD_CRC),
    (lambda header: header[:2] + b"\x09" + header[3:], Status.BAD_VERSION),
])
def test_corrupt_header_is_rejected_with_its_reason(change, code):
    spec = SOBEL_SPEC
    dut, port, client = board(spec)
    with port:
        port.write(change(protocol.encode_header(spec)))
        assert protocol.decode_reject(read_reply(port, protocol.REJECT_LEN)).code == code
        client.resync()
        check_frame(client, spec, image(spec, 6))


def test_header_for_another_spec_or_size_names_both():
    spec = SOBEL_SPEC
    dut, port, client = board(spec)
    with port:
        other = BoardClient(port, spec.replace(kernel=[[1, 2, 1], [0, 0, 0], [-1, -2, -1]]),
                            timeout=TIMEOUT)
        with pytest.raises(BoardError, match=r"rejected the header: the header's spec differs .*"
                                             r"built for 8x6, spec id [0-9a-f]{8}"):
            other.run_frame(image(spec, 7))
        client.resync()
        bigger = BoardClient(port, spec.replace(width=9), timeout=TIMEOUT)
        with pytest.raises(BoardError, match=re.escape("frame size differs")):
            bigger.run_frame(image(spec.replace(width=9), 7))


def test_truncated_header_times_out_with_an_error_reply():
    spec = SOBEL_SPEC
    dut, port, client = board(spec)
    with port:
        port.write(protocol.encode_header(spec)[:6])
        assert protocol.decode_reject(read_reply(port, protocol.REJECT_LEN)).code == \
            Status.TIMEOUT
        client.resync()
        check_frame(client, spec, image(spec, 8))


def test_truncated_frame_is_finished_with_zeros_then_board_recovers():
    spec = SOBEL_SPEC
    dut, port, client = board(spec)
    frame = image(spec, 9)
    sent = 21
    with port:
        port.write(protocol.encode_header(spec))
        protocol.decode_accept(read_reply(port, protocol.ACCEPT_LEN))
        port.write(protocol.encode_pixels(spec, frame)[:sent])      # then the host goes quiet
        out_bytes = protocol.value_bytes(spec.out_bits)
        results = read_reply(port, 48 * out_bytes)
        trailer = protocol.decode_trailer(read_reply(port, protocol.TRAILER_LEN))
        assert trailer.status == Status.TIMEOUT
        assert trailer.in_crc == protocol.crc16(protocol.encode_pixels(spec, frame)[:sent])
        assert trailer.out_crc == protocol.crc16(results)
        zero_filled = frame.copy().reshape(-1)
        zero_filled[sent:] = 0
        np.testing.assert_array_equal(
            protocol.decode_values(results, spec.out_bits).reshape(spec.out_shape),
            run_spec(spec, zero_filled.reshape(spec.frame_shape)))
        assert port.peek(dut.error) == 1
        client.resync()
        check_frame(client, spec, frame)


def test_host_ignoring_the_window_overflows_and_is_told():
    # Results take 2 bytes per pixel, so the 16-byte FIFO fills when the host does not pace.
    spec = SOBEL_SPEC.replace(height=16)
    dut, port, client = board(spec, fifo_depth="min")
    with port:
        port.write(protocol.encode_header(spec))
        protocol.decode_accept(read_reply(port, protocol.ACCEPT_LEN))
        port.write(protocol.encode_pixels(spec, image(spec, 10)))
        read_reply(port, 128 * protocol.value_bytes(spec.out_bits))
        trailer = protocol.decode_trailer(read_reply(port, protocol.TRAILER_LEN))
        assert trailer.status == Status.OVERFLOW
        client.resync()
        check_frame(client, spec, image(spec, 11))


def test_reset_button_recovers_a_board_stuck_mid_frame():
    spec = SOBEL_SPEC
    dut, port, client = board(spec)
    with port:
        port.write(protocol.encode_header(spec) + b"\x01\x02\x03")
        protocol.decode_accept(read_reply(port, protocol.ACCEPT_LEN))
        assert port.peek(dut.busy) == 1
        port.drive(dut.reset, 1)
        port.drive(dut.reset, 0)
        assert port.peek(dut.busy) == 0
        check_frame(client, spec, image(spec, 12))     # no resync needed after a reset


def test_host_baud_two_percent_off_still_works():
    spec = SOBEL_SPEC
    dut, port, client = board(spec, host_clocks_per_bit=CLK / BAUD * 1.02)
    with port:
        check_frame(client, spec, image(spec, 13))


def test_fractional_clocks_per_bit_as_on_the_ulx3s():
    spec = SOBEL_SPEC.replace(height=3)
    clk, baud = 2.5e6, 300_000                          # 25 MHz / 3 Mbaud, scaled: 8 1/3
    dut = UARTAccelerator(spec, clk_freq=clk, baud=baud, timeout=TIMEOUT)
    with SimulatedSerial(dut, clk_freq=clk, baud=baud, timeout=0.05) as port:
        check_frame(BoardClient(port, spec, timeout=TIMEOUT), spec, image(spec, 14))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_garbage_never_hangs_the_board(seed):
    # Noise, headers cut anywhere, frames cut anywhere, pauses: afterwards a resync always
    # brings the board back.
    spec = SOBEL_SPEC.replace(height=4)
    rng = np.random.default_rng(seed)
    good = protocol.encode_header(spec) + protocol.encode_pixels(spec, image(spec, seed))
    dut, port, client = board(spec)
    with port:
        for _ in range(4):
            kind = rng.integers(3)
            if kind == 0:
                chunk = rng.integers(0, 256, size=rng.integers(1, 24)).astype(np.uint8).tobytes()
            else:
                chunk = good[:rng.integers(1, len(good))]
                if kind == 2:
                    chunk = bytes(b ^ (1 << rng.integers(8)) if rng.random() < 0.05 else b
                                  for b in chunk)
            port.write(chunk)
            port.flush()
            port.sleep(rng.integers(0, 2) * 2 * TIMEOUT)
        client.resync()
        check_frame(client, spec, image(spec, 100 + seed))


def test_activity_led_lights_on_traffic():
    dut, port, client = board(SOBEL_SPEC)
    with port:
        assert port.peek(dut.activity) == 0
        port.write(b"\x00")
        port.sleep(60e-6)
        assert port.peek(dut.activity) == 1


@pytest.mark.parametrize("kwargs, error, message", [
    ({"spec": "sobel"}, TypeError, r"^'spec' must be a ConvSpec or a ChainSpec, not 'sobel'$"),
    ({"timeout": 0}, ValueError, r"^'timeout' must be a positive number of seconds, not 0$"),
    ({"timeout": 50e-6}, ValueError, r"^'timeout' 5e-05 s is shorter than 4 byte times at "
                                     r"250000 baud \(0\.00016 s\)$"),
    ({"baud": 300_000}, ValueError, r"^'baud' 300000 is too fast for a 1e\+06 Hz clock"),
    ({"fifo_depth": 8}, ValueError, r"^'fifo_depth' must be from 16 \(this spec's window\) to "
                                    r"65536 bytes, not 8$"),
    ({"fifo_depth": 16.0}, TypeError, r"^'fifo_depth' must be an integer, not 16\.0$"),
])
def test_accelerator_rejects_bad_parameters(kwargs, error, message):
    args = dict(spec=SOBEL_SPEC, clk_freq=CLK, baud=BAUD, timeout=TIMEOUT)
    args.update(kwargs)
    spec = args.pop("spec")
    with pytest.raises(error, match=message):
        UARTAccelerator(spec, **args)


def test_frame_too_wide_for_the_protocol():
    with pytest.raises(ValueError, match=r"frame sizes up to 65535, not width 70000"):
        UARTAccelerator(ConvSpec(width=70000, height=2, kernel=[[1]]), clk_freq=CLK, baud=BAUD,
                        timeout=TIMEOUT)


class _SilentPort:
    """A serial port with nothing on the other end."""
    timeout = 0.01

    def write(self, data):
        return len(data)

    def read(self, size):
        return b""


def test_client_says_when_no_board_answers():
    client = BoardClient(_SilentPort(), SOBEL_SPEC)
    with pytest.raises(BoardError, match=r"^timed out waiting for the board's answer to the "
                                         r"header: got 0 of 1 bytes\. Is the bitstream loaded"):
        client.run_frame(image(SOBEL_SPEC, 0))


@pytest.mark.parametrize("spec, timeout, error, message", [
    ("sobel", 0.1, TypeError, r"^'spec' must be a ConvSpec or a ChainSpec, not 'sobel'$"),
    (SOBEL_SPEC, 0, ValueError, r"^'timeout' must be a positive number of seconds, not 0$"),
])
def test_client_rejects_bad_parameters(spec, timeout, error, message):
    with pytest.raises(error, match=message):
        BoardClient(_SilentPort(), spec, timeout=timeout)


def test_the_docs_python_example_runs(capsys):
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "boards.md")) as f:
        docs = f.read()
    section = docs[docs.index("From Python, with pyserial"):]
    start = section.index("```python\n") + len("```python\n")
    exec(section[start:section.index("\n```", start)], {"__name__": "docs_example"})
    assert capsys.readouterr().out.startswith("True [[")
