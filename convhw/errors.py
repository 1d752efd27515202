"""The one-line user errors of the ``convhw`` command (and of the board builds, which share its
options)."""

import sys

__all__ = ["CliError", "ToolFailed", "tool_failure"]


class CliError(Exception):
    """A problem with the user's options or files: printed as one line, exit status 2."""


class ToolFailed(CliError):
    """An external tool ran and failed (also printed as one line, exit status 2)."""


def tool_failure(error, *, tail_lines=15):
    """A :class:`ToolFailed` for a failed external tool (Yosys, nextpnr, Verilator).

    The tools report ``RuntimeError("<tool> failed ... (log: PATH):\\n<log tail>")``; the tail
    goes to stderr, indented, and the first line becomes the error line printed last.
    """
    first, _, tail = str(error).partition("\n")
    for line in tail.splitlines()[-tail_lines:]:
        print(f"    {line}", file=sys.stderr)
    return ToolFailed(first)
