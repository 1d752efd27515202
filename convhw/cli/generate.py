"""``convhw generate``: write the core as one Verilog (or RTLIL) module with AXI4-Stream ports."""

import re
import sys

from ..export import to_rtlil, to_verilog
from ..errors import CliError
from ..model_options import add_model_arguments, chain_from_args
from ..spec_options import add_spec_arguments, spec_from_args

__all__ = ["add_parser", "run"]

FORMATS = {"verilog": to_verilog, "rtlil": to_rtlil}


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "generate", help="write Verilog/RTLIL for a spec",
        description="Write one top module with ports clk, rst, s_axis_* (input), m_axis_* "
                    "(output) and, with --runtime-coeffs, coef_we/coef_addr/coef_data.")
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="output file ('-' for stdout)")
    parser.add_argument("--name", default=None,
                        help="top module name (default conv2d, conv1d with --dims 1, convnet "
                             "with --model)")
    parser.add_argument("--format", choices=tuple(FORMATS), default=None,
                        help="default: rtlil for .il/.rtlil files, verilog otherwise")
    add_spec_arguments(parser)
    add_model_arguments(parser)
    return parser


def output_format(path, chosen):
    if chosen is not None:
        return chosen
    return "rtlil" if str(path).lower().endswith((".il", ".rtlil")) else "verilog"


def run(args):
    model = chain_from_args(args)
    spec = model[2] if model else spec_from_args(args)
    name = args.name or ("convnet" if model else
                         "conv1d" if len(spec.frame_shape) == 1 else "conv2d")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name):
        raise CliError(f"--name: {name!r} is not a Verilog identifier (letters, digits, _ and $, "
                       f"not starting with a digit)")
    text = FORMATS[output_format(args.output, args.format)](spec, name=name)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        try:
            with open(args.output, "w") as file:
                file.write(text)
        except OSError as error:
            raise CliError(f"--output: cannot write {args.output!r}: "
                           f"{error.strerror or error}")
        lanes = getattr(spec, "pixels_per_clock", 1)
        what = (f"{len(spec)} layers, {spec.cycles_per_frame} cycles per inference" if model
                else f"latency {spec.latency} cycles"
                + (f", {lanes} pixels per clock" if lanes > 1 else ""))
        print(f"wrote {args.output}: module {name}, {spec.in_bits}-bit in, {spec.out_bits}-bit "
              f"out, {what}", file=sys.stderr)
    return 0
