"""``convhw info``: a spec's derived numbers (shapes, widths, latency, cycles) without building."""

import json

from ..spec_options import add_spec_arguments, spec_from_args

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "info", help="print a spec's derived numbers: output shape, widths, latency, cycles",
        description="Validate a spec and print what it derives, without elaborating hardware.")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_spec_arguments(parser)
    return parser


def run(args):
    spec = spec_from_args(args)
    facts = spec.to_dict()
    facts["taps"] = spec.taps
    layer = getattr(spec, "is_layer", False)
    if not getattr(spec, "folded", False):
        channels = range(getattr(spec, "out_channels", 1))
        facts["adder_tree_terms"] = (sum(len(spec.channel_terms(co)) for co in channels)
                                     if layer else len(spec.terms))
    lanes = getattr(spec, "pixels_per_clock", 1)
    facts["pixels_per_clock"] = lanes
    facts["dsp_taps"] = spec.dsp_taps * lanes    # (every lane's)
    if len(spec.frame_shape) == 2:
        facts["line_buffer_bits"] = ((spec.span[0] - 1) * spec.width * spec.in_bits
                                     * spec.in_channels)
    if layer:
        facts["weight_bits"] = spec.coefficient_count * spec.coeff_bits
    if args.json:
        print(json.dumps(facts))
        return 0
    for key, value in facts.items():
        print(f"{key:>18}: {value}")
    return 0
