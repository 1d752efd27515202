"""Video rates at N pixels per clock (issue 12, parts 2 and 7): Fmax, resources and Mpx/s.

- 4K60: a 3x3 kernel with runtime coefficients, W=3840 (H=2160), reflect-101 borders, "same"
  padding, 4 pixels per clock on ECP5-85k. Goal: 150 MHz, that is 600 Mpx/s (4K60 needs 594
  with blanking, 498 active).
- 1080p60: gaussian3 (constant), W=1920 (H=1080), "same" padding, 2 pixels per clock on iCE40
  UP5K. Goal: 75 MHz, that is 150 Mpx/s (1080p60 needs 148.5).

Mpx/s is Fmax times the pixels per clock: with stride 1 the core takes N pixels every clock,
borders included. Also checked on each spec, at the full frame size on the compiled backend
when ``--check`` is given: bit-exact with the golden model, and the cycles of a frame without
stalls equal ``spec.cycles_per_frame``. Prints a markdown table (or JSON with ``--json``). Run
it from the repository root:

    python bench/video.py [--rows 4k60,1080p60] [--seed 1] [--json] [--check]
"""

import argparse
import json
import sys
import tempfile

import numpy as np

from convhw import Conv2d, ConvSpec
from convhw.golden import run_spec
from convhw.harness import simulate
from convhw.kernels import parse_kernel
from convhw.toolchain import synthesize

ROWS = {
    "4k60": dict(target="ecp5-85k", goal_mhz=150.0, spec=lambda: ConvSpec(
        width=3840, height=2160, kernel_shape=(3, 3), padding="same", border="reflect-101",
        pixels_per_clock=4)),
    "1080p60": dict(target="ice40-up5k", goal_mhz=75.0, spec=lambda: ConvSpec(
        width=1920, height=1080, kernel=parse_kernel("gaussian3"), padding="same",
        pixels_per_clock=2)),
}


def check(spec, height):
    """Bit-exact and cycles on a full-width frame of ``height`` rows (compiled backend)."""
    small = spec.replace(height=height)
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, small.input_shape)
    kernel = rng.integers(-128, 128, small.kernel_shape) if small.runtime_coeffs else None
    result = simulate(Conv2d(small), [frame], backend="fast",
                      coefficients=None if kernel is None else [kernel])
    exact = bool((result.frames[0] == run_spec(small, frame, kernel)).all())
    return exact and result.cycles == small.cycles_per_frame


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true",
                        help="also simulate 64 full-width rows on the fast backend")
    args = parser.parse_args(argv)
    rows = []
    for name in args.rows.split(","):
        if name not in ROWS:
            parser.error(f"unknown row {name!r}; choose from {', '.join(ROWS)}")
        config = ROWS[name]
        spec = config["spec"]()
        lanes = spec.pixels_per_clock
        row = dict(row=name, target=config["target"], width=spec.width, height=spec.height,
                   pixels_per_clock=lanes, goal_mhz=config["goal_mhz"],
                   cycles_per_frame=spec.cycles_per_frame)
        if args.check:
            row["exact_and_cycles"] = check(spec, 64)
        with tempfile.TemporaryDirectory() as build_dir:
            report = synthesize(spec, config["target"], freq=config["goal_mhz"],
                                seed=args.seed, build_dir=build_dir,
                                progress=lambda m: print(f"  {name}: {m}", file=sys.stderr))
        row.update(fmax_mhz=report.fmax_mhz, met=report.freq_met,
                   mpx_s=round(report.fmax_mhz * lanes, 1), luts=report.luts, ffs=report.ffs,
                   logic_cells=report.logic_cells, brams=report.brams,
                   line_buffer_brams=report.line_buffer_brams, dsps=report.dsps,
                   frames_per_s=round(report.fmax_mhz * 1e6 / spec.cycles_per_frame, 1),
                   critical_path=report.critical_path)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    columns = ["row", "target", "width", "height", "pixels_per_clock", "fmax_mhz", "goal_mhz",
               "met", "mpx_s", "frames_per_s", "logic_cells", "luts", "ffs", "brams",
               "line_buffer_brams", "dsps"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    print(f"\nseed {args.seed}; ECP5 speed grade 6; out of context (shift-register IO ring).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
