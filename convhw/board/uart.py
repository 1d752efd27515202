"""8N1 UART receiver and transmitter with exact fractional baud rates.

Bit timing comes from a phase accumulator rather than an integer divider: with ``clk_freq /
baud = modulus / step`` (a reduced fraction), the phase grows by ``step`` every clock and a bit
ends each time it passes ``modulus``. Bit edges are then within one clock of their ideal times
and the average rate is exact, which matters on the ULX3S (25 MHz / 3 Mbaud = 8 1/3 clocks per
bit, 4 % off with an integer divider of 8).

Receiver
    ``rx`` goes through a two-flip-flop synchronizer. A falling edge starts a frame; the start
    bit is checked in its middle (a glitch is ignored), then 8 data bits (LSB first) and the stop
    bit are sampled in theirs. A byte is offered on ``o`` for as long as it takes to be read; a
    byte completed while the previous one is still unread is dropped and ``overrun`` pulses. A
    low stop bit drops the byte, pulses ``error`` and waits for the line to go high again (so a
    break does not read as a stream of zero bytes). ``busy`` is high inside a frame.

Transmitter
    ``i`` takes a byte whenever the line is idle or the current stop bit is ending, so bytes
    go out back to back with no idle time between them. ``tx`` comes straight from a register.

At least 4 clocks per bit are needed, so a 12 MHz clock runs up to 3 Mbaud.
"""

import numbers
from fractions import Fraction

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["MIN_CLOCKS_PER_BIT", "bit_ratio", "UARTReceiver", "UARTTransmitter"]

MIN_CLOCKS_PER_BIT = 4


def bit_ratio(clk_freq, baud):
    """Clocks per bit as a reduced fraction ``Fraction(modulus, step)``.

    Raises
    ------
    TypeError, ValueError
        If either rate is not a positive number, or there are fewer than
        :data:`MIN_CLOCKS_PER_BIT` clocks per bit.
    """
    for name, value in (("clk_freq", clk_freq), ("baud", baud)):
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TypeError(f"'{name}' must be a number, not {value!r}")
        if not value > 0:
            raise ValueError(f"'{name}' must be positive, not {value!r}")
    # Rates given as floats (12e6) are exact integers in practice; bound the denominator so a
    # strange float cannot make a huge phase counter. The rate error stays below 1e-5.
    exact = Fraction(clk_freq) / Fraction(baud)
    ratio = exact.limit_denominator(1 << 16)
    if exact < MIN_CLOCKS_PER_BIT:
        raise ValueError(f"'baud' {baud} is too fast for a {clk_freq:g} Hz clock: the UART needs "
                         f"at least {MIN_CLOCKS_PER_BIT} clocks per bit, so at most "
                         f"{int(clk_freq // MIN_CLOCKS_PER_BIT)} baud")
    return ratio


class _Phase:
    """Phase accumulator: ``tick`` ends a bit; ``restart(phase)`` sets the next phase."""

    def __init__(self, m, ratio, name):
        self.modulus, self.step = ratio.numerator, ratio.denominator
        self.phase = Signal(range(self.modulus), name=f"{name}_phase")
        self.tick = Signal(name=f"{name}_tick")
        self.wrapped = self.phase + self.step - self.modulus
        m.d.comb += self.tick.eq(self.phase >= self.modulus - self.step)

    def advance(self, m):
        m.d.sync += self.phase.eq(Mux(self.tick, self.wrapped, self.phase + self.step))


class UARTReceiver(wiring.Component):
    """8N1 receiver.

    Parameters
    ----------
    clk_freq : float
        Clock frequency in Hz.
    baud : int
        Bits per second.

    Members
    -------
    rx : In(1), idle high
        The serial line (asynchronous; synchronized inside).
    o : Out(stream.Signature(8))
        Received bytes.
    busy, error, overrun : Out(1)
        Inside a frame; a bad stop bit (pulse); a byte lost to an unread one (pulse).
    """

    def __init__(self, *, clk_freq, baud):
        self._ratio = bit_ratio(clk_freq, baud)
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "busy": Out(1), "error": Out(1), "overrun": Out(1),
        })

    @property
    def clocks_per_bit(self):
        return self._ratio

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        phase = _Phase(m, self._ratio, "rx")
        shreg = Signal(8)
        bit = Signal(range(10))

        # The falling edge is seen about 1.5 clocks late (synchronizer and detection), so the
        # first sample comes that much before the middle of the start bit.
        start_phase = phase.modulus // 2 + phase.step

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += [phase.phase.eq(start_phase), bit.eq(0)]
                    m.next = "FRAME"
            with m.State("FRAME"):
                m.d.comb += self.busy.eq(1)
                phase.advance(m)
                with m.If(phase.tick):
                    m.d.sync += bit.eq(bit + 1)
                    with m.If(bit == 0):
                        with m.If(rx):                      # a glitch, not a start bit
                            m.next = "IDLE"
                    with m.Elif(bit < 9):
                        m.d.sync += shreg.eq(Cat(shreg[1:], rx))
                    with m.Elif(rx):
                        with m.If(self.o.valid & ~self.o.ready):
                            m.d.comb += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                m.d.comb += self.busy.eq(1)
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTransmitter(wiring.Component):
    """8N1 transmitter.

    Parameters
    ----------
    clk_freq : float
        Clock frequency in Hz.
    baud : int
        Bits per second.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send.
    tx : Out(1), idle high
        The serial line.
    busy : Out(1)
        A byte is being sent.
    """

    def __init__(self, *, clk_freq, baud):
        self._ratio = bit_ratio(clk_freq, baud)
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
            "busy": Out(1),
        })

    @property
    def clocks_per_bit(self):
        return self._ratio

    def elaborate(self, platform):
        m = Module()
        phase = _Phase(m, self._ratio, "tx")
        shreg = Signal(10, init=0x3FF)          # stop, data[7:0], start; shifted out LSB first
        bits_left = Signal(range(11))
        m.d.comb += [
            self.tx.eq(shreg[0]),
            self.busy.eq(bits_left != 0),
            self.i.ready.eq((bits_left == 0) | ((bits_left == 1) & phase.tick)),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                shreg.eq(Cat(C(0, 1), self.i.payload, C(1, 1))),
                bits_left.eq(10),
                # Keep the fractional phase when starting right at the end of a stop bit.
                phase.phase.eq(Mux(bits_left == 0, 0, phase.wrapped)),
            ]
        with m.Elif(bits_left != 0):
            phase.advance(m)
            with m.If(phase.tick):
                m.d.sync += [shreg.eq(Cat(shreg[1:], C(1, 1))), bits_left.eq(bits_left - 1)]
        return m
