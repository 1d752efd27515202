"""A board: which amaranth-boards platform, which pins, which defaults; and the top that uses them.

:class:`BoardInfo` is all it takes to support an amaranth-boards platform. :class:`BoardTop`
puts a :class:`~convhw.board.accelerator.UARTAccelerator` on its UART, reset button and LEDs,
clocked by the platform's default clock.
"""

from dataclasses import dataclass

from amaranth import *
from amaranth.lib import io

from .accelerator import DEFAULT_TIMEOUT, UARTAccelerator
from .protocol import rx_fifo_depth

__all__ = ["BoardInfo", "BoardTop"]


@dataclass(frozen=True)
class BoardInfo:
    """How the accelerator sits on one board.

    Parameters
    ----------
    name : str
        For messages and file names.
    platform : type
        An amaranth-boards platform class; its default clock clocks the design.
    baud : int
        Default line rate: a rate the board's USB-serial chip makes exactly, with at least 4
        clocks per bit.
    reset : (str, int) or None
        The button resource that resets the design while pressed (``None``: no button).
    leds : tuple of (str, int) or None
        LED resources for ``activity``, ``error`` and ``busy``; ``None`` leaves one out.
    fifo_depth : int
        Receive FIFO bytes: more lets the host keep more pixels in flight.
    programmer : (str, str)
        The environment variable and default command the platform programs with.
    dsps : int, optional
        DSP blocks on the device: runtime-coefficient taps beyond them are built from logic
        (unless the spec sets ``max_dsps``). This changes no bytes on the line.
    build_options : tuple of (str, str)
        Extra toolchain options for ``platform.build``, e.g. ``(("synth_opts", "-dsp"),)``.
    tie_high : tuple of (str, int, str)
        ``(resource, number, subsignal)`` pins driven high, for boards that need it (the
        ULX3S's ESP32 ``gpio0``, which keeps the ESP32 from rebooting the board).
    """
    name: str
    platform: type
    baud: int
    reset: tuple = ("button", 0)
    leds: tuple = (("led", 0), ("led", 1), ("led", 2))
    fifo_depth: int = 4096
    programmer: tuple = ("", "")
    dsps: int = None
    build_options: tuple = ()
    tie_high: tuple = ()

    def fifo_for(self, spec):
        """The board's receive FIFO bytes, or the spec's window when that is larger."""
        return max(self.fifo_depth, rx_fifo_depth(spec, minimum=1))

    def fit(self, spec):
        """``spec`` with ``max_dsps`` set to the board's DSP count when it has too few."""
        # (A folded layer's multipliers all take DSP blocks, so it is left as it is.)
        products = spec.multipliers if getattr(spec, "is_layer", False) else spec.taps
        if spec.runtime_coeffs and spec.max_dsps is None and self.dsps is not None \
                and products > self.dsps and not getattr(spec, "folded", False):
            return spec.replace(max_dsps=self.dsps)
        return spec


class BoardTop(Elaboratable):
    """The accelerator for ``spec`` on ``board``'s pins (needs a platform to elaborate).

    ``spec`` is used as given: :func:`~convhw.board.build.build_board` first fits it to the
    board (:meth:`BoardInfo.fit`) and validates every parameter with
    :func:`~convhw.board.accelerator.check_parameters`.
    """

    def __init__(self, board, spec, *, baud, timeout=DEFAULT_TIMEOUT, fifo_depth):
        self._board = board
        self._spec = spec
        self._baud = baud
        self._timeout = timeout
        self._fifo_depth = fifo_depth

    def elaborate(self, platform):
        if platform is None:
            raise TypeError("BoardTop needs a platform; simulate UARTAccelerator instead")
        m = Module()
        m.submodules.accelerator = acc = UARTAccelerator(
            self._spec, clk_freq=platform.default_clk_frequency, baud=self._baud,
            timeout=self._timeout, fifo_depth=self._fifo_depth)

        # Ask for every subsignal (the ULX3S also wires RTS and DTR) but use only RX and TX.
        lines = [sub.name for sub in platform.lookup("uart", 0).ios]
        uart = platform.request("uart", 0, dir={name: "-" for name in lines})
        m.submodules.rx_buffer = rx = io.Buffer("i", uart.rx)
        m.submodules.tx_buffer = tx = io.Buffer("o", uart.tx)
        m.d.comb += [acc.rx.eq(rx.i), tx.o.eq(acc.tx)]

        if self._board.reset is not None:
            button = platform.request(*self._board.reset, dir="-")
            m.submodules.reset_buffer = reset = io.Buffer("i", button)
            m.d.comb += acc.reset.eq(reset.i)

        for index, (resource, number, subsignal) in enumerate(self._board.tie_high):
            lines = [sub.name for sub in platform.lookup(resource, number).ios]
            pins = platform.request(resource, number, dir={name: "-" for name in lines})
            m.submodules[f"tie_high_{index}"] = tie = io.Buffer("o", getattr(pins, subsignal))
            m.d.comb += tie.o.eq(1)

        for index, (resource, signal) in enumerate(zip(self._board.leds,
                                                       (acc.activity, acc.error, acc.busy))):
            if resource is None:
                continue
            led = io.Buffer("o", platform.request(*resource, dir="-"))
            m.submodules[f"led_{index}"] = led
            m.d.comb += led.o.eq(signal)
        return m
