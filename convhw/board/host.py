"""The host side of the board protocol: send a frame, pace the pixels, collect the results.

:class:`BoardClient` works over any transport with ``write(data)`` and ``read(size)`` (which
returns fewer bytes once its ``timeout`` passes): a :class:`serial.Serial`, or a
:class:`~convhw.board.transport.SimulatedSerial` wrapped around the simulated board, so the tests
run exactly the code that talks to a real board.
"""

import time
from dataclasses import dataclass

import numpy as np

from . import protocol
from ..chain import ChainSpec
from ..spec import ConvSpec
from .accelerator import DEFAULT_TIMEOUT
from .protocol import Status

__all__ = ["BoardError", "FrameResult", "BoardClient"]


class BoardError(RuntimeError):
    """The board rejected a frame, did not answer, or answered something unexpected."""


@dataclass
class FrameResult:
    """What came back for one frame.

    ``output`` has the spec's ``out_shape`` (a layer's ``(Cout, OH, OW)``). ``in_crc_ok`` / ``out_crc_ok`` say whether the
    board received the pixels the host sent and the host the results the board sent; a result
    that differs from the golden model with both CRCs good is a computation error.
    """
    output: np.ndarray
    status: Status
    in_crc_ok: bool
    out_crc_ok: bool
    seconds: float
    bytes_sent: int
    bytes_received: int

    @property
    def ok(self):
        return self.status == Status.OK and self.in_crc_ok and self.out_crc_ok

    @property
    def pixels_per_second(self):
        return self.output.size / self.seconds if self.seconds > 0 else float("inf")


class BoardClient:
    """Talks to a board built for ``spec`` over ``transport``.

    Parameters
    ----------
    transport
        Has ``write``, ``read`` and a settable ``timeout`` in seconds; ``sleep``, ``now`` and
        ``reset_input_buffer`` are used when present (simulated time).
    spec : ConvSpec or ChainSpec
        The spec the board was built with (same options as the build), or the chain of the
        network it was built for (any folding: the folding changes nothing on the line).
    timeout : float
        The board's silence timeout, used to resynchronize until a reply states the real one.
    """

    def __init__(self, transport, spec, *, timeout=DEFAULT_TIMEOUT):
        if not isinstance(spec, (ConvSpec, ChainSpec)):
            raise TypeError(f"'spec' must be a ConvSpec or a ChainSpec, not {spec!r}")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"'timeout' must be a positive number of seconds, not {timeout!r}")
        self._port = transport
        self._spec = spec
        self.timeout = timeout
        self._needed = protocol.pixels_needed(spec)
        self._now = getattr(transport, "now", time.monotonic)
        self._sleep = getattr(transport, "sleep", time.sleep)

    def _read(self, size, what):
        data = self._port.read(size)
        if len(data) != size:
            raise BoardError(f"timed out waiting for {what}: got {len(data)} of {size} bytes. "
                             f"Is the bitstream loaded, and the baud rate and port right?")
        return data

    def resync(self):
        """Drop whatever the board is sending until it has been quiet for two timeouts.

        The board gives up a frame, or finishes draining after an error, once the line has been
        silent for its timeout, so afterwards it waits for a header. The quiet time is counted
        after the host's own bytes have left (``flush``).
        """
        if hasattr(self._port, "flush"):
            self._port.flush()
        quiet = 2.5 * self.timeout
        saved = self._port.timeout
        self._port.timeout = quiet / 4
        try:
            if hasattr(self._port, "reset_input_buffer"):
                self._port.reset_input_buffer()
            last = self._now()
            while self._now() - last < quiet:
                if self._port.read(4096):
                    last = self._now()
        finally:
            self._port.timeout = saved

    def start(self, kernel=None):
        """Send a header; return the board's :class:`~convhw.board.protocol.Accept`.

        Raises
        ------
        BoardError
            The board rejected the header (the message says why), or did not answer.
        """
        self._port.write(protocol.encode_header(self._spec, kernel))
        first = self._read(1, "the board's answer to the header")
        if first[0] == protocol.ACCEPT:
            accept = protocol.decode_accept(first + self._read(protocol.ACCEPT_LEN - 1, "accept"))
            self.timeout = accept.timeout_us / 1e6
            if accept.window < protocol.window_pixels(self._spec):
                raise BoardError(f"the board's window of {accept.window} pixels is too small "
                                 f"for this spec (needs {protocol.window_pixels(self._spec)})")
            return accept
        if first[0] == protocol.REJECT:
            reject = protocol.decode_reject(first + self._read(protocol.REJECT_LEN - 1, "reject"))
            self.timeout = reject.timeout_us / 1e6
            mine = (self._spec.width, self._spec.height, protocol.spec_id(self._spec))
            raise BoardError(
                f"the board rejected the header: {reject.code.meaning} (code "
                f"{int(reject.code)}); the board is built for {reject.width}x{reject.height}, "
                f"spec id {reject.spec_id:08x}; this host has {mine[0]}x{mine[1]}, spec id "
                f"{mine[2]:08x}")
        raise BoardError(f"unexpected byte 0x{first[0]:02x} instead of an accept or reject: the "
                         f"board is probably still in an earlier frame; resync first")

    def run_frame(self, image, kernel=None):
        """Send one frame (and ``kernel`` for runtime specs); return a :class:`FrameResult`.

        A layer's ``image`` is ``(Cin, H, W)`` and its runtime ``kernel`` the
        ``(Cout, Cin/groups, KH, KW)`` weights."""
        spec = self._spec
        pixels = protocol.encode_pixels(spec, image)
        start = self._now()
        accept = self.start(kernel)
        in_bytes = protocol.pixel_bytes(spec)
        out_bytes = protocol.result_bytes(spec)
        n_pixels, n_results = spec.width * spec.height, len(self._needed)
        needed, window = self._needed, accept.window
        sent = got = 0
        received = bytearray()
        while sent < n_pixels or got < n_results:
            # May send pixel n once results prove pixel n - window was consumed.
            limit = min(n_pixels, (int(needed[got - 1]) if got else 0) + window)
            if limit > sent:
                self._port.write(pixels[sent * in_bytes:limit * in_bytes])
                sent = limit
            if got == n_results:
                continue
            available = int(np.searchsorted(needed, sent, side="right"))
            # Read enough to top the window up by half, so the board keeps busy meanwhile.
            wanted = int(np.searchsorted(needed, sent - window // 2, side="left")) + 1
            target = min(available, max(got + 1, wanted))
            received += self._read((target - got) * out_bytes, f"results {got}..{target - 1}")
            got = target
        trailer = protocol.decode_trailer(self._read(protocol.TRAILER_LEN, "the trailer"))
        seconds = self._now() - start
        output = protocol.decode_results(spec, received)
        header_bytes = protocol.header_length(spec)
        return FrameResult(
            output=output, status=trailer.status,
            in_crc_ok=trailer.in_crc == protocol.crc16(pixels),
            out_crc_ok=trailer.out_crc == protocol.crc16(received),
            seconds=seconds, bytes_sent=header_bytes + len(pixels),
            bytes_received=protocol.ACCEPT_LEN + len(received) + protocol.TRAILER_LEN)
