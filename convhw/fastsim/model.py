"""Build, and cache, a Verilator model of a core with the cycle-loop driver ``driver.cpp``.

A model is keyed by a hash of everything that goes into it: the Verilog text of the core's
AXI4-Stream top, the driver source, the Verilator version, the compiler and the build flags. It
lives in ``$CONVHW_CACHE/fastsim/<key>/`` (default: the user cache dir, ``~/.cache/convhw`` on
Linux), so a second run, in any process, does not build again. A build happens in a private
temporary directory that is renamed into place when it is complete, so processes building the same
model at once (``pytest -n 2``) never see half a model: the first rename wins, the others discard
their copy.
"""

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EngineMissing", "available", "cache_dir", "build", "Model", "verilator_version"]

DRIVER = Path(__file__).with_name("driver.cpp")
TOP = "convhw_top"
#: C++ optimization of the generated model: -O1 builds about twice as fast as -O2 and runs about
#: as fast on these designs (see ``bench/simspeed.py``).
OPT = "-O1"


class EngineMissing(RuntimeError):
    """Verilator or a C++ compiler is not installed."""


def _tool(variable, default):
    return shutil.which(os.environ.get(variable, default))


def _missing():
    """What is missing for a build, as a sentence; ``None`` when nothing is."""
    needs = [("Verilator", _tool("VERILATOR", "verilator")),
             ("a C++ compiler", _tool("CXX", "g++") or shutil.which("c++")),
             ("make", shutil.which("make"))]
    absent = [name for name, path in needs if path is None]
    if not absent:
        return None
    return (f"the fast simulation backend needs {' and '.join(absent)}: install Verilator (5.x) "
            f"and a C++ compiler, e.g. 'apt-get install verilator g++ make' (the CI script "
            f"'.ci/run' installs them), or use backend='pysim'")


def available():
    """Whether the fast backend can build and run models here."""
    return _missing() is None


def _require():
    message = _missing()
    if message:
        raise EngineMissing(message)


@functools.lru_cache(maxsize=None)
def _version(tool):
    return subprocess.run([tool, "--version"], capture_output=True, text=True,
                          check=True).stdout.strip()


def verilator_version():
    _require()
    return _version(_tool("VERILATOR", "verilator"))


def cache_dir():
    """Where models are kept: ``$CONVHW_CACHE/fastsim``, or the user cache dir's."""
    root = os.environ.get("CONVHW_CACHE")
    if not root:
        try:
            import platformdirs
            root = platformdirs.user_cache_dir("convhw")
        except ImportError:
            root = os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                os.path.expanduser("~/.cache"), "convhw")
    return Path(root) / "fastsim"


@dataclass(frozen=True)
class Model:
    """A compiled model: ``path`` runs it; ``built`` is true when this call compiled it."""
    path: Path
    key: str
    built: bool
    build_seconds: float


def _out_words(spec):
    return max(1, -(-spec.out_bits // 32))


def _flags(spec, trace):
    defines = [f"-DOUT_WORDS={_out_words(spec)}"]
    if spec.runtime_coeffs:
        defines.append("-DCONVHW_COEF")
    if trace:
        defines.append("-DCONVHW_TRACE")
    flags = ["--cc", "--exe", "--build", "--prefix", "Vdut", "--top-module", TOP,
             "-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast",
             "-CFLAGS", " ".join(defines),
             "-MAKEFLAGS", f"OPT_FAST={OPT} OPT_SLOW={OPT} OPT_GLOBAL={OPT}"]
    if trace:
        flags += ["--trace", "--timescale", "1ns/1ns"]
    return flags


_verilog_memo = weakref.WeakKeyDictionary()


def _verilog(dut):
    """The Verilog of ``dut``'s AXI4-Stream top (remembered per core object)."""
    try:
        return _verilog_memo[dut]
    except (KeyError, TypeError):
        pass
    from ..export import to_verilog
    text = to_verilog(dut, name=TOP)
    try:
        _verilog_memo[dut] = text
    except TypeError:
        pass
    return text


def _key(verilog, flags):
    cxx = _tool("CXX", "g++") or shutil.which("c++")
    digest = hashlib.sha256()
    for part in (verilog, DRIVER.read_text(), verilator_version(), _version(cxx), " ".join(flags)):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def build(dut, *, trace=False):
    """The compiled model of ``dut`` (a Conv2d or Conv1d), built now unless it is cached.

    ``trace=True`` builds the variant that can write a VCD (Verilator ``--trace``).
    """
    _require()
    flags = _flags(dut.spec, trace)
    verilog = _verilog(dut)
    key = _key(verilog, flags)
    final = cache_dir() / key
    binary = final / "Vdut"
    if binary.exists():
        return Model(binary, key, False, 0.0)

    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    try:
        start = time.perf_counter()
        (work / f"{TOP}.v").write_text(verilog)
        shutil.copy(DRIVER, work / "driver.cpp")
        jobs = str(min(2, os.cpu_count() or 1))
        command = [_tool("VERILATOR", "verilator"), *flags, "-j", jobs, "--Mdir", "obj",
                   "-o", "Vdut", f"{TOP}.v", "driver.cpp"]
        run = subprocess.run(command, cwd=work, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"Verilator build failed ({' '.join(command)}):\n"
                               f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
        os.replace(work / "obj" / "Vdut", work / "Vdut")
        shutil.rmtree(work / "obj")
        seconds = time.perf_counter() - start
        (work / "build.json").write_text(json.dumps({
            "verilator": verilator_version(), "flags": flags, "seconds": round(seconds, 2)}))
        try:
            os.rename(work, final)
        except OSError:
            if not binary.exists():  # not a lost race: a real failure
                raise
            return Model(binary, key, False, 0.0)
        return Model(binary, key, True, seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
