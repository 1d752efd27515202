"""A convolution core on a serial line: UART in, framing protocol, Conv2d, UART out.

:class:`UARTAccelerator` is the whole board design with its pins as plain one-bit members, so it
runs in the Amaranth simulator with no platform; :mod:`convhw.board.top` puts it on real pins.
It speaks the protocol of :mod:`convhw.board.protocol`:

``HEADER``
    Header bytes are compared, as they arrive, with the constant prefix the board was built for
    (magic, version, frame size, spec id); runtime coefficients go straight to the core's shadow
    bank (they only take effect at the next start of frame); then the CRC is checked. The first
    mismatch, a UART framing error, or a header that stops for ``timeout`` is answered with a
    reject.
``FRAME``
    After the accept, pixels flow from the receive FIFO into the core while results flow out,
    each as whole little-endian bytes, and the input and output CRCs are taken on the fly. If
    the input stops for ``timeout`` (no byte either way: a host that waits for results is not
    silent for long), the rest of the frame is filled with zero pixels, so the host always gets
    exactly ``out_h * out_w`` results and then the trailer.
``DRAIN``
    After a reject or a trailer whose status is not OK, every byte is dropped until the line has
    been silent for ``timeout``; then a new header is expected. This is how both ends find the
    start of a header again.

Nothing waits on the host without a timeout, and ``reset`` (a button) restarts everything. The
``activity`` LED lights for about 50 ms after each byte, ``error`` from a reject or bad trailer
until the next good frame, ``busy`` while a frame is in progress.
"""

import math

from amaranth import *
from amaranth.lib import crc, fifo, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ..chain import ChainSpec
from ..gateware import Chain, Conv2d
from ..spec import ConvSpec
from . import protocol
from .protocol import Status
from .uart import UARTReceiver, UARTTransmitter, bit_ratio

__all__ = ["UARTAccelerator", "check_parameters", "DEFAULT_TIMEOUT"]

#: Seconds of silence after which a frame is given up and a resynchronization completes.
DEFAULT_TIMEOUT = 0.2
#: Seconds the activity LED stays lit after a byte.
ACTIVITY_SECONDS = 0.05


def _crc16():
    return crc.Processor(crc.catalog.CRC16_CCITT_FALSE(8))


class _Sender:
    """Hands the bytes of one message, least significant first, to a UART transmitter.

    ``messages`` maps a name to a value whose bytes are read in place while they are sent (no
    copy in a shift register): constants, registers that hold still until the message is out,
    or the core's output payload, which holds until the result is popped (:attr:`last`).
    """

    def __init__(self, m, tx_stream, messages):
        self._ids = {name: n for n, name in enumerate(messages)}
        most = max(len(value) // 8 for value in messages.values())
        self.which = Signal(range(len(messages)))
        self.index = Signal(range(most))
        self.left = Signal(range(most + 1))
        self.idle = Signal()
        self.sent = Signal()            # a byte was handed over this cycle
        self.last = Signal()            # ... and it was the message's last
        byte = Signal(8)
        with m.Switch(self.which):
            for name, value in messages.items():
                with m.Case(self._ids[name]):
                    m.d.comb += byte.eq(value.word_select(self.index, 8))
        m.d.comb += [
            self.idle.eq(self.left == 0),
            tx_stream.valid.eq(~self.idle),
            tx_stream.payload.eq(byte),
            self.sent.eq(tx_stream.valid & tx_stream.ready),
            self.last.eq(self.sent & (self.left == 1)),
        ]
        with m.If(self.sent):
            m.d.sync += [self.index.eq(self.index + 1), self.left.eq(self.left - 1)]

    def sending(self, name):
        """Whether message ``name`` is being sent."""
        return ~self.idle & (self.which == self._ids[name])

    def load(self, m, name, nbytes):
        """Start sending the first ``nbytes`` of message ``name``; only while :attr:`idle`."""
        m.d.sync += [self.which.eq(self._ids[name]), self.index.eq(0), self.left.eq(nbytes)]


class _Engine(wiring.Component):
    """Everything but the reset synchronizer and the LED stretcher."""

    def __init__(self, spec, *, clk_freq, baud, timeout_cycles, timeout_us, fifo_depth):
        self._spec = spec
        self._clk_freq, self._baud = clk_freq, baud
        self._timeout_cycles, self._timeout_us = timeout_cycles, timeout_us
        self._fifo_depth = fifo_depth
        super().__init__({
            "rx": In(1, init=1), "tx": Out(1, init=1),
            "byte_event": Out(1), "error": Out(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        in_bytes = protocol.pixel_bytes(spec)
        out_bytes = protocol.result_bytes(spec)
        coeff_bytes = protocol.value_bytes(spec.coeff_bits)
        n_pixels = spec.width * spec.height
        n_results = spec.out_shape[0] * spec.out_shape[1]
        prefix = protocol.header_prefix(spec)
        body_len = protocol.header_length(spec) - 2
        timeout_us = min(self._timeout_us, (1 << 32) - 1)

        m.submodules.uart_rx = urx = UARTReceiver(clk_freq=self._clk_freq, baud=self._baud)
        m.submodules.uart_tx = utx = UARTTransmitter(clk_freq=self._clk_freq, baud=self._baud)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=self._fifo_depth)
        m.d.comb += [
            rx_fifo.w_data.eq(urx.o.payload), rx_fifo.w_en.eq(urx.o.valid), urx.o.ready.eq(1),
        ]
        overflow = urx.o.valid & ~rx_fifo.w_rdy
        byte_in = rx_fifo.r_data

        m.submodules.core = core = Chain(spec) if isinstance(spec, ChainSpec) else Conv2d(spec)
        # One CRC of the received bytes: the header's (HEADER), then restarted for the pixels'
        # (ACCEPT, FRAME); the states never overlap.
        m.submodules.rx_crc = rx_crc = _crc16()
        m.submodules.out_crc = out_crc = _crc16()
        m.d.comb += [rx_crc.data.eq(byte_in),
                     out_crc.data.eq(utx.i.payload)]

        header_index = Signal(range(body_len + 2))
        code = Signal(8)                     # reject code or trailer status
        error_latch = Signal()
        # Every message the board sends; ``code`` and the CRCs hold while theirs is out.
        result = Signal(signed(8 * out_bytes))          # sign-extended to whole bytes
        m.d.comb += result.eq(Value.cast(core.o.payload.data).as_signed())
        sender = _Sender(m, utx.i, {
            "reject": Cat(C(protocol.REJECT, 8), code, C(spec.width, 16), C(spec.height, 16),
                          C(protocol.spec_id(spec), 32), C(timeout_us, 32)),
            "accept": Cat(C(protocol.ACCEPT, 8), C(self._fifo_depth // in_bytes, 32),
                          C(timeout_us, 32)),
            "result": result,
            "trailer": Cat(code, rx_crc.crc, out_crc.crc),
        })
        m.d.comb += self.byte_event.eq(urx.o.valid | sender.sent)

        # Silence: cycles since the last byte either way (or since `restart_timer`).
        silence = Signal(range(self._timeout_cycles + 1))
        silent = Signal()
        restart_timer = Signal()
        m.d.comb += silent.eq(silence == self._timeout_cycles)
        with m.If(urx.o.valid | urx.error | sender.sent | restart_timer):
            m.d.sync += silence.eq(0)
        with m.Elif(~silent):
            m.d.sync += silence.eq(silence + 1)
        m.d.comb += self.error.eq(error_latch)

        # Runtime coefficients: the last byte of each writes it to the core's shadow bank.
        coeff_shift = Signal(8 * coeff_bytes)
        coeff_byte = Signal(range(coeff_bytes))
        coeff_address = Signal(range(max(1, protocol.coefficient_count(spec)) + 1))
        coeff_value = Cat(coeff_shift[8:], byte_in)
        if spec.runtime_coeffs:
            m.d.comb += [core.coef.addr.eq(coeff_address),
                         core.coef.data.eq(coeff_value[:spec.coeff_bits])]
        with m.If(header_index == 0):
            m.d.sync += [coeff_byte.eq(0), coeff_address.eq(0)]

        def coefficient_byte():
            if not spec.runtime_coeffs:
                return
            m.d.sync += coeff_shift.eq(coeff_value)
            with m.If(coeff_byte == coeff_bytes - 1):
                m.d.comb += core.coef.we.eq(1)
                m.d.sync += [coeff_byte.eq(0), coeff_address.eq(coeff_address + 1)]
            with m.Else():
                m.d.sync += coeff_byte.eq(coeff_byte + 1)

        def reject(reason):
            reason = C(reason, 8) if isinstance(reason, int) else reason
            m.d.sync += code.eq(reason)
            sender.load(m, "reject", protocol.REJECT_LEN)
            m.d.sync += error_latch.eq(1)
            m.next = "REJECT"

        # Frame state.
        pixel_count = Signal(range(n_pixels + 1))
        result_count = Signal(range(n_results + 1))
        byte_in_pixel = Signal(range(in_bytes))
        pixel_bytes = Signal(8 * in_bytes)
        fill = Signal()
        feeding = pixel_count != n_pixels

        def frame_error(reason):
            with m.If(code == Status.OK):
                m.d.sync += code.eq(reason)

        with m.FSM():
            with m.State("HEADER"):
                m.d.comb += rx_fifo.r_en.eq(1)
                take = rx_fifo.r_rdy
                m.d.comb += [rx_crc.start.eq(header_index == 0),
                             rx_crc.valid.eq(take & (header_index < body_len))]
                with m.If(take):
                    m.d.sync += header_index.eq(header_index + 1)
                    with m.If(header_index < len(prefix)):
                        expected = Array(C(b, 8) for b in prefix)[header_index]
                        with m.If(byte_in != expected):
                            reasons = ([Status.BAD_MAGIC] * 2 + [Status.BAD_VERSION] +
                                       [Status.BAD_SIZE] * 4 + [Status.BAD_SPEC] * 4)
                            reject(Array(C(r, 8) for r in reasons)[header_index])
                    with m.Elif(header_index < body_len):
                        coefficient_byte()
                    with m.Elif(header_index == body_len):
                        with m.If(byte_in != rx_crc.crc[:8]):
                            reject(Status.BAD_CRC)
                    with m.Else():
                        with m.If(byte_in != rx_crc.crc[8:]):
                            reject(Status.BAD_CRC)
                        with m.Else():
                            sender.load(m, "accept", protocol.ACCEPT_LEN)
                            m.next = "ACCEPT"
                with m.Elif(urx.error):
                    reject(Status.FRAMING)
                with m.Elif((header_index != 0) & silent):
                    reject(Status.TIMEOUT)

            with m.State("REJECT"):
                m.d.sync += header_index.eq(0)
                with m.If(sender.idle):
                    m.next = "DRAIN"

            with m.State("DRAIN"):
                m.d.comb += rx_fifo.r_en.eq(1)
                with m.If(silent & ~rx_fifo.r_rdy):
                    m.next = "HEADER"

            with m.State("ACCEPT"):
                m.d.comb += [restart_timer.eq(1), rx_crc.start.eq(1), out_crc.start.eq(1)]
                m.d.sync += [header_index.eq(0), code.eq(Status.OK), fill.eq(0),
                             pixel_count.eq(0), result_count.eq(0), byte_in_pixel.eq(0)]
                with m.If(sender.idle):
                    m.next = "FRAME"

            with m.State("FRAME"):
                m.d.comb += self.busy.eq(1)
                # Pixels in: whole pixels from the FIFO, or zeros once the input timed out.
                last_byte = byte_in_pixel == in_bytes - 1
                assembled = Cat(pixel_bytes[8:], byte_in)
                m.d.comb += core.i.payload.first.eq(pixel_count == 0)
                with m.If(fill):
                    m.d.comb += core.i.valid.eq(feeding)
                with m.Else():
                    m.d.comb += [
                        core.i.valid.eq(feeding & rx_fifo.r_rdy & last_byte),
                        core.i.payload.data.eq(assembled[:protocol.pixel_bits(spec)]),
                        rx_fifo.r_en.eq(feeding & (~last_byte | core.i.ready)),
                        rx_crc.valid.eq(rx_fifo.r_en & rx_fifo.r_rdy),
                    ]
                    with m.If(rx_fifo.r_en & rx_fifo.r_rdy):
                        m.d.sync += [pixel_bytes.eq(assembled),
                                     byte_in_pixel.eq(Mux(last_byte, 0, byte_in_pixel + 1))]
                    with m.If(feeding & silent & ~rx_fifo.r_rdy):
                        m.d.sync += fill.eq(1)
                        frame_error(Status.TIMEOUT)
                with m.If(core.i.valid & core.i.ready):
                    m.d.sync += pixel_count.eq(pixel_count + 1)
                with m.If(overflow):
                    frame_error(Status.OVERFLOW)
                with m.If(urx.error):
                    frame_error(Status.FRAMING)

                # Results out, then the trailer once every pixel is in and every result out. A
                # result is sent from the core's output, popped with its last byte.
                m.d.comb += [out_crc.valid.eq(sender.sent),
                             core.o.ready.eq(sender.sending("result") & sender.last)]
                with m.If(sender.idle):
                    with m.If(result_count != n_results):
                        with m.If(core.o.valid):
                            sender.load(m, "result", out_bytes)
                            m.d.sync += result_count.eq(result_count + 1)
                    with m.Elif(~feeding):
                        sender.load(m, "trailer", protocol.TRAILER_LEN)
                        m.d.sync += error_latch.eq(code != Status.OK)
                        m.next = "TRAILER"

            with m.State("TRAILER"):
                with m.If(sender.idle):
                    with m.If(code == Status.OK):
                        m.next = "HEADER"
                    with m.Else():
                        m.next = "DRAIN"
        return m


def check_parameters(spec, *, clk_freq, baud, timeout=DEFAULT_TIMEOUT, fifo_depth=None):
    """Validate :class:`UARTAccelerator`'s parameters; return ``(timeout_cycles, fifo_depth)``.

    Raises
    ------
    TypeError, ValueError
        Naming the parameter, its value and what is allowed.
    """
    if not isinstance(spec, (ConvSpec, ChainSpec)):
        raise TypeError(f"'spec' must be a ConvSpec or a ChainSpec, not {spec!r}")
    bit_ratio(clk_freq, baud)
    if not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
            and timeout > 0):
        raise ValueError(f"'timeout' must be a positive number of seconds, not {timeout!r}")
    byte_clocks = 10 * clk_freq / baud
    timeout_cycles = math.ceil(timeout * clk_freq)
    if timeout_cycles < 4 * byte_clocks:
        raise ValueError(f"'timeout' {timeout!r} s is shorter than 4 byte times at "
                         f"{baud} baud ({4 * byte_clocks / clk_freq:.3g} s)")
    protocol.header_prefix(spec)            # frame size fits the protocol
    minimum = protocol.rx_fifo_depth(spec, minimum=1)
    if fifo_depth is None:
        fifo_depth = protocol.rx_fifo_depth(spec)
    elif not isinstance(fifo_depth, int) or isinstance(fifo_depth, bool):
        raise TypeError(f"'fifo_depth' must be an integer, not {fifo_depth!r}")
    elif not minimum <= fifo_depth <= protocol.MAX_FIFO_BYTES:
        raise ValueError(f"'fifo_depth' must be from {minimum} (this spec's window) to "
                         f"{protocol.MAX_FIFO_BYTES} bytes, not {fifo_depth!r}")
    return timeout_cycles, fifo_depth


class UARTAccelerator(wiring.Component):
    """The board design for ``spec``, with its pins as plain signals.

    Parameters
    ----------
    spec : ConvSpec or ChainSpec
        A core, or a network's chain of cores (one frame is one inference).
    clk_freq : float
        Clock frequency in Hz.
    baud : int
        Line rate; at least 4 clocks per bit.
    timeout : float
        Seconds of silence that end a truncated header or frame and complete a resync.
    fifo_depth : int, optional
        Receive FIFO bytes, at least the spec's window (default
        :func:`~convhw.board.protocol.rx_fifo_depth`, 512 or more). The host may send
        ``fifo_depth // ceil(Cin*in_bits/8)`` pixels ahead of the results (the accept's window).

    Members
    -------
    rx : In(1), idle high
        From the host (asynchronous; synchronized inside).
    tx : Out(1), idle high
        To the host.
    reset : In(1)
        Active high, asynchronous (a button): resets the whole design while held.
    activity, error, busy : Out(1)
        LEDs: bytes moving, the last frame or header failed, a frame in progress.
    """

    def __init__(self, spec, *, clk_freq, baud, timeout=DEFAULT_TIMEOUT, fifo_depth=None):
        timeout_cycles, fifo_depth = check_parameters(spec, clk_freq=clk_freq, baud=baud,
                                                      timeout=timeout, fifo_depth=fifo_depth)
        self._spec = spec
        self._clk_freq, self._baud = clk_freq, baud
        self._timeout = timeout
        self._timeout_cycles = timeout_cycles
        self._fifo_depth = fifo_depth
        super().__init__({
            "rx": In(1, init=1), "tx": Out(1, init=1), "reset": In(1),
            "activity": Out(1), "error": Out(1), "busy": Out(1),
        })

    spec = property(lambda self: self._spec)
    clk_freq = property(lambda self: self._clk_freq)
    baud = property(lambda self: self._baud)
    timeout = property(lambda self: self._timeout)
    fifo_depth = property(lambda self: self._fifo_depth)

    @property
    def window(self):
        """Pixels the host may send ahead of the results (the accept's ``window``)."""
        return self._fifo_depth // protocol.pixel_bytes(self._spec)

    @property
    def timeout_us(self):
        return math.ceil(self._timeout * 1e6)

    def elaborate(self, platform):
        m = Module()
        reset = Signal()
        m.submodules.reset_sync = FFSynchronizer(self.reset, reset)
        engine = _Engine(self._spec, clk_freq=self._clk_freq, baud=self._baud,
                         timeout_cycles=self._timeout_cycles, timeout_us=self.timeout_us,
                         fifo_depth=self._fifo_depth)
        m.submodules.engine = ResetInserter(reset)(engine)
        m.d.comb += [
            engine.rx.eq(self.rx), self.tx.eq(engine.tx),
            self.error.eq(engine.error), self.busy.eq(engine.busy),
        ]
        stretch = max(1, round(ACTIVITY_SECONDS * self._clk_freq))
        lit = Signal(range(stretch + 1))
        with m.If(engine.byte_event):
            m.d.sync += lit.eq(stretch)
        with m.Elif(lit != 0):
            m.d.sync += lit.eq(lit - 1)
        m.d.comb += self.activity.eq(lit != 0)
        return m
