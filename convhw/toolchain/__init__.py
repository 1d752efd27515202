"""Synthesis with the open-source toolchain (Yosys, nextpnr), from PyPI by default (YoWASP)."""

from .report import SynthReport
from .synth import fit_to_target, packed_logic_cells, synthesize
from .targets import TARGETS, Target, get_target
from .tools import ToolchainMissing, find_tool, tool_environment

__all__ = ["TARGETS", "Target", "get_target", "synthesize", "packed_logic_cells",
           "fit_to_target", "SynthReport",
           "ToolchainMissing", "find_tool", "tool_environment"]
