"""How close the board protocol gets to the serial line's limit, measured in simulation.

For a few specs, one frame goes through the whole board design (UART, protocol, Conv2d) in pysim
with the real host client pacing the pixels, at 4 clocks per bit. The line limit of a frame is
its busier direction, in byte times (10 bits): header + pixels in, accept + results + trailer
out. ``efficiency`` is that limit over the measured time (the header/accept turn-around, the
pipeline latency and the pacing make up the rest). The last columns project the frame time on
each board at its default baud, where the host adds its own latency (USB, OS) on top. Run it
from the repository root:

    python bench/board_link.py
"""

import argparse
import math

import numpy as np

from convhw import ConvSpec
from convhw.board import BoardClient, SimulatedSerial, UARTAccelerator, protocol
from convhw.board.defaults import BOARD_BAUDS

CLK, BAUD, TIMEOUT = 1e6, 250_000, 400e-6
SPECS = {
    "sobel 3x3 same, 11-bit out": ConvSpec(width=24, height=16, padding="same",
                                           kernel=[[1, 0, -1], [2, 0, -2], [1, 0, -1]]),
    "runtime 3x3 same, 20-bit out": ConvSpec(width=24, height=16, padding="same",
                                             kernel_shape=(3, 3)),
    "gauss 3x3 >>4, 8-bit out": ConvSpec(width=24, height=16, padding="same", shift=4,
                                         out_bits=8, kernel=[[1, 2, 1], [2, 4, 2], [1, 2, 1]]),
    "runtime 3x3 stride 2": ConvSpec(width=24, height=16, kernel_shape=(3, 3), stride=2),
}


def line_bytes(spec):
    """Bytes in each direction for one frame."""
    n_in = protocol.header_length(spec) + spec.width * spec.height * protocol.value_bytes(
        spec.in_bits)
    n_out = (protocol.ACCEPT_LEN + protocol.TRAILER_LEN
             + math.prod(spec.out_shape) * protocol.value_bytes(spec.out_bits))
    return n_in, n_out


def measure(spec, fifo_depth):
    dut = UARTAccelerator(spec, clk_freq=CLK, baud=BAUD, timeout=TIMEOUT, fifo_depth=fifo_depth)
    image = np.random.default_rng(0).integers(0, 256, size=spec.frame_shape)
    kernel = np.arange(9).reshape(3, 3) - 4 if spec.runtime_coeffs else None
    with SimulatedSerial(dut, clk_freq=CLK, baud=BAUD, timeout=0.05) as port:
        result = BoardClient(port, spec, timeout=TIMEOUT).run_frame(image, kernel)
    assert result.ok
    return result.seconds * CLK


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fifo", choices=("min", "default"), default="default",
                        help="receive FIFO: the bare window, or the default (512 bytes or more)")
    args = parser.parse_args(argv)
    print(f"| spec ({args.fifo} FIFO) | bytes in / out | cycles | line limit | efficiency | "
          + " | ".join(f"{name} at {baud / 1e6:g} Mbaud, 128x128" for name, baud in
                       BOARD_BAUDS.items()) + " |")
    print("| --- | --- | --- | --- | --- |" + " --- |" * len(BOARD_BAUDS))
    for name, spec in SPECS.items():
        fifo = protocol.rx_fifo_depth(spec, minimum=1) if args.fifo == "min" else None
        cycles = measure(spec, fifo)
        n_in, n_out = line_bytes(spec)
        limit = max(n_in, n_out) * 10 * CLK / BAUD
        big = spec.replace(width=128, height=128)
        projected = [max(line_bytes(big)) * 10 / baud for baud in BOARD_BAUDS.values()]
        print(f"| {name} | {n_in} / {n_out} | {cycles:.0f} | {limit:.0f} | "
              f"{limit / cycles:.0%} | " + " | ".join(f"{t * 1e3:.0f} ms" for t in projected)
              + " |")


if __name__ == "__main__":
    main()
