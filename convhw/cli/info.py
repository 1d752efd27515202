"""``convhw info``: a spec's derived numbers (shapes, widths, latency, cycles) without building.

With ``--model M.onnx`` it describes the network instead: per layer the shapes, the folding the
balancer chose (:mod:`convhw.folding`), cycles per frame, multipliers, weight and line-buffer
bits, then the bottleneck and the totals.
"""

import json

from ..errors import CliError
from ..model_options import (add_folding_arguments, budget_from_args, folding_from_args,
                             load_network)
from ..spec_options import add_spec_arguments, spec_from_args

__all__ = ["add_parser", "run", "model_facts"]

TARGET_NAMES = ("ice40-up5k", "ice40-hx8k", "ecp5-25k", "ecp5-85k")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "info", help="print a spec's (or an ONNX model's) derived numbers: shapes, widths, "
                     "latency, cycles, folding",
        description="Validate a spec and print what it derives, without elaborating hardware. "
                    "With --model: the layers of a quantized ONNX model, their balanced "
                    "folding, cycles, multipliers and memory.")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    model = parser.add_argument_group("ONNX model")
    model.add_argument("--model", metavar="M.onnx",
                       help="a quantized ONNX model (quantize_static, QDQ or QOperator)")
    model.add_argument("--target", choices=TARGET_NAMES,
                       help="--model: the part whose DSP blocks are the multiplier budget")
    model.add_argument("--clock-mhz", type=float, metavar="MHZ",
                       help="--model: also print inferences per second at this clock")
    add_folding_arguments(parser)
    add_spec_arguments(parser)
    return parser


def _layer_memory(layer, spec):
    """``(weight bits, line-buffer bits)`` of a layer."""
    if spec is not None:
        pool = getattr(spec, "operation", "conv") != "conv"
        return 0 if pool else spec.weight_bits, spec.line_buffer_bits
    from ..bits import signed_bits

    channels, _, width = layer.in_shape
    rows = layer.kernel[0] - 1
    return 0, rows * width * channels * signed_bits(*layer.clamp)


def model_facts(network, folding, *, clock_mhz=None):
    """Plain values describing a folded network (what ``info --model --json`` prints)."""
    layers = []
    for layer, chosen in zip(network.layers, folding.layers):
        weight_bits, line_bits = _layer_memory(layer, chosen.spec)
        layers.append({"name": layer.name, "kind": layer.kind, "op": layer.op,
                       "in_shape": list(layer.in_shape), "out_shape": list(layer.out_shape),
                       "pe": chosen.pe, "simd": chosen.simd, "cycles": chosen.cycles,
                       "multipliers": chosen.multipliers, "weight_bits": weight_bits,
                       "line_buffer_bits": line_bits, "overridden": chosen.overridden})
    facts = {"input_shape": list(network.input_shape),
             "output_shape": list(network.output_shape),
             "max_multipliers": folding.max_multipliers, "multipliers": folding.multipliers,
             "cycles_per_frame": folding.cycles_per_frame,
             "bottleneck": folding.bottleneck.name,
             "weight_bits": sum(layer["weight_bits"] for layer in layers),
             "line_buffer_bits": sum(layer["line_buffer_bits"] for layer in layers),
             "layers": layers}
    if clock_mhz is not None:
        facts["clock_mhz"] = clock_mhz
        facts["inferences_per_second"] = clock_mhz * 1e6 / folding.cycles_per_frame
    return facts


def _shape(shape):
    return "x".join(str(v) for v in shape)


def _run_model(args):
    if args.clock_mhz is not None and not args.clock_mhz > 0:
        raise CliError(f"--clock-mhz: must be a positive number of MHz, not {args.clock_mhz}")
    network = load_network(args.model)
    folding = folding_from_args(args, network)
    _, source = budget_from_args(args)
    facts = model_facts(network, folding, clock_mhz=args.clock_mhz)
    facts.update(model=args.model, budget_from=source)
    if args.json:
        print(json.dumps(facts))
        return 0
    print(f"model {args.model}: input {_shape(network.input_shape)} -> output "
          f"{_shape(network.output_shape)}, {len(network.layers)} layers; budget "
          f"{folding.max_multipliers} multipliers ({source})")
    header = ("layer", "kind", "in -> out", "pe x simd", "cycles/frame", "multipliers",
              "weight bits", "line-buffer bits")
    rows = [header]
    for layer in facts["layers"]:
        folded = "-" if layer["pe"] is None else f"{layer['pe']} x {layer['simd']}" + \
            (" (set)" if layer["overridden"] else "")
        rows.append((layer["name"], layer["kind"],
                     f"{_shape(layer['in_shape'])} -> {_shape(layer['out_shape'])}", folded,
                     str(layer["cycles"]), str(layer["multipliers"]),
                     str(layer["weight_bits"]), str(layer["line_buffer_bits"])))
    rows.append(("total", "", "", "", str(facts["cycles_per_frame"]),
                 str(facts["multipliers"]), str(facts["weight_bits"]),
                 str(facts["line_buffer_bits"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) if i < 4 else cell.rjust(width)
                 for i, (cell, width) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip())
        if index == 0 or index == len(rows) - 2:
            print("  ".join("-" * width for width in widths))
    bottleneck = folding.bottleneck
    print(f"bottleneck: {bottleneck.name} ({bottleneck.cycles} cycles per frame): one "
          f"inference every {folding.cycles_per_frame} cycles, streamed back to back")
    if args.clock_mhz is not None:
        print(f"at {args.clock_mhz:g} MHz: {facts['inferences_per_second']:,.0f} inferences/s")
    return 0


def run(args):
    if args.model is not None:
        return _run_model(args)
    for option in ("target", "clock_mhz", "max_multipliers", "folding"):
        if getattr(args, option) is not None:
            raise CliError(f"--{option.replace('_', '-')}: goes with --model")
    spec = spec_from_args(args)
    facts = spec.to_dict()
    facts["taps"] = spec.taps
    layer = getattr(spec, "is_layer", False)
    if hasattr(spec, "form"):
        # The form built, and its multiplications (runtime products, or constant coefficients
        # other than 0, each a shift-add).
        facts["form"] = spec.form
        facts["multipliers"] = spec.multipliers_built   # (to_dict gives separable_vectors)
    if not getattr(spec, "folded", False):
        channels = range(getattr(spec, "out_channels", 1))
        facts["adder_tree_terms"] = (spec.adder_terms if hasattr(spec, "adder_terms") else
                                     sum(len(spec.channel_terms(co)) for co in channels)
                                     if layer else len(spec.terms))
    lanes = getattr(spec, "pixels_per_clock", 1)
    facts["pixels_per_clock"] = lanes
    facts["dsp_taps"] = spec.dsp_taps * lanes    # (every lane's)
    if len(spec.frame_shape) == 2:
        facts["line_buffer_bits"] = spec.line_buffer_bits
    if layer:
        facts["weight_bits"] = spec.coefficient_count * spec.coeff_bits
    if args.json:
        print(json.dumps(facts))
        return 0
    for key, value in facts.items():
        print(f"{key:>18}: {value}")
    return 0
