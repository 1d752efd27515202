"""Build (and program) the accelerator bitstream for a board, with the YoWASP toolchain.

:func:`build_board` runs Amaranth's build plan for the board's platform with the tool
environment of :func:`convhw.toolchain.tool_environment` (YoWASP unless ``YOSYS``,
``NEXTPNR_ICE40``, ... say otherwise), logs the tools' output to ``build.log``, and reads
nextpnr's report for Fmax and utilization. :func:`main` is the ``python -m boards.<board>``
command line.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

from amaranth.build.run import LocalBuildProducts

from .accelerator import DEFAULT_TIMEOUT, check_parameters
from .defaults import add_board_model_arguments, add_board_spec_arguments, board_spec_from_args
from .top import BoardInfo, BoardTop

__all__ = ["BuildError", "BuildResult", "build_plan", "build_board", "program_board", "main"]

NAME = "convhw_board"


class BuildError(RuntimeError):
    """The toolchain failed, the design did not fit, or timing was not met."""


@dataclass
class BuildResult:
    """A built bitstream and what nextpnr said about it."""
    board: str
    bitstream: str
    clock_mhz: float
    fmax_mhz: float
    utilization: dict = field(default_factory=dict)     # resource -> (used, available)
    seconds: float = 0.0
    build_dir: str = ""

    @property
    def timing_met(self):
        return self.fmax_mhz >= self.clock_mhz

    def summary(self):
        lines = [f"{self.board}: {self.bitstream}",
                 f"  Fmax {self.fmax_mhz:.1f} MHz at a {self.clock_mhz:g} MHz board clock: "
                 f"{'met' if self.timing_met else 'NOT MET'}"]
        for name, (used, available) in sorted(self.utilization.items()):
            if used:
                lines.append(f"  {name:<16} {used:>6} / {available:<6} "
                             f"({100 * used / max(available, 1):.0f}%)")
        lines.append(f"  built in {self.seconds:.1f} s in {self.build_dir}")
        return "\n".join(lines)


def _tool_environment(platform):
    """The build environment; raises ``ToolchainMissing`` naming the extra to install."""
    from ..toolchain import find_tool, tool_environment
    from ..toolchain.tools import TOOLS
    env = tool_environment()
    for tool in platform.required_tools:
        if tool in TOOLS:
            find_tool(tool, env)
    return env


def _log_tail(path, lines=25):
    try:
        with open(path) as log:
            return "".join(log.readlines()[-lines:])
    except OSError:
        return ""


def _read_report(path, clock_mhz):
    with open(path) as f:
        report = json.load(f)
    fmax = min((clock["achieved"] for clock in report.get("fmax", {}).values()),
               default=float("inf"))
    utilization = {name: (entry.get("used", 0), entry.get("available", 0))
                   for name, entry in report.get("utilization", {}).items()}
    return fmax, utilization


def _synthesis_options(platform, spec, options):
    """``options`` with ``synth_opts`` and ``script_after_synth`` that make Amaranth's script
    synthesize as ``convhw synth`` does (:func:`~convhw.toolchain.synth.yosys_script`): no
    collision logic around memories marked ``no_rw_check`` (the digits network's line buffer
    and result queues: 532 iCEBreaker cells), and for a chain on an iCE40 the small clock
    enables in LUTs."""
    from ..toolchain.synth import CHAIN_MIN_CE_USE, DONT_CARE_COLLISIONS
    synth_opts = options.get("synth_opts", "")
    family = platform.family.lower()
    if family == "ice40" and hasattr(spec, "specs"):
        synth_opts += f" -dffe_min_ce_use {CHAIN_MIN_CE_USE}"
    synth = " ".join(filter(None, [f"synth_{family}", synth_opts.strip(), f"-top {NAME}"]))
    return {**options, "synth_opts": f"{synth_opts} -run begin:map_ram".strip(),
            "script_after_synth": f"{DONT_CARE_COLLISIONS}\n{synth} -run map_ram:"}


def _placeable_fraction(platform):
    """The fraction of its logic cells that nextpnr places on ``platform``'s family, or None."""
    from ..toolchain import TARGETS
    fractions = [target.placeable_fraction for target in TARGETS.values()
                 if target.family == platform.family.lower() and target.placeable_fraction]
    return min(fractions, default=None)


def _script_steps(path, platform):
    """``(step, lines)`` to run for Amaranth's build script at ``path``: on a family with a
    placeable fraction, synthesis, a pack (nextpnr ``--pack-only``, seconds) and the rest, so
    that a design nextpnr cannot place fails in seconds instead of searching for hours;
    otherwise the whole script."""
    with open(path) as f:
        lines = f.read().splitlines()
    commands = [i for i, line in enumerate(lines) if line.startswith('"$')]
    place = next((i for i in commands if lines[i].startswith('"$NEXTPNR')), None)
    if _placeable_fraction(platform) is None or place is None:
        return [("all", lines)]
    header = lines[:commands[0]]
    pack = re.sub(r" --(asc|textcfg) \S+", "", lines[place])
    pack = pack.replace(f"{NAME}.report.json", f"{NAME}.pack.json") + " --pack-only"
    return [("synth", lines[:place]), ("pack", header + [pack]),
            ("place", header + lines[place:])]


def _check_packing(report_path, board, platform):
    """Raise :class:`BuildError` when the packed design is beyond the placeable fraction."""
    with open(report_path) as f:
        utilization = json.load(f).get("utilization", {})
    cells = utilization.get("ICESTORM_LC")
    fraction = _placeable_fraction(platform)
    if cells and cells["used"] > fraction * cells["available"]:
        used, available = cells["used"], cells["available"]
        raise BuildError(f"the design packs into {used} of the {board.name}'s {available} "
                         f"logic cells ({used / available:.0%}); nextpnr does not place much "
                         f"beyond {fraction:.0%} of them: fold further (--max-multipliers N) "
                         f"or build a smaller spec")


def build_plan(board, spec, *, baud=None, timeout=DEFAULT_TIMEOUT, fifo_depth=None, seed=1):
    """``(platform, spec, plan)``: Amaranth's build plan for ``spec`` on ``board`` (checked and
    fitted to the board, :meth:`BoardInfo.fit`), with convhw's synthesis options; nothing run."""
    if not isinstance(board, BoardInfo):
        raise TypeError(f"'board' must be a BoardInfo, not {board!r}")
    platform = board.platform()
    spec = board.fit(spec)
    baud = board.baud if baud is None else baud
    fifo_depth = board.fifo_for(spec) if fifo_depth is None else fifo_depth
    check_parameters(spec, clk_freq=platform.default_clk_frequency, baud=baud, timeout=timeout,
                     fifo_depth=fifo_depth)
    top = BoardTop(board, spec, baud=baud, timeout=timeout, fifo_depth=fifo_depth)
    options = _synthesis_options(platform, spec, dict(board.build_options))
    options["nextpnr_opts"] = (f"{options.get('nextpnr_opts', '')} --report {NAME}.report.json "
                               f"--timing-allow-fail --seed {seed}").strip()
    return platform, spec, platform.build(top, name=NAME, do_build=False, **options)


def build_board(board, spec, *, baud=None, timeout=DEFAULT_TIMEOUT, fifo_depth=None,
                build_dir="build", seed=1):
    """Build the bitstream for ``spec`` on ``board``; return a :class:`BuildResult`.

    Timing is not checked here: see :attr:`BuildResult.timing_met`.

    Raises
    ------
    ToolchainMissing
        A tool is not installed (the message names the extra to install).
    BuildError
        A tool failed (with the end of its log; a design that does not fit fails in nextpnr),
        the packed design is beyond what nextpnr places on an iCE40 (about 80% of its cells:
        said before placement, which would search for hours), or the bitstream is missing.
    """
    platform, spec, plan = build_plan(board, spec, baud=baud, timeout=timeout,
                                      fifo_depth=fifo_depth, seed=seed)
    clock_mhz = platform.default_clk_frequency / 1e6
    env = _tool_environment(platform)
    started = time.monotonic()
    root = plan.extract(build_dir)
    log_path = os.path.join(root, "build.log")
    steps = _script_steps(os.path.join(root, f"{plan.script}.sh"), platform)
    with open(log_path, "w") as log:
        for step, lines in steps:
            completed = subprocess.run(["sh", "-c", "\n".join(lines)], cwd=root, env=env,
                                       stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
            if completed.returncode != 0:
                raise BuildError(f"the {board.name} build failed (exit code "
                                 f"{completed.returncode}; log: {log_path}):\n"
                                 f"{_log_tail(log_path)}")
            if step == "pack":
                _check_packing(os.path.join(root, f"{NAME}.pack.json"), board, platform)
    bitstream = next((os.path.join(root, f"{NAME}.{suffix}") for suffix in ("bin", "bit")
                      if os.path.exists(os.path.join(root, f"{NAME}.{suffix}"))), None)
    if bitstream is None:
        raise BuildError(f"the {board.name} build produced no bitstream (log: {log_path})")
    fmax, utilization = _read_report(os.path.join(root, f"{NAME}.report.json"), clock_mhz)
    return BuildResult(board=board.name, bitstream=bitstream, clock_mhz=clock_mhz,
                       fmax_mhz=fmax, utilization=utilization,
                       seconds=time.monotonic() - started, build_dir=str(root))


def program_board(board, result):
    """Flash ``result`` through the platform's programmer, or say clearly what is missing."""
    variable, command = board.programmer
    tool = os.environ.get(variable) or command
    if not shutil.which(tool):
        raise BuildError(f"{tool} not found: install it (e.g. apt-get install "
                         f"{'fpga-icestorm' if command == 'iceprog' else 'openfpgaloader'}) or "
                         f"set {variable} to the programmer")
    products = LocalBuildProducts(result.build_dir)
    try:
        board.platform().toolchain_program(products, NAME)
    except subprocess.CalledProcessError as error:
        raise BuildError(f"{tool} failed with exit code {error.returncode}: is the {board.name} "
                         f"connected (USB), powered, and accessible to this user?") from None


def main(board, argv=None):
    """``python -m boards.<board> build [--build-dir DIR] [spec options | --model M.onnx]
    [--baud B] [--program]``."""
    from ..errors import CliError

    parser = argparse.ArgumentParser(prog=f"python -m boards.{board.name}",
                                     description=f"Build the convhw UART accelerator for the "
                                                 f"{board.name}.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    build = commands.add_parser("build", help="build the bitstream (and --program it)")
    build.add_argument("--build-dir", default=f"build/{board.name}", metavar="DIR",
                       help="where the bitstream and logs go (default build/%(default)s)")
    build.add_argument("--baud", type=int, default=board.baud, metavar="B",
                       help=f"line rate (default {board.baud})")
    build.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                       help=f"silence that ends a truncated frame (default {DEFAULT_TIMEOUT})")
    build.add_argument("--fifo-depth", type=int, metavar="BYTES",
                       help=f"receive FIFO (default {board.fifo_depth}, or the spec's window "
                            f"when larger)")
    build.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    build.add_argument("--program", action="store_true",
                       help="flash the bitstream after building")
    add_board_spec_arguments(build)
    add_board_model_arguments(build)
    args = parser.parse_args(argv)
    try:
        if args.model is not None:
            from .defaults import board_model_from_args, line_cycles
            network, folding, spec = board_model_from_args(args, board.name, board.dsps)
            layers = ", ".join(f"{layer.name} {layer.pe}x{layer.simd}"
                               for layer in folding.layers if not layer.fixed)
            pace = ("" if args.max_multipliers is not None else
                    f" (the line takes {line_cycles(network, board.name, args.baud)} cycles"
                    f" per frame at {args.baud} baud)")
            print(f"{board.name}: {args.model}: folding {layers} ({folding.multipliers} "
                  f"multipliers), {folding.cycles_per_frame} cycles per inference{pace}",
                  flush=True)
        else:
            spec = board_spec_from_args(args)
        print(f"{board.name}: building {spec!r} at {args.baud} baud", flush=True)
        result = build_board(board, spec, baud=args.baud, timeout=args.timeout,
                             fifo_depth=args.fifo_depth, build_dir=args.build_dir,
                             seed=args.seed)
        print(result.summary(), flush=True)
        if not result.timing_met:
            raise BuildError(f"timing NOT met: Fmax {result.fmax_mhz:.1f} MHz is below the "
                             f"{result.clock_mhz:g} MHz board clock")
        if args.program:
            program_board(board, result)
            print(f"{board.name}: programmed", flush=True)
    except (CliError, BuildError, ValueError, TypeError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, (CliError, ValueError, TypeError)) else 1
    except Exception as error:
        from ..toolchain import ToolchainMissing
        if isinstance(error, ToolchainMissing):
            print(f"{parser.prog}: error: {error}", file=sys.stderr)
            return 2
        raise
    return 0
