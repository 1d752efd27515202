"""``convhw prove``: prove the configured core's stream properties with SymbiYosys.

Builds the core of the spec options inside the formal harness (:mod:`convhw.formal`), writes
RTLIL and runs SymbiYosys: BMC to ``--depth`` cycles, then k-induction. Progress goes to stderr.

Exit status 0 when every property is proven for all time; 1 when one fails (the message names
it and the counterexample VCD is written into the build directory) or when induction does not
close (``bounded``: no failure within ``--depth`` cycles of reset); 2 for bad options or a
missing tool (``pip install 'convhw[formal]'``).
"""

import json
import sys
from pathlib import Path

from ..errors import CliError, tool_failure
from ..spec_options import add_spec_arguments, spec_from_args

__all__ = ["add_parser", "run", "build_core", "format_result"]

#: Largest frame, in stream positions, that prove accepts: the harness enumerates the
#: scheduler's states, and proof time grows with them.
MAX_POSITIONS = 4096


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "prove", help="formally prove the core's stream rules, no loss, framing and progress",
        description="Prove, with SymbiYosys (BMC, then k-induction), that the configured core "
                    "keeps the output stream rules, takes input only on a handshake, never "
                    "loses a result, frames its output exactly and answers within a bound. "
                    "Exit status 0 proven, 1 failed or only bounded, 2 bad options or no tool.")
    parser.add_argument("--depth", type=int, metavar="N",
                        help="BMC depth and induction length in cycles (default: the "
                             "pipeline depth + 4)")
    parser.add_argument("--solver", choices=("yices", "z3"),
                        help="SMT solver (default: yices when installed, else z3)")
    parser.add_argument("--build-dir", metavar="DIR", default="convhw-prove",
                        help="where the RTLIL, SymbiYosys's files and a counterexample go "
                             "(default: convhw-prove)")
    parser.add_argument("--json", action="store_true", help="print only the JSON report")
    add_spec_arguments(parser)
    return parser


def build_core(spec):
    """The core for ``spec`` (a :class:`~convhw.spec.ConvSpec` or
    :class:`~convhw.spec1d.Conv1dSpec`)."""
    from ..gateware import Conv1d, Conv2d
    from ..spec1d import Conv1dSpec
    return Conv1d(spec) if isinstance(spec, Conv1dSpec) else Conv2d(spec)


def _progress(message):
    print(f"convhw: {message}", file=sys.stderr, flush=True)


def format_result(result):
    """A short human-readable summary of a :class:`~convhw.formal.sby.ProofResult`."""
    if result.result == "proven":
        head = f"proven for all time (k-induction, depth {result.depth}, {result.solver})"
    elif result.result == "bounded":
        head = (f"bounded: no failure within {result.depth} cycles of reset, but induction did "
                f"not close" + (f" ({', '.join(result.failed)})" if result.failed else "")
                + "; a larger --depth searches further for a counterexample")
    else:
        head = (f"FAILED: {', '.join(result.failed) or 'an assertion'}"
                + (f" at cycle {result.step}" if result.step is not None else "")
                + (f"; counterexample: {result.counterexample}" if result.counterexample
                   else ""))
    lines = [head, f"  {len(result.properties)} properties in {result.seconds:.1f} s: "
                   f"{', '.join(result.properties)}"]
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)


def run(args):
    spec = spec_from_args(args)
    if getattr(spec, "pixels_per_clock", 1) != 1:
        raise CliError(f"--pixels-per-clock: prove checks cores of 1 pixel per clock, "
                       f"not {spec.pixels_per_clock}")
    if args.depth is not None and args.depth < 1:
        raise CliError(f"--depth: must be a positive number of cycles, not {args.depth}")
    positions = spec.positions_per_frame
    if positions is not None and positions > MAX_POSITIONS:
        option = "--length" if len(spec.frame_shape) == 1 else "--width/--height"
        raise CliError(f"{option}: a frame of {positions} stream positions is too large to "
                       f"prove (at most {MAX_POSITIONS}); prove the same kernel and options on "
                       f"a smaller frame")
    try:
        from ..formal.sby import FormalToolMissing, choose_solver, prove, sby_command
    except ImportError as error:
        raise CliError(f"prove: convhw.formal cannot be imported ({error})")
    try:
        _, env = sby_command()          # the tools first: no core is built for nothing
        solver = choose_solver(args.solver, env)
        result = prove(build_core(spec), depth=args.depth, build_dir=Path(args.build_dir),
                       solver=solver, progress=None if args.json else _progress)
    except FormalToolMissing as error:
        raise CliError(str(error)) from None
    except RuntimeError as error:
        if type(error) is not RuntimeError:
            raise
        raise tool_failure(error) from None
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(format_result(result))
    return 0 if result.result == "proven" else 1
