"""Fmax, resources and multiplier efficiency of a folded CNN layer (issue 10, part 6).

The layer: 3x3, Cin 8 -> Cout 16, 32x32, 8-bit unsigned input, runtime weights, "same" padding,
ReLU, requantized to 8 bits. It is synthesized at several foldings on iCE40 UP5K and ECP5-25k,
and its cycles per frame on a 64x64 frame (no stalls, compiled backend) are compared with the
ideal: ``outputs * Cout * KH*KW*Cin / multipliers``. Prints a markdown table (or JSON with
``--json``). Run it from the repository root:

    python bench/layer.py [--foldings ice40-up5k:8x1,ecp5-25k:8x3,...] [--seed 1] [--json]
                          [--no-synth]
"""

import argparse
import json
import math
import sys
import tempfile

import numpy as np

from convhw import Conv2d, ConvSpec
from convhw.golden import run_spec
from convhw.harness import simulate

CIN, COUT, KERNEL, SIZE = 8, 16, (3, 3), 32
#: The issue's goals: (target, multipliers) -> MHz.
GOALS_MHZ = {"ice40-up5k": 58.0, "ecp5-25k": 180.0}
DEFAULT_FOLDINGS = ("ice40-up5k:8x1,ice40-up5k:4x2,ice40-up5k:2x4,ice40-up5k:1x8,"
                    "ecp5-25k:8x3,ecp5-25k:4x6,ecp5-25k:2x12,ecp5-25k:16x2")


def layer_spec(pe, simd, size=SIZE):
    return ConvSpec(width=size, height=size, kernel_shape=KERNEL, in_channels=CIN,
                    out_channels=COUT, padding="same", relu=True, shift=8, out_bits=8,
                    pe=pe, simd=simd)


def line_buffer_bound(target):
    """Block RAMs the packed line buffer needs at most: KH-1 rows of every channel per word."""
    word = (KERNEL[0] - 1) * CIN * 8
    if target.startswith("ice40"):        # 256 x 16 per SB_RAM40_4K
        return math.ceil(word / 16) * math.ceil(SIZE / 256)
    return math.ceil(word / 18) * math.ceil(SIZE / 1024)   # 1024 x 18 per DP16KD


def efficiency(pe, simd, backend):
    """Cycles of a 64x64 frame, their ideal, and whether the result was bit-exact."""
    spec = layer_spec(pe, simd, size=64)
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, spec.input_shape)
    weights = rng.integers(-128, 128, (COUT, CIN, *KERNEL))
    result = simulate(Conv2d(spec), [frame], coefficients=[weights], backend=backend)
    exact = bool((result.frames[0] == run_spec(spec, frame, weights)).all())
    ideal = 64 * 64 * COUT * CIN * KERNEL[0] * KERNEL[1] / (pe * simd)
    return result.cycles, spec.cycles_per_frame, ideal, exact


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--foldings", default=DEFAULT_FOLDINGS,
                        help="target:PExSIMD, comma separated")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-synth", action="store_true", help="efficiency only")
    parser.add_argument("--backend", default="fast", choices=("fast", "pysim"))
    args = parser.parse_args(argv)
    rows = []
    for item in args.foldings.split(","):
        target, folding = item.split(":")
        pe, simd = (int(v) for v in folding.lower().split("x"))
        spec = layer_spec(pe, simd)
        row = {"target": target, "pe": pe, "simd": simd, "multipliers": pe * simd,
               "cycles_per_output": spec.fold}
        cycles, predicted, ideal, exact = efficiency(pe, simd, args.backend)
        row.update(cycles_64=cycles, predicted_64=predicted, exact=exact,
                   busy=round(ideal / cycles, 4))
        if not args.no_synth:
            from convhw.toolchain import synthesize
            with tempfile.TemporaryDirectory() as build_dir:
                report = synthesize(spec, target, seed=args.seed, build_dir=build_dir,
                                    progress=lambda message: print(f"  {item}: {message}",
                                                                   file=sys.stderr))
            row.update(fmax_mhz=report.fmax_mhz, goal_mhz=GOALS_MHZ.get(target),
                       luts=report.luts, ffs=report.ffs, logic_cells=report.logic_cells,
                       brams=report.brams, line_buffer_brams=report.line_buffer_brams,
                       line_buffer_bound=line_buffer_bound(target), dsps=report.dsps)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    columns = ["target", "pe", "simd", "multipliers", "cycles_per_output", "fmax_mhz",
               "goal_mhz", "logic_cells", "luts", "ffs", "brams", "line_buffer_brams",
               "line_buffer_bound", "dsps", "cycles_64", "predicted_64", "busy", "exact"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
