"""``convhw demo``: the whole flow on a built-in picture, for a first run after ``pip install``.

Sobel-x (``padding="same"``) on :func:`convhw.images.demo_image` (128x96 unless told otherwise):

1. simulates the core cycle-accurately (the compiled backend when Verilator is there, else
   pysim) and compares it with the golden model;
2. writes the Verilog;
3. synthesizes it for iCE40 UP5K (skipped with ``--no-synth``; when the toolchain is missing,
   a note says which extra to install and the rest still runs);
4. writes ``input.png``, ``output.png`` and the exact ``output.npy``;
5. prints a summary.

Exit status: 1 when the simulation is not bit-exact or a synthesis tool ran and failed, else 0
(also when synthesis was skipped, or could not run because the toolchain is missing).
"""

import os
import sys

from ..export import to_verilog
from ..images import demo_image, save_frame
from ..kernels import parse_kernel
from ..spec import ConvSpec
from .errors import CliError, ToolFailed
from .simulate import run_and_compare
from .synth import format_report, synthesize_spec

__all__ = ["add_parser", "run", "choose_backend"]


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "demo", help="Sobel on a built-in image: simulate, export, synthesize, write PNGs",
        description="Run the whole flow on a procedural test image; files go to --output-dir.")
    parser.add_argument("--output-dir", default="convhw-demo", metavar="DIR",
                        help="where the PNGs, the .npy and the Verilog go (default convhw-demo)")
    parser.add_argument("--no-synth", action="store_true", help="skip synthesis")
    parser.add_argument("--kernel", default="sobel-x", metavar="K",
                        help="kernel (default sobel-x); any --kernel value of the other commands")
    parser.add_argument("--width", type=int, default=128, metavar="W", help="image width (128)")
    parser.add_argument("--height", type=int, default=96, metavar="H", help="image height (96)")
    parser.add_argument("--backend", choices=("auto", "pysim", "fast"), default="auto",
                        help="simulation engine (default: fast when Verilator is installed)")
    return parser


def choose_backend(requested="auto"):
    """``"fast"`` when requested or (for ``"auto"``) when the compiled engine is usable."""
    if requested != "auto":
        return requested
    try:
        from ..fastsim import available
    except ImportError:
        return "pysim"
    return "fast" if available() else "pysim"


def _say(message):
    print(message, file=sys.stderr, flush=True)


def _synthesize(spec):
    """``(report dict, None, False)``, or ``(None, note, failed)``: a missing toolchain is a
    note, a tool that ran and failed is a failure."""
    missing = []
    try:
        from ..toolchain import ToolchainMissing
        missing.append(ToolchainMissing)
    except ImportError:
        pass
    try:
        return synthesize_spec(spec, "ice40-up5k").to_dict(), None, False
    except tuple(missing) as error:
        return None, " ".join(str(error).split()), False
    except ToolFailed as error:
        return None, f"FAILED: {error}", True
    except CliError as error:
        return None, str(error), False


def run(args):
    try:
        kernel = parse_kernel(args.kernel)
        spec = ConvSpec(width=args.width, height=args.height, kernel=kernel, padding="same")
    except (ValueError, TypeError) as error:
        raise CliError(f"demo: {error}")
    os.makedirs(args.output_dir, exist_ok=True)
    image = demo_image(args.width, args.height)
    backend = choose_backend(args.backend)

    _say(f"convhw demo: {args.kernel} on a {args.width}x{args.height} test image, "
         f"simulating ({backend})...")
    try:
        result, expected, report = run_and_compare(spec, [image], backend=backend)
    except CliError as error:
        if backend != "fast" or args.backend == "fast":
            raise
        _say(f"convhw demo: the fast backend failed ({error}); simulating with pysim")
        result, expected, report = run_and_compare(spec, [image], backend="pysim")
    verilog_path = os.path.join(args.output_dir, "conv2d.v")
    with open(verilog_path, "w") as file:
        file.write(to_verilog(spec, name="conv2d"))
    paths = {name: os.path.join(args.output_dir, name)
             for name in ("input.png", "output.png", "output.npy", "input.npy")}
    save_frame(paths["input.png"], image, stretch=False)
    save_frame(paths["input.npy"], image)
    output = result.frames[0] if result else expected[0]
    save_frame(paths["output.png"], output)
    save_frame(paths["output.npy"], output)

    synth, note, synth_failed = None, "skipped (--no-synth)", False
    if not args.no_synth:
        _say("convhw demo: synthesizing for ice40-up5k (Yosys, nextpnr)...")
        synth, note, synth_failed = _synthesize(spec)

    print(f"kernel {args.kernel} {spec.kernel_shape[0]}x{spec.kernel_shape[1]}, "
          f"image {args.width}x{args.height}, engine {report['engine']}")
    print(f"match: {'yes, bit-exact with the golden model' if report['match'] else 'NO'}")
    for error in report["errors"]:
        print(f"  {error}")
    if report["cycles"] is not None:
        print(f"cycles: {report['cycles']} for one frame (latency {spec.latency}), "
              f"{report['pixels_per_cycle']} pixels/cycle")
    if synth is not None:
        print(format_report(synth))
    else:
        print(f"synthesis: {note}")
    print(f"wrote {verilog_path}, {paths['input.png']}, {paths['output.png']}, "
          f"{paths['output.npy']}")
    return 0 if report["match"] and not synth_failed else 1
