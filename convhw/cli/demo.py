"""``convhw demo``: the whole flow on built-in pictures, for a first run after ``pip install``.

Sobel-x (``padding="same"``) on :func:`convhw.images.demo_image` (128x96 unless told otherwise):

1. simulates the core cycle-accurately (the compiled backend when Verilator is there, else
   pysim) and compares it with the golden model;
2. writes the Verilog;
3. synthesizes it for iCE40 UP5K (skipped with ``--no-synth``; when the toolchain is missing,
   a note says which extra to install and the rest still runs);
4. writes ``input.png``, ``output.png`` and the exact ``output.npy``;
5. in colour (skipped with ``--no-colour``): sharpens a photo of the same size, R, G and B with
   the same kernel (the depthwise 3-channel layer, as ``cv2.filter2D`` filters a colour image),
   simulated with the same engine and compared with the golden model, and writes
   ``input-colour.png``, ``output-colour.png`` (the sharpened photo, clipped to 0..255) and
   ``output-colour.npy``. The photo is :func:`convhw.images.demo_photo` (``china.jpg``, which
   ships with scikit-learn); without scikit-learn, a note says so and the procedural
   :func:`convhw.images.demo_colour_image` stands in. It is not synthesized;
6. prints a summary.

Exit status: 1 when a simulation is not bit-exact or a synthesis tool ran and failed, else 0
(also when synthesis was skipped, or could not run because the toolchain is missing).
"""

import os
import sys

from ..export import to_verilog
from ..images import demo_colour_image, demo_image, demo_photo, save_frame
from ..kernels import parse_kernel
from ..spec import ConvSpec
from ..errors import CliError, ToolFailed
from .simulate import picture_levels, run_and_compare
from .synth import format_report, synthesize_spec

__all__ = ["add_parser", "run", "choose_backend", "COLOUR_KERNEL"]

#: The colour part's kernel: its gain is 1, so its picture is the sharpened photo, not stretched.
COLOUR_KERNEL = "sharpen"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "demo", help="Sobel on a built-in image: simulate, export, synthesize, write PNGs",
        description="Run the whole flow on a procedural test image; files go to --output-dir.")
    parser.add_argument("--output-dir", default="convhw-demo", metavar="DIR",
                        help="where the PNGs, the .npy and the Verilog go (default convhw-demo)")
    parser.add_argument("--no-synth", action="store_true", help="skip synthesis")
    parser.add_argument("--no-colour", action="store_true",
                        help="skip the colour part (a photo sharpened by the 3-channel core)")
    parser.add_argument("--kernel", default="sobel-x", metavar="K",
                        help="kernel (default sobel-x); any --kernel value of the other commands")
    parser.add_argument("--width", type=int, default=128, metavar="W",
                        help="image width, both pictures (128)")
    parser.add_argument("--height", type=int, default=96, metavar="H",
                        help="image height, both pictures (96)")
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


def _simulate(spec, frame, backend, requested):
    """``run_and_compare`` on one frame: ``(result, expected, report, backend)``; an automatic
    fast backend that fails falls back to pysim (the backend returned is the one that ran)."""
    try:
        return (*run_and_compare(spec, [frame], backend=backend), backend)
    except CliError as error:
        if backend != "fast" or requested == "fast":
            raise
        _say(f"convhw demo: the fast backend failed ({error}); simulating with pysim")
        return (*run_and_compare(spec, [frame], backend="pysim"), "pysim")


def _colour_picture(width, height):
    """``(picture, description)``: the sample photo, or the procedural colour picture with a
    note when scikit-learn is missing."""
    try:
        return demo_photo(width, height), "china.jpg (scikit-learn's sample photo)"
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("sklearn"):
            raise
        _say("convhw demo: note: scikit-learn is not installed (pip install scikit-learn, or "
             "convhw's test extra), so the colour part uses a procedural picture instead of "
             "the photo china.jpg")
        return demo_colour_image(width, height), "a procedural colour picture"


def _colour_part(args, backend):
    """Sharpen a colour picture with the 3-channel core: ``(report, lines, paths)``."""
    picture, description = _colour_picture(args.width, args.height)
    spec = ConvSpec(width=args.width, height=args.height, kernel=parse_kernel(COLOUR_KERNEL),
                    in_channels=3, padding="same")
    _say(f"convhw demo: {COLOUR_KERNEL} on {description}, R, G and B, simulating ({backend})...")
    result, expected, report, _ = _simulate(spec, picture, backend, args.backend)
    paths = [os.path.join(args.output_dir, name)
             for name in ("input-colour.png", "output-colour.png", "output-colour.npy")]
    output = result.frames[0] if result else expected[0]
    save_frame(paths[0], picture, stretch=False)
    save_frame(paths[1], output, levels=picture_levels(spec))
    save_frame(paths[2], output)
    lines = [f"colour: {COLOUR_KERNEL} on {description}, {args.width}x{args.height}, 3 channels "
             f"(depthwise), engine {report['engine']}",
             f"  match: {'yes, bit-exact' if report['match'] else 'NO'}"
             + (f", {report['cycles']} cycles" if report["cycles"] is not None else "")]
    lines += [f"  {error}" for error in report["errors"]]
    return report, lines, paths


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
    result, expected, report, backend = _simulate(spec, image, backend, args.backend)
    verilog_path = os.path.join(args.output_dir, "conv2d.v")
    with open(verilog_path, "w") as file:
        file.write(to_verilog(spec, name="conv2d"))
    paths = {name: os.path.join(args.output_dir, name)
             for name in ("input.png", "output.png", "output.npy", "input.npy")}
    save_frame(paths["input.png"], image, stretch=False)
    save_frame(paths["input.npy"], image)
    output = result.frames[0] if result else expected[0]
    save_frame(paths["output.png"], output, levels=picture_levels(spec))
    save_frame(paths["output.npy"], output)

    colour, colour_lines, colour_paths = {"match": True}, [], []
    if not args.no_colour:
        colour, colour_lines, colour_paths = _colour_part(args, backend)

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
    for line in colour_lines:
        print(line)
    print(f"wrote {verilog_path}, {paths['input.png']}, {paths['output.png']}, "
          f"{paths['output.npy']}" + "".join(f", {path}" for path in colour_paths))
    return 0 if report["match"] and colour["match"] and not synth_failed else 1
