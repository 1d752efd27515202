"""Scenario: Sobel edge detection on a generated test picture, streamed through Conv2d.

Two cores, Sobel-x and Sobel-y ("same" padding, 8-bit pixels, 11-bit signed gradients), each run
the cycle-accurate simulation with random stalls on both streams and once without, and must match
the golden model bit for bit; the stall-free run must take exactly ``spec.cycles_per_frame``
cycles. The printout gives cycles and pixels per cycle, and the edge strength ``|gx| + |gy|``
found along the picture's shapes.

Run ``python -m sim.sobel`` or ``python sim/sobel.py`` (``--help`` for options). Exit status 0 when
everything is bit-exact, 1 otherwise.
"""

import argparse
import sys

import numpy as np

from convhw import Conv2d, ConvSpec
from convhw.golden import run_spec
from convhw.harness import describe_mismatch, simulate

__all__ = ["SOBEL_X", "SOBEL_Y", "demo_picture", "sobel_spec", "main"]

SOBEL_X = ((1, 0, -1), (2, 0, -2), (1, 0, -1))
SOBEL_Y = ((1, 2, 1), (0, 0, 0), (-1, -2, -1))


def demo_picture(width, height):
    """An 8-bit picture with edges in every direction: a ramp, a bright disc and a dark bar."""
    y, x = np.mgrid[0:height, 0:width]
    picture = 40 + x * 120 // max(1, width - 1)  # a gentle horizontal ramp
    radius = max(1.0, min(width, height) / 4)
    disc = (x - width / 3) ** 2 + (y - height / 2) ** 2 <= radius ** 2
    picture = np.where(disc, 230, picture)
    bar = (x >= width * 2 // 3) & (x < width * 2 // 3 + max(1, width // 8))
    picture = np.where(bar & (y >= height // 4), 10, picture)
    return picture.astype(np.int64)


def sobel_spec(width, height, kernel):
    return ConvSpec(width=width, height=height, kernel=kernel, padding="same", in_bits=8)


def _probability(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be from 0 up to (not including) 1, not {text}")
    return value


def _size(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m sim.sobel",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=_size, default=64, help="picture width (default 64)")
    parser.add_argument("--height", type=_size, default=48, help="picture height (default 48)")
    parser.add_argument("--stall", type=_probability, default=0.2,
                        help="stall probability on both streams (default 0.2)")
    parser.add_argument("--seed", type=int, default=1, help="stall pattern seed (default 1)")
    parser.add_argument("--vcd", metavar="FILE", help="write a VCD of the stalled Sobel-x run")
    args = parser.parse_args(argv)

    picture = demo_picture(args.width, args.height)
    ok = True
    gradients = []
    for name, kernel in (("sobel-x", SOBEL_X), ("sobel-y", SOBEL_Y)):
        spec = sobel_spec(args.width, args.height, kernel)
        expected = run_spec(spec, picture)
        gradients.append(expected)
        print(f"{name}: {spec}")
        print(f"  {len(spec.terms)} adder-tree terms, no multipliers, accumulator "
              f"{spec.acc_bits} bits, latency {spec.latency} cycles")
        for stall in (args.stall, 0.0):
            vcd = args.vcd if name == "sobel-x" and stall == args.stall else None
            result = simulate(Conv2d(spec), [picture], in_stall=stall, out_stall=stall,
                              seed=args.seed, vcd=vcd)
            exact = bool(np.array_equal(result.frames[0], expected))
            ok &= exact and not result.errors
            line = (f"  stalls {stall:.0%}: {'bit-exact' if exact else 'MISMATCH'}, "
                    f"{result.cycles} cycles, {picture.size / result.cycles:.3f} pixels/cycle")
            if stall == 0.0:
                on_time = result.cycles == spec.cycles_per_frame
                ok &= on_time
                line += (f" (spec.cycles_per_frame {spec.cycles_per_frame}"
                         f"{')' if on_time else ', MISMATCH)'}")
            print(line)
            for error in result.errors[:5]:
                print(f"    {error}")
            if not exact:
                print(f"    {describe_mismatch(result.frames[0], expected)}")

    magnitude = np.abs(gradients[0]) + np.abs(gradients[1])
    edges = magnitude >= 4 * 32  # a step of 32 grey levels or more
    print(f"edges: {edges.mean():.1%} of pixels, |gx|+|gy| up to {magnitude.max()}"
          f"{f', VCD in {args.vcd}' if args.vcd else ''}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
