"""What a synthesis run found: Fmax and resources, from Yosys's ``stat`` and nextpnr's report."""

import json
from dataclasses import asdict, dataclass, field

__all__ = ["SynthReport", "parse_yosys_stat", "parse_nextpnr_report"]

#: Primitive cell types per family: look-up tables, flip-flops (prefix), block RAMs, DSPs.
_CELLS = {
    "ice40": {"luts": ("SB_LUT4",), "ff_prefix": "SB_DFF", "brams": ("SB_RAM40_4K",),
              "dsps": ("SB_MAC16",)},
    "ecp5": {"luts": ("LUT4",), "ff_prefix": "TRELLIS_FF", "brams": ("DP16KD", "PDPW16KD"),
             "dsps": ("MULT18X18D",)},
}
#: nextpnr utilization entries: logic cells, block RAMs, DSPs.
_NEXTPNR = {
    "ice40": {"logic_cells": "ICESTORM_LC", "brams": "ICESTORM_RAM", "dsps": "ICESTORM_DSP"},
    "ecp5": {"logic_cells": "TRELLIS_COMB", "brams": "DP16KD", "dsps": "MULT18X18D"},
}


@dataclass
class SynthReport:
    """Result of :func:`convhw.toolchain.synthesize`.

    ``luts`` and ``ffs`` are Yosys's counts of LUT4 and flip-flop cells (``ffs`` includes the
    ``io_ring_ffs`` of the shift-register IO ring), ``logic_cells`` nextpnr's packed logic cells,
    ``brams`` and ``dsps`` the block RAMs and DSP blocks placed, ``line_buffer_brams`` the block
    RAMs holding line buffers, ``ram_output_registers`` the ECP5 RAM ports whose capture
flip-flops moved into the RAM (see :mod:`~convhw.toolchain.netlist`). ``fmax_mhz`` is nextpnr's worst register-to-register Fmax;
    ``freq_met`` is ``None`` when no ``freq_mhz`` was asked for.
    """
    target: str
    fmax_mhz: float
    luts: int
    ffs: int
    brams: int
    dsps: int
    freq_mhz: float = None
    freq_met: bool = None
    logic_cells: int = 0
    line_buffer_brams: int = 0
    io_ring_ffs: int = 0
    ram_output_registers: int = 0
    device: str = ""
    max_dsps: int = None
    seed: int = 1
    seconds: float = 0.0
    cells: dict = field(default_factory=dict)
    critical_path: list = field(default_factory=list)
    build_dir: str = ""
    logs: dict = field(default_factory=dict)

    def to_dict(self):
        return asdict(self)

    def summary(self):
        """One line for people."""
        freq = ""
        if self.freq_mhz is not None:
            freq = f" ({'meets' if self.freq_met else 'FAILS'} {self.freq_mhz:g} MHz)"
        return (f"{self.target}: Fmax {self.fmax_mhz:.1f} MHz{freq}, {self.luts} LUTs, "
                f"{self.ffs} FFs, {self.brams} block RAMs, {self.dsps} DSPs")


def parse_yosys_stat(stat_json, netlist_json, family):
    """``(luts, ffs, cells, line_buffer_brams)`` from ``stat -json`` and the netlist."""
    with open(stat_json) as f:
        cells = json.load(f)["design"]["num_cells_by_type"]
    cells = {name: count for name, count in cells.items() if not name.startswith("$scope")}
    kinds = _CELLS[family]
    luts = sum(cells.get(name, 0) for name in kinds["luts"])
    ffs = sum(count for name, count in cells.items() if name.startswith(kinds["ff_prefix"]))
    with open(netlist_json) as f:
        modules = json.load(f)["modules"]
    line_buffer_brams = sum(
        1 for module in modules.values() for name, cell in module["cells"].items()
        if cell["type"] in kinds["brams"] and "line_buffer" in name)
    return luts, ffs, cells, line_buffer_brams


def parse_nextpnr_report(report_json, family):
    """``(fmax_mhz, used)`` where ``used`` maps ``logic_cells``/``brams``/``dsps`` to counts."""
    with open(report_json) as f:
        report = json.load(f)
    fmax = min((clock["achieved"] for clock in report.get("fmax", {}).values()), default=0.0)
    utilization = report.get("utilization", {})
    used = {key: utilization.get(name, {}).get("used", 0)
            for key, name in _NEXTPNR[family].items()}
    path = []
    clocked = [entry for entry in report.get("critical_paths", [])
               if entry.get("from", "").startswith("posedge")
               and entry.get("to", "").startswith("posedge")]
    for entry in clocked[:1]:
        for step in entry.get("path", []):
            where = step.get("to", {})
            path.append(f"{step.get('type')} {step.get('delay', 0):.2f} ns "
                        f"{where.get('cell', '')}.{where.get('port', '')}")
    return fmax, used, path
