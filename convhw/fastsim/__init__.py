"""Fast, cycle-accurate simulation of a core: a Verilator model of its exported Verilog.

``simulate(dut, frames, ...)`` takes the arguments of :func:`convhw.harness.pysim` and returns
the same :class:`~convhw.harness.SimResult` (output frames, ``cycles``, ``total_cycles``,
``errors``), with ``engine="verilator"``: the C++ driver replays pysim's stimulus order, stall
patterns and coefficient-write timing cycle for cycle. Models are compiled once and cached
(:func:`cache_dir`). ``vcd=path`` writes a waveform from a separately built traced model.
"""

from .model import EngineMissing, Model, available, build, cache_dir, verilator_version
from .run import simulate

__all__ = ["simulate", "available", "EngineMissing", "build", "Model", "cache_dir",
           "verilator_version"]
