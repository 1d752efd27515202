"""The ``convhw`` command: generate, simulate, synth, demo (and board, where installed).

Each command is a module here with ``add_parser(subparsers)`` and ``run(args) -> int``. User
errors (bad options, values or files, a missing toolchain) print one line,
``convhw: error: <message>``, on stderr and exit with status 2, never a traceback.
"""

import argparse
import importlib
import re
import sys

from ..errors import CliError

__all__ = ["main", "CliError"]

COMMANDS = ("generate", "simulate", "synth", "demo", "board", "info", "kernels", "prove")


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage dump), exit status 2.

    A value that starts with a minus and a digit is a value, never an option: so
    ``--kernel -1,0,1`` and ``--padding -1`` (which then gets its own error) work as typed.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # argparse takes only plain numbers ("-1", "-.5") for negative values; convhw's numeric
        # options also take lists ("-1,0,1;-2,0,2"). No option name starts with a digit.
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message):
        sys.stderr.write(f"convhw: error: {self.prog.split(' ', 1)[-1]}: {message}\n"
                         if " " in self.prog else f"convhw: error: {message}\n")
        sys.exit(2)


def _user_errors():
    """Exception types that mean the user's input (or install) is at fault."""
    errors = [CliError, ValueError, TypeError, OSError]
    for module, name in (("convhw.toolchain", "ToolchainMissing"),
                         ("convhw.fastsim", "EngineMissing")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


class _Unavailable:
    """A command whose module is present but cannot be imported (a missing extra)."""

    def __init__(self, name, error):
        self.name, self.error = name, error

    def add_parser(self, subparsers):
        parser = subparsers.add_parser(self.name, help=f"(unavailable: {self.error})",
                                       add_help=False)
        parser.add_argument("rest", nargs=argparse.REMAINDER)

    def run(self, args):
        raise CliError(f"{self.name}: unavailable in this install ({self.error}); "
                       f"pip install 'convhw[all]'")


def _command_modules():
    modules = {}
    for name in COMMANDS:
        try:
            modules[name] = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"{__name__}.{name}":
                continue  # not written (yet): leave the command out
            modules[name] = _Unavailable(name, error)
        except ImportError as error:
            modules[name] = _Unavailable(name, error)
    return modules


def build_parser(modules=None):
    from .. import __version__
    modules = _command_modules() if modules is None else modules
    parser = _Parser(prog="convhw",
                     description="Generate, simulate and synthesize streaming FPGA convolution "
                                 "accelerators.")
    parser.add_argument("--version", action="version", version=f"convhw {__version__}")
    subparsers = parser.add_subparsers(dest="convhw_command", metavar="COMMAND")
    for module in modules.values():
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    """Run the ``convhw`` command line; returns the exit status."""
    modules = _command_modules()
    parser = build_parser(modules)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 2
    if args.convhw_command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return modules[args.convhw_command].run(args)
    except _user_errors() as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"convhw: error: {message}", file=sys.stderr)
        return 2
    except Exception as error:
        # Amaranth's: no Yosys for Verilog/RTLIL export, or Yosys failed during it.
        kind = type(error).__name__
        if kind not in ("ToolNotFound", "YosysError"):
            raise
        detail = " ".join(str(error).split())
        hint = ("needs Yosys: pip install 'convhw[toolchain]'" if kind == "ToolNotFound"
                else "failed in Yosys (check YOSYS / AMARANTH_USE_YOSYS)")
        print(f"convhw: error: Verilog/RTLIL export {hint}{': ' + detail if detail else ''}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convhw: interrupted", file=sys.stderr)
        return 130
