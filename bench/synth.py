"""Fmax and resources of the fixed benchmark set (issue 3, part 7).

3x3, 5x5 and 7x7 kernels at W=640 (H=480), 8-bit unsigned pixels, on iCE40 UP5K and ECP5-25k,
with coefficients that are constant (a Gaussian-like kernel, every tap non-zero), runtime
(DSP blocks up to the part's count, the rest logic: what ``synthesize`` does by default) and
runtime with logic multipliers only (``max_dsps=0``). ``--forms`` builds each in the 2-D form
(the default, as issue 3 measured it), the separable form (a vertical then a horizontal 1-D
pass; runtime: two loaded vectors), or what ``ConvSpec`` chooses (``auto``: separable for the
constant Gaussians, 2-D for runtime). Prints a markdown table (or JSON with ``--json``). Run it
from the repository root:

    python bench/synth.py [--targets ice40-up5k,ecp5-25k] [--kernels 3,5,7]
                          [--modes constant,runtime,runtime-logic] [--forms 2-d,separable,auto]
                          [--seed 1] [--json]
"""

import argparse
import json
import math
import os
import sys
import tempfile

from convhw import ConvSpec
from convhw.toolchain import TARGETS, synthesize

WIDTH, HEIGHT, IN_BITS = 640, 480, 8
#: The issue's goals for 3x3 runtime coefficients at W=640.
FMAX_GOALS_MHZ = {"ice40-up5k": 70.0, "ecp5-25k": 180.0}


def constant_kernel(size):
    """Binomial (Gaussian-like) coefficients: every tap non-zero, several CSD digits each."""
    row = [math.comb(size - 1, k) for k in range(size)]
    return [[a * b for b in row] for a in row]


def line_buffer_bram_bound(target, size):
    """Block RAMs the packed line-buffer bits need, given the RAMs' widths and depths."""
    bits = (size - 1) * IN_BITS
    if target.family == "ice40":       # 256 x 16 per SB_RAM40_4K
        return math.ceil(bits / 16) * math.ceil(WIDTH / 256)
    return math.ceil(bits / 18) * math.ceil(WIDTH / 1024)   # 1024 x 18 per DP16KD


MODES = ("constant", "runtime", "runtime-logic")
#: The form of the core: ConvSpec's ``separable`` False, True, or None (its automatic choice).
FORMS = {"2-d": False, "separable": True, "auto": None}


def bench_spec(size, mode, form="2-d"):
    separable = FORMS[form]
    if mode == "constant":
        return ConvSpec(width=WIDTH, height=HEIGHT, in_bits=IN_BITS, kernel=constant_kernel(size),
                        separable=separable)
    return ConvSpec(width=WIDTH, height=HEIGHT, in_bits=IN_BITS, kernel_shape=(size, size),
                    max_dsps=0 if mode == "runtime-logic" else None, separable=separable)


def run(targets, sizes, modes, seed, build_root, progress, forms=("2-d",)):
    rows = []
    for target_name in targets:
        target = TARGETS[target_name]
        for size in sizes:
            for coefficients, form in ((c, f) for c in modes for f in forms):
                spec = bench_spec(size, coefficients, form)
                name = f"{target_name}-{size}x{size}-{coefficients}-{form}"
                build_dir = os.path.join(build_root, name)
                goal = FMAX_GOALS_MHZ.get(target_name) if size == 3 and coefficients != "constant" \
                    else None
                row = dict(target=target_name, kernel=f"{size}x{size}",
                           coefficients=coefficients, form=spec.form,
                           multipliers=spec.multipliers_built,
                           line_buffer_bram_bound=line_buffer_bram_bound(target, size))
                try:
                    report = synthesize(spec, target_name, freq=goal, seed=seed,
                                        build_dir=build_dir, progress=progress)
                except RuntimeError as error:     # e.g. the design does not fit the part
                    row["error"] = _first_error(str(error))
                    progress(f"failed: {name}: {row['error']}")
                else:
                    row.update({key: value for key, value in report.to_dict().items()
                                if key not in ("cells", "logs", "build_dir")})
                    progress(f"done: {name}: {report.summary()} ({report.seconds:.0f} s)")
                rows.append(row)
    return rows


def _first_error(message):
    if "ICESTORM_LC" in message or "TRELLIS_COMB" in message or "no BELs remaining" in message:
        return "does not fit: more logic cells than the part has"
    for line in message.splitlines():
        if "ERROR" in line.upper() and "failed with exit code" not in line:
            return line.strip()
    return message.splitlines()[0]


def markdown(rows, forms=False):
    if forms:
        return _forms_markdown(rows)
    lines = [
        "| target | kernel | coefficients | Fmax (MHz) | goal | LUT4 | FF | logic cells "
        "| BRAM (line buffer / bound) | DSP |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['target']} | {r['kernel']} | {r['coefficients']} | - | | | | "
                         f"| {r['error']} | |")
            continue
        goal = "" if r["freq_mhz"] is None else \
            f"{r['freq_mhz']:g}: {'met' if r['freq_met'] else 'MISSED'}"
        lines.append(
            f"| {r['target']} | {r['kernel']} | {r['coefficients']} | {r['fmax_mhz']:.1f} "
            f"| {goal} | {r['luts']} | {r['ffs']} | {r['logic_cells']} "
            f"| {r['brams']} ({r['line_buffer_brams']} / {r['line_buffer_bram_bound']}) "
            f"| {r['dsps']} |")
    return "\n".join(lines)


def _forms_markdown(rows):
    """The table comparing forms: multipliers (or shift-adds) built, resources, Fmax."""
    lines = [
        "| target | kernel | coefficients | form | multipliers | Fmax (MHz) | LUT4 | FF "
        "| logic cells | BRAM | DSP |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        head = f"| {r['target']} | {r['kernel']} | {r['coefficients']} | {r['form']} " \
               f"| {r['multipliers']} "
        if "error" in r:
            lines.append(head + f"| - | | | | {r['error']} | |")
            continue
        lines.append(head + f"| {r['fmax_mhz']:.1f} | {r['luts']} | {r['ffs']} "
                     f"| {r['logic_cells']} | {r['brams']} | {r['dsps']} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="ice40-up5k,ecp5-25k")
    parser.add_argument("--kernels", default="3,5,7")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--forms", default="2-d",
                        help="comma-separated: 2-d, separable, auto (default 2-d)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--build-dir", default=None)
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    targets = args.targets.split(",")
    for name in targets:
        if name not in TARGETS:
            parser.error(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")
    sizes = [int(k) for k in args.kernels.split(",")]
    modes = args.modes.split(",")
    for mode in modes:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    forms = args.forms.split(",")
    for form in forms:
        if form not in FORMS:
            parser.error(f"unknown form {form!r}; choose from {', '.join(FORMS)}")
    build_root = args.build_dir or tempfile.mkdtemp(prefix="convhw-bench-")
    progress = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr,
                                                                     flush=True))
    rows = run(targets, sizes, modes, args.seed, build_root, progress, forms)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(markdown(rows, forms=args.forms != "2-d"))
        print(f"\nseed {args.seed}; ECP5 speed grade 6; figures are out of context (shift-register "
              f"IO ring, {min(r.get('io_ring_ffs', 99) for r in rows)}+ FFs included in FF).")


if __name__ == "__main__":
    main()
