"""Synthesize a core with Yosys and place and route it with nextpnr; report Fmax and resources.

The core is exported as RTLIL through :class:`~convhw.export.AxiStreamTop` and wrapped in a
:class:`~convhw.toolchain.io_wrapper.ShiftRegisterIO` ring, so every core port is driven by or
captured in a flip-flop and the top needs five pins: the figures are those of the core in a
synchronous system (out of context), on any package. Yosys runs ``synth_ice40 -dsp`` (``-dsp``
only where the part has DSPs) or ``synth_ecp5``, both with abc9 (their default); on ECP5 the
flip-flops that capture a block RAM read move into the RAM's output register
and the flip-flops around a ``MULT18X18D`` into its input and output registers
(:mod:`~convhw.toolchain.netlist`); on iCE40 a carry chain whose carry out is a result bit
ends in a pass-through LUT (counted in the LUTs), so that bit's flip-flop stays in the chain.
nextpnr runs with ``--freq`` and writes a JSON report.
"""

import os
import tempfile
import time

from amaranth.back import rtlil

from ..export import AxiStreamTop, _core
from .io_wrapper import ShiftRegisterIO
from .netlist import absorb_dsp_registers, absorb_ram_output_registers, end_carry_chains_in_luts
from .report import SynthReport, parse_nextpnr_report, parse_yosys_stat
from .targets import get_target
from .tools import find_tool, run_tool, tool_environment

__all__ = ["synthesize", "packed_logic_cells", "yosys_script", "fit_to_target"]

#: nextpnr's target frequency when the caller gives none (only steers timing-driven placement).
DEFAULT_FREQ_MHZ = {"ice40": 70.0, "ecp5": 180.0}


def fit_to_target(spec, target):
    """``spec`` with ``max_dsps`` set to the part's DSP count, unless the user set one.

    Runtime-coefficient products beyond the DSP budget are built from logic, so the design
    fits. A folded layer is taken as it is: its ``pe*simd`` multipliers all use DSP blocks.
    """
    target = get_target(target)
    if getattr(spec, "folded", False):
        return spec
    products = (getattr(spec, "coefficient_count", spec.taps)
                * getattr(spec, "pixels_per_clock", 1))
    if getattr(spec, "runtime_coeffs", False) and spec.max_dsps is None \
            and products > target.dsps:
        return spec.replace(max_dsps=target.dsps)
    return spec


def _has_dsp_products(spec):
    """Whether ``spec`` (a core's or a chain's) multiplies in DSP blocks: runtime taps, or a
    folded layer's ``pe * simd`` multipliers."""
    layers = getattr(spec, "specs", [spec])
    return any(getattr(layer, "dsp_taps", 0) > 0 or getattr(layer, "folded", False)
               for layer in layers)


#: iCE40 chains: clock enables of fewer flip-flops than this become multiplexers in LUTs.
CHAIN_MIN_CE_USE = 8

#: Between the coarse steps and RAM mapping: memories marked ``no_rw_check`` get their read/write
#: collisions declared don't-care (see :func:`yosys_script`).
DONT_CARE_COLLISIONS = "setparam -set RD_COLLISION_X_MASK 1'1 t:$mem_v2 a:no_rw_check %i"


def yosys_script(target, *, rtlil_path="top.il", netlist_path="top.json",
                 stat_path="stat.json", purge=False, min_ce_use=None):
    """The Yosys commands that map ``rtlil_path`` to ``target``'s primitives.

    Between the coarse steps and RAM mapping, memories that the gateware marks ``no_rw_check``
    (line buffers that never read a column in the cycle it is written) get their read/write
    collisions declared don't-care, which is what the attribute means: this Yosys otherwise
    builds collision logic between the block RAM and its output register. With ``purge``,
    ``opt_clean -purge`` runs before LUT mapping: without it, abc9 of Yosys 0.70 fails an
    assertion (``GetSize(conn.first) == GetSize(conn.second)``, renaming its output to ``dout``)
    on some ECP5 cores with registered DSP inputs (4x4 or 5x5 runtime coefficients, all taps
    DSP; the digits network's folded layers), and on others writes a netlist with a multiply
    driven net (3x3 runtime at W=640).
    :func:`synthesize` purges only for ECP5 cores with DSP products, because the purge moves
    other cores' placement (3x3 constant: 236 -> 218 MHz). With ``min_ce_use`` (iCE40), a clock
    enable of fewer flip-flops is built into their LUTs (``-dffe_min_ce_use``): a chain's issue
    decisions reach small registers' enables through several LUTs, and an enable pin is a
    slow, tile-wide input (the digits chain on the UP5K, seeds 1-4: 52.9/52.6/-/- MHz with
    enables, 62.4/55.7/58.1/58.1 without the small ones). :data:`CHAIN_MIN_CE_USE` for chains.
    """
    target = get_target(target)
    if target.family == "ice40":
        synth = f"synth_ice40 -top top -device {target.yosys_device}"
        if target.dsps:
            synth += " -dsp"
        if min_ce_use:
            synth += f" -dffe_min_ce_use {min_ce_use}"
    else:
        synth = "synth_ecp5 -top top" + ("" if target.dsps else " -nodsp")
    if not purge:
        mapping = [f"{synth} -run map_ram: -json {netlist_path}"]
    else:
        mapping = [f"{synth} -run map_ram:map_luts", "opt_clean -purge",
                   f"{synth} -run map_luts: -json {netlist_path}"]
    return "; ".join([
        f"read_rtlil {rtlil_path}",
        f"{synth} -run begin:map_ram",
        DONT_CARE_COLLISIONS,
        *mapping,
        f"tee -q -o {stat_path} stat -json",
    ])


def _nextpnr_args(target, *, freq, seed):
    args = [f"--{target.device}", "--package", target.package]
    if target.speed:
        args += ["--speed", target.speed]
    return args + ["--json", "top.json", "--report", "report.json", "--freq", f"{freq:g}",
                   "--seed", seed, "--timing-allow-fail", "-l", "nextpnr.log", "-q"]


def synthesize(spec_or_core, target="ice40-up5k", *, freq=None, seed=1, build_dir=None,
               progress=None):
    """Synthesize, place and route ``spec_or_core`` for ``target``.

    Parameters
    ----------
    spec_or_core : ConvSpec, Conv1dSpec, Conv2d or Conv1d
        A spec with runtime coefficients and no ``max_dsps`` gets the target's DSP count as
        ``max_dsps`` (see :func:`fit_to_target`); a core is taken as it is.
    target : str or Target
        A key of :data:`~convhw.toolchain.TARGETS`.
    freq : float, optional
        Required clock in MHz; ``freq_met`` tells whether nextpnr reached it.
    seed : int
        nextpnr placement seed.
    build_dir : str, optional
        Where the RTLIL, netlist, reports and logs go (a new temporary directory by default).
    progress : callable, optional
        Called with a short message before each long step.

    Raises
    ------
    ToolchainMissing
        Yosys or nextpnr is not installed (the message says which extra to install).
    RuntimeError
        A tool failed; the message holds the end of its log.
    """
    target = get_target(target)
    if freq is not None and (isinstance(freq, bool) or not isinstance(freq, (int, float))
                             or not freq > 0):
        raise ValueError(f"'freq' must be a positive number of MHz, not {freq!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"'seed' must be a non-negative integer, not {seed!r}")
    progress = progress or (lambda message: None)
    env = tool_environment()
    nextpnr = f"nextpnr-{target.family}"
    find_tool("yosys", env)     # fail early, before the export
    find_tool(nextpnr, env)
    start = time.monotonic()
    netlist = _netlist(spec_or_core, target, build_dir, env, progress)
    build_dir, spec = netlist["build_dir"], netlist["spec"]

    target_freq = DEFAULT_FREQ_MHZ[target.family] if freq is None else freq
    progress(f"nextpnr: placing and routing at {target_freq:g} MHz (seed {seed})...")
    run_tool(nextpnr, _nextpnr_args(target, freq=target_freq, seed=seed), cwd=build_dir,
             log_path=os.path.join(build_dir, "nextpnr.out"), env=env)
    fmax, used, critical_path = parse_nextpnr_report(
        os.path.join(build_dir, "report.json"), target.family)

    return SynthReport(
        target=target.name, fmax_mhz=round(fmax, 2), luts=netlist["luts"], ffs=netlist["ffs"],
        brams=used["brams"], dsps=used["dsps"],
        freq_mhz=freq, freq_met=None if freq is None else fmax >= freq,
        logic_cells=used["logic_cells"], line_buffer_brams=netlist["line_buffer_brams"],
        io_ring_ffs=netlist["io_ring_ffs"],
        ram_output_registers=netlist["ram_output_registers"],
        device=target.description,
        max_dsps=getattr(spec, "max_dsps", None), seed=seed,
        seconds=round(time.monotonic() - start, 2), cells=netlist["cells"],
        critical_path=critical_path, build_dir=build_dir,
        logs={"yosys": os.path.join(build_dir, "yosys.log"),
              "nextpnr": os.path.join(build_dir, "nextpnr.log")})


def packed_logic_cells(spec_or_core, target, *, build_dir=None, progress=None):
    """``(used, available)`` logic cells of ``target`` once nextpnr has packed the design
    (Yosys and ``--pack-only``: seconds, where placement can take minutes).

    Raises as :func:`synthesize`.
    """
    target = get_target(target)
    progress = progress or (lambda message: None)
    env = tool_environment()
    nextpnr = f"nextpnr-{target.family}"
    find_tool("yosys", env)
    find_tool(nextpnr, env)
    netlist = _netlist(spec_or_core, target, build_dir, env, progress)
    build_dir = netlist["build_dir"]
    progress(f"nextpnr: packing for {target.description}...")
    run_tool(nextpnr, [f"--{target.device}", "--package", target.package, "--json",
                       "top.json", "--pack-only", "--report", "pack.json", "-l", "pack.log",
                       "-q"], cwd=build_dir, log_path=os.path.join(build_dir, "pack.out"),
             env=env)
    _, used, _ = parse_nextpnr_report(os.path.join(build_dir, "pack.json"), target.family)
    return used["logic_cells"], target.luts


def _netlist(spec_or_core, target, build_dir, env, progress):
    """Export ``spec_or_core`` in the IO ring and map it with Yosys into ``build_dir``/top.json;
    the netlist's figures by name."""
    core = spec_or_core
    if not hasattr(core, "i"):      # a spec: build its core (Conv2d or Conv1d) as export does
        core = _core(fit_to_target(spec_or_core, target))
    spec = core.spec
    if build_dir is None:
        build_dir = tempfile.mkdtemp(prefix=f"convhw-{target.name}-")
    os.makedirs(build_dir, exist_ok=True)

    progress("export: elaborating the core to RTLIL...")
    top = ShiftRegisterIO(AxiStreamTop(core))
    with open(os.path.join(build_dir, "top.il"), "w") as f:
        f.write(rtlil.convert(top, name="top", emit_src=False))
    io_ring_ffs = top.ring_bits

    progress(f"yosys: synthesizing for {target.description}...")
    purge = target.family == "ecp5" and _has_dsp_products(spec)
    min_ce_use = CHAIN_MIN_CE_USE if hasattr(spec, "specs") else None
    run_tool("yosys", ["-q", "-l", "yosys.log", "-p", yosys_script(target, purge=purge,
                                                                   min_ce_use=min_ce_use)],
             cwd=build_dir,
             log_path=os.path.join(build_dir, "yosys.out"), env=env)
    luts, ffs, cells, line_buffer_brams = parse_yosys_stat(
        os.path.join(build_dir, "stat.json"), os.path.join(build_dir, "top.json"),
        target.family)
    ram_output_registers = 0
    if target.family == "ecp5":
        ram_output_registers, absorbed = absorb_ram_output_registers(
            os.path.join(build_dir, "top.json"))
        dsp_registers, dsp_absorbed = absorb_dsp_registers(os.path.join(build_dir, "top.json"))
        absorbed += dsp_absorbed
        ffs -= absorbed
        cells["TRELLIS_FF"] = cells.get("TRELLIS_FF", 0) - absorbed
    else:
        pass_outs = end_carry_chains_in_luts(os.path.join(build_dir, "top.json"))
        luts += pass_outs
        cells["SB_LUT4"] = cells.get("SB_LUT4", 0) + pass_outs
    return dict(build_dir=build_dir, spec=spec, luts=luts, ffs=ffs, cells=cells,
                line_buffer_brams=line_buffer_brams, io_ring_ffs=io_ring_ffs,
                ram_output_registers=ram_output_registers)
