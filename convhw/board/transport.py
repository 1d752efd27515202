"""Transports for the host client: a serial port, or the UART pins of a simulated board.

The host client needs only ``write(data)``, ``read(size)`` (which returns fewer bytes when its
``timeout`` passes) and ``flush()``, like :class:`serial.Serial`. It also uses ``sleep(seconds)``,
``now()`` and ``reset_input_buffer()`` when a transport has them, so that a simulated board runs
on simulated time.

:class:`SimulatedSerial` drives the ``rx`` pin and decodes the ``tx`` pin of a simulated
design with a bit-level UART model written independently of the gateware (so a mistake in one
does not hide a mistake in the other), at any clocks-per-bit ratio, including one deliberately
off the board's. The simulation advances only inside the port's calls (``read``, ``flush``,
``sleep``, ...), by as many clock cycles as they take in simulated time. ``drive`` and ``peek``
reach the design's other pins (a reset button, the LEDs).
"""

import contextlib
import math
from collections import deque
from fractions import Fraction

from amaranth.sim import Simulator

__all__ = ["uart_put", "uart_monitor", "SimulatedSerial", "open_serial"]

_PERIOD = 1e-8  # simulated seconds per clock; reported times use the design's own clock


def _bit_times(clocks_per_bit, bits):
    """Clock counts from a frame's start to the start of each of ``bits`` bits, rounded."""
    return [round(Fraction(clocks_per_bit) * k) for k in range(bits + 1)]


async def uart_put(ctx, pin, byte, clocks_per_bit):
    """Drive one 8N1 frame onto ``pin`` (start, LSB first, one stop bit)."""
    levels = [0] + [(byte >> k) & 1 for k in range(8)] + [1]
    edges = _bit_times(clocks_per_bit, 10)
    for level, start, end in zip(levels, edges, edges[1:]):
        ctx.set(pin, level)
        await ctx.tick().repeat(end - start)


async def uart_monitor(ctx, pin, clocks_per_bit, on_byte, on_error=None, running=None):
    """Decode 8N1 frames on ``pin``, sampling each bit in its middle, while ``running()``.

    ``on_byte(value)`` gets every good byte; ``on_error(message)`` every bad one.
    """
    middles = [round(Fraction(clocks_per_bit) * (k + Fraction(1, 2))) for k in range(10)]
    running = running or (lambda: True)
    while running():
        if ctx.get(pin):
            # A plain wait: combined with a delay, pysim breaks the trigger when both fire at once.
            await ctx.changed(pin)
            continue
        levels, waited = [], 0
        for middle in middles:
            await ctx.tick().repeat(middle - waited)
            waited = middle
            levels.append(ctx.get(pin))
        if levels[0]:
            if on_error:
                on_error("start bit not low in its middle (glitch)")
            continue
        if not levels[9]:
            if on_error:
                on_error("stop bit low (framing error)")
            while not ctx.get(pin):
                await ctx.changed(pin)
            continue
        on_byte(sum(bit << k for k, bit in enumerate(levels[1:9])))


class SimulatedSerial:
    """A serial-port look-alike connected to the ``rx``/``tx`` pins of a simulated design.

    Parameters
    ----------
    dut : Elaboratable
        Has ``rx`` (input, idle high) and ``tx`` (output) one-bit members.
    clk_freq, baud : float, int
        The design's clock and the line rate, for the bit timing and for reported times.
    timeout : float
        ``read`` gives up after this many simulated seconds, like ``serial.Serial.timeout``.
    host_clocks_per_bit : Fraction, optional
        The host's own bit time in clocks, to model a host whose rate is off the board's.
    vcd : str, optional
        Write a waveform file until :meth:`close`.
    """

    def __init__(self, dut, *, clk_freq, baud, timeout=0.01, host_clocks_per_bit=None,
                 vcd=None):
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"'timeout' must be a positive number of seconds, not {timeout!r}")
        self.timeout = timeout
        self._dut = dut
        self._clk_freq = clk_freq
        self._board_cpb = Fraction(clk_freq) / Fraction(baud)
        self._host_cpb = Fraction(host_clocks_per_bit or self._board_cpb)
        self._to_board = deque()
        self._from_board = bytearray()
        self.line_errors = []
        self._cycles = 0
        self._running = True
        self._pokes = deque()
        self._watched = {}             # id(signal) -> (signal, last value)
        self._sim = Simulator(dut)
        self._sim.add_clock(_PERIOD)
        self._sim.add_testbench(self._driver, background=True)
        self._sim.add_testbench(self._monitor, background=True)
        self._stack = contextlib.ExitStack()
        if vcd:
            self._stack.enter_context(self._sim.write_vcd(vcd))

    async def _driver(self, ctx):
        ctx.set(self._dut.rx, 1)
        while self._running:
            while self._pokes:
                ctx.set(*self._pokes.popleft())
            for key, (signal, _) in self._watched.items():
                self._watched[key] = (signal, ctx.get(signal))
            if not self._to_board:
                await ctx.tick().repeat(4)
                continue
            await uart_put(ctx, self._dut.rx, self._to_board.popleft(), self._host_cpb)

    async def _monitor(self, ctx):
        await uart_monitor(ctx, self._dut.tx, self._host_cpb, self._from_board.append,
                           self.line_errors.append, lambda: self._running)

    def _run(self, cycles):
        self._cycles += cycles
        self._sim.run_until(self._cycles * _PERIOD)

    @property
    def cycles(self):
        """Clock cycles simulated so far."""
        return self._cycles

    def now(self):
        """Simulated seconds at the design's clock frequency."""
        return self._cycles / self._clk_freq

    def sleep(self, seconds):
        self._run(max(1, math.ceil(seconds * self._clk_freq)))

    def _settle(self):
        """Run long enough for the driver to come round once (it may be sending a byte)."""
        self._run(math.ceil(self._host_cpb * 10) + 8)

    def drive(self, signal, value):
        """Set another input of the design (a reset button, say) from now on."""
        self._pokes.append((signal, value))
        self._settle()

    def peek(self, signal):
        """The current value of a signal of the design (an LED, say)."""
        self._watched.setdefault(id(signal), (signal, None))
        self._settle()
        return self._watched[id(signal)][1]

    @property
    def in_waiting(self):
        return len(self._from_board)

    def write(self, data):
        self._to_board.extend(bytes(data))
        return len(data)

    def flush(self):
        """Run until every written byte has left the host."""
        byte_time = math.ceil(self._host_cpb * 10)
        while self._to_board:
            self._run(byte_time * len(self._to_board))
        self._run(byte_time)

    def read(self, size=1):
        byte_time = math.ceil(self._board_cpb * 10)
        deadline = self._cycles + math.ceil(self.timeout * self._clk_freq)
        while len(self._from_board) < size and self._cycles < deadline:
            missing = size - len(self._from_board)
            self._run(min(max(byte_time, missing * byte_time), deadline - self._cycles))
        data = bytes(self._from_board[:size])
        del self._from_board[:size]
        return data

    def reset_input_buffer(self):
        self._from_board.clear()

    def close(self):
        """Let the line drivers finish (so no coroutine is left suspended) and close the VCD."""
        if self._running:
            self._running = False
            self._run(math.ceil(self._host_cpb * 12) + 32)
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_serial(port, baud, *, timeout=1.0):
    """Open ``port`` with pyserial, 8N1, or raise ``RuntimeError`` saying what is missing."""
    try:
        import serial
    except ImportError:
        raise RuntimeError("pyserial is not installed: pip install 'convhw[board]' "
                           "(or pip install pyserial)") from None
    try:
        connection = serial.Serial(port, baud, timeout=timeout)
    except (serial.SerialException, OSError) as error:
        raise RuntimeError(f"cannot open serial port {port!r}: {error}") from None
    try:
        # Linux: have the FTDI driver hand over bytes at once rather than every 16 ms.
        connection.set_low_latency_mode(True)
    except (AttributeError, OSError, ValueError):
        pass
    return connection
