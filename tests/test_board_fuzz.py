# amaranth: UnusedElaboratable=no
"""Board protocol fuzzing: random and mutated byte streams through the whole board design in the
Amaranth simulator (at 4 clocks per bit, as in tests/test_board.py).

:func:`test_fuzzed_bursts_then_a_valid_request`: hypothesis builds bursts out of random bytes,
headers cut anywhere, headers with a wrong byte (magic, version, size, spec id, coefficients,
CRC), headers for another spec, whole requests cut anywhere or with a flipped bit, and valid
requests, back to back or with pauses shorter than the board's timeout between them. Each burst
goes to an idle board; then the line stays quiet. Checks:

- the board answers exactly what :func:`board_answer` predicts from docs/boards.md (the first
  wrong header byte gets its reject code, a header that stops gets a timeout reject, a frame that
  stops is finished with zeros and a timeout trailer, bytes after a reject or a bad trailer are
  dropped, bytes after a good trailer are the next header), and then goes quiet: never hangs,
  never babbles;
- the next valid request, from the real :class:`~convhw.board.host.BoardClient`, gets a
  bit-exact answer with a good trailer.

:func:`test_line_errors` adds bytes with a low stop bit, and :func:`test_chaos` pauses past the
timeout, the reset button, a host off the board's rate and a receive FIFO that overflows. Timing
decides the answers there, so they check that every reply is whole and well-formed, and again
that the next valid request is answered bit-exact.

Derandomized, with a bounded number of examples: pysim runs the board at about 7,000 cycles per
second, so the frames are tiny. Generic over board specs: :data:`BOARDS` has one line per spec
(the board design takes any 2-D :class:`~convhw.spec.ConvSpec`).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from convhw.board import protocol, transport
from convhw.board.accelerator import UARTAccelerator
from convhw.board.host import BoardClient
from convhw.board.protocol import Status
from convhw.board.transport import SimulatedSerial
from convhw.golden import run_spec
from convhw.spec import ConvSpec

CLK, BAUD, TIMEOUT = 1e6, 250_000, 200e-6        # 4 clocks per bit, a 200-cycle timeout
BYTE_CYCLES = 10 * CLK / BAUD

BOARDS = {
    # Runtime coefficients (in the header, so the CRC covers them), signed 8-bit pixels.
    "runtime 2x2": ConvSpec(width=4, height=3, kernel_shape=(2, 2), padding=(1, 0),
                            coeff_bits=6, in_signed=True),
    # Constant kernel, 10-bit pixels: two bytes each, so a frame can stop mid-pixel.
    "constant 10-bit stride 2": ConvSpec(width=5, height=3, kernel=[[1, -2, 3], [4, 5, -6]],
                                         stride=2, padding=1, in_bits=10),
}

#: The board's reject code for a wrong byte at each index of the header prefix.
PREFIX_CODES = ([Status.BAD_MAGIC] * 2 + [Status.BAD_VERSION] + [Status.BAD_SIZE] * 4
                + [Status.BAD_SPEC] * 4)


def board_answer(spec, data, *, window):
    """What a board built for ``spec``, idle and waiting for a header, sends back when ``data``
    arrives back to back and the line then stays quiet (docs/boards.md, "The protocol")."""
    in_bytes = protocol.value_bytes(spec.in_bits)
    out_bytes = protocol.value_bytes(spec.out_bits)
    coeff_bytes = protocol.value_bytes(spec.coeff_bits)
    prefix = protocol.header_prefix(spec)
    length = protocol.header_length(spec)
    frame_bytes = spec.width * spec.height * in_bytes
    timeout_us = round(TIMEOUT * 1e6)

    def reject(code):
        return protocol.encode_reject(code, spec.width, spec.height, protocol.spec_id(spec),
                                      timeout_us)

    answer, data = bytearray(), bytes(data)
    while data:
        header, data = data[:length], data[length:]
        wrong = [k for k, (got, want) in enumerate(zip(header, prefix)) if got != want]
        if wrong:
            return answer + reject(PREFIX_CODES[wrong[0]])
        if len(header) < length:
            return answer + reject(Status.TIMEOUT)
        if header[-2:] != protocol.crc16(header[:-2]).to_bytes(2, "little"):
            return answer + reject(Status.BAD_CRC)
        kernel = None
        if spec.runtime_coeffs:
            kernel = protocol.decode_values(header[len(prefix):-2], spec.coeff_bits)
            kernel = kernel.reshape(spec.kernel_shape)
            assert len(header[len(prefix):-2]) == spec.taps * coeff_bytes
        answer += protocol.encode_accept(window, timeout_us)
        pixels, data = data[:frame_bytes], data[frame_bytes:]
        whole = len(pixels) // in_bytes * in_bytes
        frame = np.zeros(spec.width * spec.height, dtype=np.int64)
        frame[:whole // in_bytes] = protocol.decode_values(pixels[:whole], spec.in_bits,
                                                           is_signed=spec.in_signed)
        results = protocol.encode_values(run_spec(spec, frame.reshape(spec.frame_shape), kernel),
                                         out_bytes * 8, True)
        status = Status.OK if len(pixels) == frame_bytes else Status.TIMEOUT
        answer += results + protocol.encode_trailer(status, protocol.crc16(pixels),
                                                    protocol.crc16(results))
        if status != Status.OK:
            return answer
    return answer


def test_board_answer_model():
    """The model itself, on hand-worked bursts."""
    spec = BOARDS["runtime 2x2"]
    header = protocol.encode_header(spec, [[1, 2], [3, 4]])
    window = 512

    def reject(code):
        return protocol.encode_reject(code, 4, 3, protocol.spec_id(spec), 200)

    assert board_answer(spec, b"", window=window) == b""
    assert board_answer(spec, b"CX" + header, window=window) == reject(Status.BAD_MAGIC)
    assert board_answer(spec, header[:5], window=window) == reject(Status.TIMEOUT)
    assert board_answer(spec, header[:3] + b"\x09", window=window) == reject(Status.BAD_SIZE)
    assert board_answer(spec, header[:-1] + b"\x00", window=window) == reject(Status.BAD_CRC)
    pixels = bytes(range(12))
    ok = board_answer(spec, header + pixels, window=window)
    results = protocol.encode_values(
        run_spec(spec, np.arange(12).reshape(3, 4), np.array([[1, 2], [3, 4]])), 16, True)
    assert ok == (protocol.encode_accept(window, 200) + results
                  + protocol.encode_trailer(Status.OK, protocol.crc16(pixels),
                                            protocol.crc16(results)))
    assert board_answer(spec, header + pixels + b"Z", window=window) == ok + reject(
        Status.BAD_MAGIC)
    # A header sent too early is taken as pixels; its rest is the next header, a bad one.
    early = board_answer(spec, header + pixels[:5] + header, window=window)
    trailer = len(ok) - protocol.TRAILER_LEN
    assert protocol.decode_trailer(early[trailer:len(ok)]).status == Status.OK
    assert early[len(ok):] == reject(Status.BAD_MAGIC)
    short = board_answer(spec, header + pixels[:5], window=window)
    assert protocol.decode_trailer(short[-protocol.TRAILER_LEN:]).status == Status.TIMEOUT


# --- what hypothesis sends ----------------------------------------------------------------------

@st.composite
def kernels(draw, spec):
    if not spec.runtime_coeffs:
        return None
    lo, hi = -(1 << (spec.coeff_bits - 1)), (1 << (spec.coeff_bits - 1)) - 1
    values = draw(st.lists(st.integers(lo, hi), min_size=spec.taps, max_size=spec.taps))
    return np.array(values).reshape(spec.kernel_shape)


@st.composite
def images(draw, spec):
    lo, hi = spec.pixel_range
    size = spec.width * spec.height
    values = draw(st.lists(st.integers(lo, hi), min_size=size, max_size=size))
    return np.array(values).reshape(spec.frame_shape)


@st.composite
def requests(draw, spec):
    """A valid request's bytes: header and pixels."""
    return (protocol.encode_header(spec, draw(kernels(spec)))
            + protocol.encode_pixels(spec, draw(images(spec))))


def flip_bit(draw, data):
    if not data:
        return data
    index = draw(st.integers(0, len(data) - 1))
    return data[:index] + bytes([data[index] ^ (1 << draw(st.integers(0, 7)))]) + data[index + 1:]


@st.composite
def pieces(draw, spec):
    """One piece of a burst."""
    kind = draw(st.sampled_from(["noise", "cut header", "wrong header byte", "other spec",
                                 "cut request", "flipped request", "request"]))
    header = protocol.encode_header(spec, draw(kernels(spec)))
    if kind == "noise":
        return draw(st.binary(min_size=1, max_size=12))
    if kind == "cut header":
        return header[:draw(st.integers(1, len(header) - 1))]
    if kind == "wrong header byte":
        return flip_bit(draw, header)
    if kind == "other spec":
        other = draw(st.sampled_from([spec.replace(width=spec.width + 1),
                                      spec.replace(height=spec.height - 1),
                                      spec.replace(in_signed=not spec.in_signed)]))
        return protocol.encode_header(other, draw(kernels(other)))
    request = draw(requests(spec))
    if kind == "cut request":
        return request[:draw(st.integers(len(header), len(request) - 1))]
    if kind == "flipped request":
        return flip_bit(draw, request)
    return request


#: The longest pause a burst may have between two pieces, in clock cycles. The line is silent for
#: the pause plus about two byte times (the last byte, then ``flush``'s idle byte): well under the
#: timeout, so the board must take the burst as if it came back to back.
SHORT_PAUSE = 40


def bursts(spec):
    """A burst: ``[(piece, pause after it in cycles), ...]``; it ends with silence."""
    return st.lists(st.tuples(pieces(spec), st.sampled_from([0, 0, SHORT_PAUSE])),
                    min_size=1, max_size=3)


# --- the test ----------------------------------------------------------------------------------

def collect_answer(port, limit_cycles):
    """Everything the board sends until it has been quiet for three timeouts."""
    port.flush()
    start, answer = port.cycles, bytearray()
    saved, port.timeout = port.timeout, 3 * TIMEOUT
    try:
        while data := port.read(4096):
            answer += data
            assert port.cycles - start < limit_cycles, \
                f"the board is still talking after {port.cycles - start} cycles: {answer!r}"
    finally:
        port.timeout = saved
    return bytes(answer)


def check_bursts(spec, sends, final):
    """``sends`` goes burst by burst to a fresh board, each checked against the model, with the
    line quiet after each; then the valid request ``final`` (image, kernel) must come back
    bit-exact."""
    dut = UARTAccelerator(spec, clk_freq=CLK, baud=BAUD, timeout=TIMEOUT)
    with SimulatedSerial(dut, clk_freq=CLK, baud=BAUD, timeout=0.05) as port:
        assert (SHORT_PAUSE + 3 * BYTE_CYCLES) < TIMEOUT * CLK
        for parts in sends:
            burst = b"".join(piece for piece, _ in parts)
            expected = board_answer(spec, burst, window=dut.window)
            for piece, pause in parts:
                port.write(piece)
                if pause:
                    port.flush()
                    port.sleep(pause / CLK)
            # Everything is sent and answered at line rate, plus a timeout for each stop.
            limit = (len(burst) + len(expected) + 8) * BYTE_CYCLES * 2 + 20 * TIMEOUT * CLK
            answer = collect_answer(port, limit)
            assert answer == expected, f"burst {burst.hex()}"
        image, kernel = final
        result = BoardClient(port, spec, timeout=TIMEOUT).run_frame(image, kernel)
        np.testing.assert_array_equal(result.output, run_spec(spec, image, kernel))
        assert result.ok and port.line_errors == []
        assert port.peek(dut.busy) == 0 and port.peek(dut.error) == 0


#: No shrinking: an example takes a second or more, so shrinking a failure would take minutes;
#: the failing example is printed as found.
FUZZ = settings(max_examples=20, derandomize=True, database=None, deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("name", BOARDS)
def test_fuzzed_bursts_then_a_valid_request(name):
    spec = BOARDS[name]

    @FUZZ
    @given(sends=st.lists(bursts(spec), min_size=1, max_size=2),
           final=st.tuples(images(spec), kernels(spec)))
    def fuzz(sends, final):
        check_bursts(spec, sends, final)

    fuzz()


# --- line errors ---------------------------------------------------------------------------------
# A byte whose stop bit is low (noise, a wrong baud rate) is dropped by the UART, which reports a
# framing error. When the board sees it depends on how far it has got through the bytes it
# buffered, so no byte-exact answer is predicted here; the board must still answer only whole,
# well-formed replies, stop with the first error, go quiet, and then serve a valid request.

class BadStop(int):
    """A byte sent with a low stop bit."""


async def put_with_line_errors(ctx, pin, byte, clocks_per_bit):
    if not isinstance(byte, BadStop):
        return await ORIGINAL_UART_PUT(ctx, pin, byte, clocks_per_bit)
    levels = [0] + [(byte >> k) & 1 for k in range(8)] + [0, 1]
    edges = [round(clocks_per_bit * k) for k in range(len(levels) + 1)]
    for level, start, end in zip(levels, edges, edges[1:]):
        ctx.set(pin, level)
        await ctx.tick().repeat(end - start)


ORIGINAL_UART_PUT = transport.uart_put


def parse_answer(spec, data, *, window, one_burst=True, cut=False):
    """The statuses of the board's replies in ``data``, checking that every reply is whole and
    well-formed and carries the board's own parameters. For ``one_burst`` (no silence as long as
    the timeout in between), only the last may be an error; ``cut`` allows the last reply to be
    cut short (by the reset button)."""
    out_len = len(protocol.pixels_needed(spec)) * protocol.value_bytes(spec.out_bits)
    timeout_us = round(TIMEOUT * 1e6)
    statuses = []
    if cut:
        data = data[:-1]        # the reset may have cut the byte being sent: garbage
    while data:
        if one_burst:
            assert not statuses or statuses[-1] == Status.OK, f"a reply after an error: {data!r}"
        whole = (protocol.REJECT_LEN if data[0] == protocol.REJECT else
                 protocol.ACCEPT_LEN + out_len + protocol.TRAILER_LEN)
        if cut and len(data) < whole:
            assert data[0] in (protocol.REJECT, protocol.ACCEPT), f"not a reply: {data!r}"
            if data[0] == protocol.ACCEPT and len(data) >= protocol.ACCEPT_LEN:
                protocol.decode_accept(data[:protocol.ACCEPT_LEN])
            return statuses
        if data[0] == protocol.REJECT:
            reject = protocol.decode_reject(data[:protocol.REJECT_LEN])
            assert reject == protocol.Reject(reject.code, spec.width, spec.height,
                                             protocol.spec_id(spec), timeout_us)
            assert reject.code != Status.OK
            statuses.append(reject.code)
            data = data[protocol.REJECT_LEN:]
            continue
        assert protocol.decode_accept(data[:protocol.ACCEPT_LEN]) == protocol.Accept(window,
                                                                                       timeout_us)
        results = data[protocol.ACCEPT_LEN:protocol.ACCEPT_LEN + out_len]
        end = protocol.ACCEPT_LEN + out_len + protocol.TRAILER_LEN
        assert len(data) >= end, f"a reply cut short: {data!r}"
        trailer = protocol.decode_trailer(data[end - protocol.TRAILER_LEN:end])
        assert trailer.out_crc == protocol.crc16(results)
        statuses.append(trailer.status)
        data = data[end:]
    return statuses


@st.composite
def noisy_bursts(draw, spec):
    """A burst of pieces with one or two bytes sent with a low stop bit."""
    data = list(b"".join(draw(st.lists(pieces(spec), min_size=1, max_size=3))))
    for _ in range(draw(st.integers(1, 2))):
        index = draw(st.integers(0, len(data)))
        value = data[index] if index < len(data) else draw(st.integers(0, 255))
        data[index:index + 1] = [BadStop(value)]
    return data


def test_line_errors(monkeypatch):
    spec = BOARDS["runtime 2x2"]
    monkeypatch.setattr(transport, "uart_put", put_with_line_errors)

    @FUZZ
    @given(sends=st.lists(noisy_bursts(spec), min_size=1, max_size=2),
           final=st.tuples(images(spec), kernels(spec)))
    def fuzz(sends, final):
        dut = UARTAccelerator(spec, clk_freq=CLK, baud=BAUD, timeout=TIMEOUT)
        with SimulatedSerial(dut, clk_freq=CLK, baud=BAUD, timeout=0.05) as port:
            seen = []
            for burst in sends:
                port._to_board.extend(burst)       # BadStop bytes stay marked
                limit = 4 * len(burst) * BYTE_CYCLES * 2 + 20 * TIMEOUT * CLK
                statuses = parse_answer(spec, collect_answer(port, limit), window=dut.window)
                if isinstance(burst[0], BadStop):   # the very first byte: nothing buffered
                    assert statuses == [Status.FRAMING]
                seen += statuses
            assert port.peek(dut.error) == (seen[-1] != Status.OK if seen else 0)
            image, kernel = final
            result = BoardClient(port, spec, timeout=TIMEOUT).run_frame(image, kernel)
            np.testing.assert_array_equal(result.output, run_spec(spec, image, kernel))
            assert result.ok and port.line_errors == []

    fuzz()


# --- chaos ----------------------------------------------------------------------------------------
# Everything at once, where timing decides the answers: pauses up to beyond the timeout anywhere
# (inside headers and frames), bytes with a low stop bit, the reset button pressed at any moment,
# a host 2 % off the board's rate, and a receive FIFO only as big as the window, so a host that
# sends a whole frame at once overflows it. The board must answer only whole, well-formed replies
# (a reply the reset button cuts short excepted), never hang, and serve a valid request once the
# line has been quiet.

@st.composite
def chaos_actions(draw, spec):
    kind = draw(st.sampled_from(["send", "send", "send", "pause", "reset"]))
    if kind == "send":
        data = list(draw(pieces(spec)))
        if data and draw(st.integers(0, 3)) == 0:
            index = draw(st.integers(0, len(data) - 1))
            data[index] = BadStop(data[index])
        return ("send", data)
    if kind == "pause":
        return ("pause", draw(st.sampled_from([0.5, 0.9, 1.0, 1.1, 2.0])) * TIMEOUT)
    return ("reset", None)


def test_chaos(monkeypatch):
    spec = BOARDS["runtime 2x2"]
    monkeypatch.setattr(transport, "uart_put", put_with_line_errors)
    minimum = protocol.rx_fifo_depth(spec, minimum=1)

    @FUZZ
    @given(actions=st.lists(chaos_actions(spec), min_size=1, max_size=6),
           fifo_depth=st.sampled_from([minimum, None]),
           host_rate=st.sampled_from([1.0, 0.98, 1.02]),
           final=st.tuples(images(spec), kernels(spec)))
    def fuzz(actions, fifo_depth, host_rate, final):
        dut = UARTAccelerator(spec, clk_freq=CLK, baud=BAUD, timeout=TIMEOUT,
                              fifo_depth=fifo_depth)
        with SimulatedSerial(dut, clk_freq=CLK, baud=BAUD, timeout=0.05,
                             host_clocks_per_bit=CLK / BAUD * host_rate) as port:
            for action, value in actions:
                if action == "send":
                    port._to_board.extend(value)
                    port.sleep(len(value) * BYTE_CYCLES / 2 / CLK)      # reset mid-burst too
                elif action == "pause":
                    port.sleep(value)
                else:
                    port._to_board.clear()          # the host gives up what it had queued
                    port.drive(dut.reset, 1)
                    port.drive(dut.reset, 0)
                    parse_answer(spec, port.read(port.in_waiting), window=dut.window,
                                 one_burst=False, cut=True)
            limit = 200 * BYTE_CYCLES + 40 * TIMEOUT * CLK
            parse_answer(spec, collect_answer(port, limit), window=dut.window, one_burst=False)
            image, kernel = final
            result = BoardClient(port, spec, timeout=TIMEOUT).run_frame(image, kernel)
            np.testing.assert_array_equal(result.output, run_spec(spec, image, kernel))
            assert result.ok
            assert port.peek(dut.busy) == 0 and port.peek(dut.error) == 0

    fuzz()
