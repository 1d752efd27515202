"""``convhw synth``: synthesize, place and route a core with Yosys and nextpnr; report resources.

The tools are the YoWASP packages of the ``toolchain`` extra unless ``YOSYS``, ``NEXTPNR_ICE40``,
``NEXTPNR_ECP5`` (and so on) name other binaries. Progress lines go to stderr; ``--json`` prints
only the report on stdout. Exit status 0, or 1 when ``--freq`` was given and not met, or 2 when
a tool is missing or fails (the end of its log goes to stderr).
"""

import json
import sys

from ..errors import CliError, tool_failure
from ..model_options import add_model_arguments, chain_from_args, fold_to_place, given_folding
from ..spec_options import add_spec_arguments, spec_from_args

__all__ = ["add_parser", "run", "TARGET_NAMES", "synthesize_spec", "format_report"]

TARGET_NAMES = ("ice40-up5k", "ice40-hx8k", "ecp5-25k", "ecp5-85k")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "synth", help="synthesize with Yosys/nextpnr and report Fmax and resources",
        description="Run Yosys and nextpnr on the core; report LUTs, flip-flops, block RAMs, "
                    "DSPs and Fmax. Exit status 1 when --freq is given and not met.")
    parser.add_argument("--target", required=True, choices=TARGET_NAMES, help="FPGA part")
    parser.add_argument("--freq", type=float, metavar="MHZ",
                        help="clock constraint in MHz (default: the flow's own)")
    parser.add_argument("--seed", type=int, default=None, metavar="N", help="nextpnr seed")
    parser.add_argument("--build-dir", metavar="DIR",
                        help="keep the netlists, logs and reports here")
    parser.add_argument("--json", action="store_true", help="print only the JSON report")
    add_spec_arguments(parser)
    add_model_arguments(parser)
    return parser


def _progress(message, *rest, **_):
    print(f"convhw: {' '.join(str(part) for part in (message, *rest))}", file=sys.stderr,
          flush=True)


def synthesize_spec(spec, target, *, freq=None, seed=None, build_dir=None):
    """``convhw.toolchain.synthesize`` with progress on stderr; its report."""
    try:
        from ..toolchain import synthesize
    except ModuleNotFoundError as error:
        if error.name and error.name.startswith("convhw"):
            raise CliError("synth: convhw.toolchain is not part of this install")
        raise CliError(f"synth: the toolchain is missing ({error}); "
                       f"pip install 'convhw[toolchain]'")
    if freq is not None and not freq > 0:
        raise CliError(f"--freq: must be a positive number of MHz, not {freq}")
    kwargs = {"progress": _progress}
    for key, value in (("freq", freq), ("seed", seed), ("build_dir", build_dir)):
        if value is not None:
            kwargs[key] = value
    try:
        return synthesize(spec, target, **kwargs)
    except RuntimeError as error:
        if type(error) is not RuntimeError:  # ToolchainMissing and other specific errors
            raise
        raise tool_failure(error) from None


def _placeable_chain(model, target, build_dir):
    """The model's chain, folded further where its logic would not place on ``target``."""
    network, folding, _ = model
    try:
        folding, note = fold_to_place(network, folding, target, progress=_progress,
                                      build_dir=build_dir)
    except RuntimeError as error:
        if type(error) is not RuntimeError:
            raise
        raise tool_failure(error) from None
    if note:
        _progress(note)
    return network.chain(folding.foldings)


def format_report(report):
    """A short human-readable summary of ``report.to_dict()``."""
    fmax = report.get("fmax_mhz")
    met = report.get("freq_met")
    lines = [
        f"target {report['target']}: Fmax {fmax:.1f} MHz" if fmax is not None
        else f"target {report['target']}: Fmax unknown",
        f"  LUTs {report.get('luts')}, flip-flops {report.get('ffs')}, "
        f"block RAMs {report.get('brams')}, DSPs {report.get('dsps')}",
    ]
    if met is not None:
        lines.append(f"  requested frequency {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def run(args):
    model = chain_from_args(args)
    spec = model[2] if model else spec_from_args(args)
    if model and not given_folding(args):
        spec = _placeable_chain(model, args.target, args.build_dir)
    report = synthesize_spec(spec, args.target, freq=args.freq, seed=args.seed,
                             build_dir=args.build_dir).to_dict()
    if args.json:
        print(json.dumps(report))
    else:
        print(format_report(report))
    return 1 if args.freq is not None and report.get("freq_met") is False else 0
