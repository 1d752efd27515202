"""Synthesis with Yosys and nextpnr: targets, DSP budgets, tool lookup and real runs."""

import json
import os
import re
import stat

import pytest

from convhw import ConvSpec
from convhw.toolchain import (TARGETS, SynthReport, ToolchainMissing, find_tool, fit_to_target,
                              synthesize, tool_environment)
from convhw.toolchain import tools

SOBEL = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
REPORT_KEYS = {"target", "fmax_mhz", "luts", "ffs", "brams", "dsps", "freq_met"}


def _need(tool):
    try:
        return find_tool(tool)
    except ToolchainMissing as error:
        pytest.skip(f"toolchain not installed: {error}")


def test_targets():
    assert set(TARGETS) == {"ice40-up5k", "ice40-hx8k", "ecp5-25k", "ecp5-85k"}
    assert [(t.family, t.dsps) for t in TARGETS.values()] == [
        ("ice40", 8), ("ice40", 0), ("ecp5", 28), ("ecp5", 156)]


def test_fit_to_target_limits_dsps():
    runtime = ConvSpec(width=16, height=8, kernel_shape=(3, 3))
    assert fit_to_target(runtime, "ice40-up5k").max_dsps == 8
    assert fit_to_target(runtime, "ice40-hx8k").max_dsps == 0
    assert fit_to_target(runtime, "ecp5-25k") is runtime            # 9 taps fit 28 DSPs
    assert fit_to_target(runtime.replace(max_dsps=2), "ice40-up5k").max_dsps == 2
    constant = ConvSpec(width=16, height=8, kernel=SOBEL)
    assert fit_to_target(constant, "ice40-hx8k") is constant


def test_wrong_arguments():
    spec = ConvSpec(width=16, height=8, kernel=SOBEL)
    with pytest.raises(ValueError, match=r"^'target' must be one of ice40-up5k, ice40-hx8k, "
                                         r"ecp5-25k, ecp5-85k, not 'xc7'$"):
        synthesize(spec, "xc7")
    with pytest.raises(ValueError, match=r"^'freq' must be a positive number of MHz, not -5$"):
        synthesize(spec, "ice40-up5k", freq=-5)
    with pytest.raises(ValueError, match=r"^'seed' must be a non-negative integer, not 'x'$"):
        synthesize(spec, "ice40-up5k", seed="x")


def test_missing_yowasp_names_the_extra(monkeypatch):
    monkeypatch.delenv("YOSYS", raising=False)
    monkeypatch.setattr(tools, "_yowasp_path", lambda tool: None)
    with pytest.raises(ToolchainMissing, match=r"^yosys not found: pip install "
                                               r"'convhw\[toolchain\]'.* or set YOSYS "):
        find_tool("yosys")
    with pytest.raises(ToolchainMissing, match=r"convhw\[toolchain\]"):
        synthesize(ConvSpec(width=16, height=8, kernel=SOBEL), "ice40-up5k")


def test_bad_override_names_the_variable(monkeypatch):
    monkeypatch.setenv("NEXTPNR_ECP5", "/nonexistent/nextpnr-ecp5")
    with pytest.raises(ToolchainMissing, match=r"^NEXTPNR_ECP5='/nonexistent/nextpnr-ecp5' is "
                                               r"not an executable"):
        synthesize(ConvSpec(width=16, height=8, kernel=SOBEL), "ecp5-25k")


def test_tool_environment_keeps_user_choice():
    _need("yosys")
    env = tool_environment({"YOSYS": "my-yosys", "PATH": os.environ.get("PATH", "")})
    assert env["YOSYS"] == "my-yosys"
    for var in ("NEXTPNR_ICE40", "NEXTPNR_ECP5", "ICEPACK", "ECPPACK"):
        assert os.path.basename(env[var]).startswith("yowasp-"), (var, env.get(var))
        assert os.access(env[var], os.X_OK)


def _check_report(report, target):
    assert isinstance(report, SynthReport)
    result = report.to_dict()
    assert REPORT_KEYS <= set(result)
    assert result["target"] == target
    assert result["fmax_mhz"] > 0
    assert result["luts"] > 0 and result["ffs"] > result["io_ring_ffs"] > 0
    assert result["brams"] >= result["line_buffer_brams"] >= 1
    return result


def test_synth_ice40_up5k_runtime(tmp_path):
    _need("nextpnr-ice40")
    messages = []
    spec = ConvSpec(width=128, height=16, kernel_shape=(3, 3))
    result = _check_report(synthesize(spec, "ice40-up5k", freq=12, build_dir=tmp_path,
                                      progress=messages.append), "ice40-up5k")
    assert result["dsps"] == 8 and result["max_dsps"] == 8    # the ninth tap is logic
    assert result["freq_met"] is True                       # 12 MHz is the iCEBreaker clock
    assert any(m.startswith("yosys:") for m in messages)
    assert any(m.startswith("nextpnr:") for m in messages)
    assert (tmp_path / "report.json").exists() and (tmp_path / "nextpnr.log").exists()


def test_synth_ecp5_25k_constant(tmp_path):
    _need("nextpnr-ecp5")
    spec = ConvSpec(width=128, height=16, kernel=SOBEL)
    result = _check_report(synthesize(spec, "ecp5-25k", build_dir=tmp_path), "ecp5-25k")
    assert result["dsps"] == 0                              # constants need no multiplier
    assert result["freq_met"] is None
    assert result["ram_output_registers"] == result["line_buffer_brams"]   # OUTREG in use


def test_yosys_override_is_used(tmp_path, monkeypatch):
    real = _need("yosys")
    _need("nextpnr-ice40")
    log = tmp_path / "calls.log"
    wrapper = tmp_path / "my-yosys"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("YOSYS", str(wrapper))
    spec = ConvSpec(width=8, height=4, kernel=[[1, 1]])
    report = synthesize(spec, "ice40-up5k", build_dir=tmp_path / "build")
    assert report.fmax_mhz > 0
    assert re.search(r"synth_ice40 -top top -device u -dsp", log.read_text())


def _ram_netlist(ff_params, ff_conns, extra_load=False):
    """A DP16KD whose DOB0/DOB1 (nets 10, 11) feed two flip-flops (Q nets 20, 21)."""
    cells = {"ram": {"type": "DP16KD", "parameters": {"REGMODE_B": "NOREG"},
                     "port_directions": {"CLKB": "input", "DOB0": "output", "DOB1": "output"},
                     "connections": {"CLKB": [2], "DOB0": [10], "DOB1": [11], "RSTA": ["0"]}}}
    for index in range(2):
        cells[f"ff{index}"] = {
            "type": "TRELLIS_FF", "parameters": dict(ff_params),
            "port_directions": {"CLK": "input", "DI": "input", "CE": "input", "LSR": "input",
                                "Q": "output"},
            "connections": {"CLK": [2], "DI": [10 + index], "Q": [20 + index], **ff_conns}}
    if extra_load:
        cells["lut"] = {"type": "LUT4", "parameters": {},
                        "port_directions": {"A": "input", "Z": "output"},
                        "connections": {"A": [10], "Z": [30]}}
    return {"modules": {"top": {"cells": cells, "netnames": {}}}}


@pytest.mark.parametrize("reset", [["0"], [5]])
def test_ram_output_register_absorbed(tmp_path, reset):
    from convhw.toolchain.netlist import absorb_ram_output_registers
    path = tmp_path / "net.json"
    params = {"CEMUX": "CE", "CLKMUX": "CLK", "LSRMUX": "LSR", "REGSET": "RESET",
              "GSR": "DISABLED"}
    path.write_text(json.dumps(_ram_netlist(params, {"CE": [4], "LSR": reset})))
    assert absorb_ram_output_registers(path) == (1, 2)
    cells = json.loads(path.read_text())["modules"]["top"]["cells"]
    assert set(cells) == {"ram"}
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["connections"]["DOB0"] == [20] and ram["connections"]["DOB1"] == [21]
    assert ram["connections"]["OCEB"] == [4]
    if reset != ["0"]:
        assert ram["connections"]["RSTB"] == reset
        assert ram["parameters"]["RESETMODE"] == "SYNC"


@pytest.mark.parametrize("other_reset, absorbed", [([5], (1, 2)), ([6], (0, 0))])
def test_ram_output_register_beside_the_other_ports(tmp_path, other_reset, absorbed):
    """A port whose capture shares the other port's output-register reset is absorbed too (a
    36-bit read over DOA and DOB); one with another reset is not (one reset mode per RAM)."""
    from convhw.toolchain.netlist import absorb_ram_output_registers
    params = {"CEMUX": "CE", "CLKMUX": "CLK", "LSRMUX": "LSR", "REGSET": "RESET",
              "GSR": "DISABLED"}
    netlist = _ram_netlist(params, {"CE": [4], "LSR": [5]})
    netlist["modules"]["top"]["cells"]["ram"]["connections"]["RSTA"] = other_reset
    path = tmp_path / "net.json"
    path.write_text(json.dumps(netlist))
    assert absorb_ram_output_registers(path) == absorbed


@pytest.mark.parametrize("case", ["other load", "set, not reset", "other clock"])
def test_ram_output_register_left_alone(tmp_path, case):
    from convhw.toolchain.netlist import absorb_ram_output_registers
    params = {"CEMUX": "CE", "REGSET": "SET" if case == "set, not reset" else "RESET"}
    conns = {"CE": [4], "LSR": [5] if case == "set, not reset" else ["0"]}
    netlist = _ram_netlist(params, conns, extra_load=case == "other load")
    if case == "other clock":
        netlist["modules"]["top"]["cells"]["ff1"]["connections"]["CLK"] = [3]
    path = tmp_path / "net.json"
    path.write_text(json.dumps(netlist))
    assert absorb_ram_output_registers(path) == (0, 0)
    assert json.loads(path.read_text()) == netlist


def _ff(clock, d, q, **conns):
    return {"type": "TRELLIS_FF",
            "parameters": {"CEMUX": "1 ", "CLKMUX": "CLK", "GSR": "DISABLED", "LSRMUX": "LSR",
                           "REGSET": "RESET", "SRMODE": "LSR_OVER_CE"},
            "port_directions": {"CLK": "input", "DI": "input", "CE": "input", "LSR": "input",
                                "Q": "output"},
            "connections": {"CLK": [clock], "DI": [d], "Q": [q], **conns}}


def _dsp_netlist():
    """A MULT18X18D as Yosys maps a 2-bit signed x 2-bit signed product: A0/A1 from flip-flops
    fa0/fa1 (A1's Q sign-extended over A2..A17, reset by a mask on net 9), B0 from fb0 and B1
    to B17 a constant 0, P0/P1 into flip-flops fp0/fp1, P2 into nothing; clock on net 2."""
    conns = {"SIGNEDA": ["1"], "SIGNEDB": ["1"], "SOURCEA": ["0"], "SOURCEB": ["0"],
             "A0": [30], "B0": [40], "P0": [50], "P1": [51], "P2": [52]}
    conns.update({f"A{i}": [31] for i in range(1, 18)})
    conns.update({f"B{i}": ["0"] for i in range(1, 18)})
    dsp = {"type": "MULT18X18D", "parameters": {}, "connections": conns,
           "port_directions": {pin: "output" if pin[0] == "P" else "input" for pin in conns}}
    cells = {"dsp": dsp,
             "fa0": _ff(2, 20, 30, LSR=[9]), "fa1": _ff(2, 21, 31, LSR=[9]),
             "fb0": _ff(2, 22, 40, LSR=[8]),
             "fp0": _ff(2, 50, 60, LSR=[8]), "fp1": _ff(2, 51, 61, LSR=[8])}
    return {"modules": {"top": {"cells": cells, "netnames": {}}}}


def test_dsp_registers_absorbed(tmp_path):
    from convhw.toolchain.netlist import absorb_dsp_registers
    path = tmp_path / "net.json"
    path.write_text(json.dumps(_dsp_netlist()))
    assert absorb_dsp_registers(path) == (1, 5)
    cells = json.loads(path.read_text())["modules"]["top"]["cells"]
    assert set(cells) == {"dsp"}
    params, conns = cells["dsp"]["parameters"], cells["dsp"]["connections"]
    for reg in ("INPUTA", "INPUTB", "OUTPUT"):
        assert params[f"REG_{reg}_CLK"] == "CLK0"
        assert params[f"REG_{reg}_CE"] == "CE0"
    # The output register only has RST0: the product's reset goes there, A's to another.
    assert params["REG_OUTPUT_RST"] == "RST0" and params["REG_INPUTB_RST"] == "RST0"
    assert params["REG_INPUTA_RST"] == "RST1"
    assert conns["RST0"] == [8] and conns["RST1"] == [9] and conns["RST2"] == ["0"]
    assert conns["CLK0"] == [2] and all(conns[f"CE{i}"] == ["1"] for i in range(4))
    assert params["RESETMODE"] == "SYNC" and params["GSR"] == "DISABLED"
    assert conns["A0"] == [20] and all(conns[f"A{i}"] == [21] for i in range(1, 18))
    assert conns["B0"] == [22] and conns["B1"] == ["0"]
    assert conns["P0"] == [60] and conns["P1"] == [61] and conns["P2"] == [52]


def test_dsp_input_register_shared_by_two_multipliers(tmp_path):
    """An operand flip-flop feeding two multipliers is copied into both input registers."""
    from convhw.toolchain.netlist import absorb_dsp_registers
    netlist = _dsp_netlist()
    cells = netlist["modules"]["top"]["cells"]
    twin = json.loads(json.dumps(cells["dsp"]))
    twin["connections"].update({"B0": [41], "P0": [53], "P1": [54], "P2": [55]})
    cells["dsp2"] = twin
    cells["fb1"] = _ff(2, 23, 41, LSR=[8])
    path = tmp_path / "net.json"
    path.write_text(json.dumps(netlist))
    # Both multipliers take A's flip-flops (fa0, fa1) and their own B; one product register.
    assert absorb_dsp_registers(path) == (2, 6)
    after = json.loads(path.read_text())["modules"]["top"]["cells"]
    assert set(after) == {"dsp", "dsp2"}
    for name in ("dsp", "dsp2"):
        assert after[name]["connections"]["A0"] == [20]
        assert after[name]["parameters"]["REG_INPUTA_CLK"] == "CLK0"
    assert after["dsp2"]["connections"]["B0"] == [23]
    assert "REG_OUTPUT_CLK" not in after["dsp2"]["parameters"]


def test_dsp_shared_input_kept_while_a_multiplier_still_reads_it(tmp_path):
    """When one of two multipliers cannot take its registers, the shared flip-flop stays."""
    from convhw.toolchain.netlist import absorb_dsp_registers
    netlist = _dsp_netlist()
    cells = netlist["modules"]["top"]["cells"]
    twin = json.loads(json.dumps(cells["dsp"]))
    twin["connections"].update({"B0": [41], "P0": [53], "P1": [54], "P2": [55]})
    cells["dsp2"] = twin
    cells["fb1"] = _ff(3, 23, 41, LSR=[8])      # another clock: dsp2 keeps its inputs as they are
    path = tmp_path / "net.json"
    path.write_text(json.dumps(netlist))
    assert absorb_dsp_registers(path) == (1, 3)   # dsp: B and the product; A's flip-flops stay
    after = json.loads(path.read_text())["modules"]["top"]["cells"]
    assert {"fa0", "fa1", "fb1"} <= set(after)
    assert after["dsp2"]["connections"]["A0"] == [30]
    assert after["dsp"]["connections"]["A0"] == [20]


@pytest.mark.parametrize("case", ["A also feeds a LUT", "enable and reset", "other clock"])
def test_dsp_input_registers_left_alone(tmp_path, case):
    from convhw.toolchain.netlist import absorb_dsp_registers
    netlist = _dsp_netlist()
    cells = netlist["modules"]["top"]["cells"]
    if case == "A also feeds a LUT":
        cells["lut"] = {"type": "LUT4", "parameters": {},
                        "port_directions": {"A": "input", "Z": "output"},
                        "connections": {"A": [31], "Z": [70]}}
    elif case == "enable and reset":     # which of the two wins is not for the DSP to decide
        cells["fb0"]["parameters"]["CEMUX"] = "CE"
        cells["fb0"]["connections"]["CE"] = [7]
    else:
        cells["fa1"]["connections"]["CLK"] = [3]
    path = tmp_path / "net.json"
    path.write_text(json.dumps(netlist))
    assert absorb_dsp_registers(path) == (1, 2)      # the product register only
    after = json.loads(path.read_text())["modules"]["top"]["cells"]
    assert {"fa0", "fa1", "fb0"} <= set(after) and not {"fp0", "fp1"} & set(after)
    assert after["dsp"]["parameters"]["REG_OUTPUT_CLK"] == "CLK0"
    assert "REG_INPUTA_CLK" not in after["dsp"]["parameters"]
    assert after["dsp"]["connections"]["A1"] == [31]


def test_dsp_left_alone_when_product_feeds_logic(tmp_path):
    from convhw.toolchain.netlist import absorb_dsp_registers
    netlist = _dsp_netlist()
    cells = netlist["modules"]["top"]["cells"]
    cells["lut"] = {"type": "LUT4", "parameters": {},
                    "port_directions": {"A": "input", "Z": "output"},
                    "connections": {"A": [51], "Z": [70]}}
    cells["fa0"]["connections"]["CLK"] = [3]
    path = tmp_path / "net.json"
    path.write_text(json.dumps(netlist))
    assert absorb_dsp_registers(path) == (0, 0)
    assert json.loads(path.read_text()) == netlist


def test_synth_ecp5_runtime_dsp_registers(tmp_path):
    _need("nextpnr-ecp5")
    spec = ConvSpec(width=16, height=8, kernel_shape=(1, 2))
    report = synthesize(spec, "ecp5-25k", build_dir=tmp_path)
    assert report.fmax_mhz > 0 and report.dsps == 2
    cells = json.loads((tmp_path / "top.json").read_text())["modules"]["top"]["cells"]
    dsps = [cell for cell in cells.values() if cell["type"] == "MULT18X18D"]
    assert len(dsps) == 2
    for dsp in dsps:        # taps, coefficients and products all in the DSP's registers
        for reg in ("INPUTA", "INPUTB", "OUTPUT"):
            assert dsp["parameters"][f"REG_{reg}_CLK"] == "CLK0"


def _carry_netlist():
    """Two SB_CARRY cells: c0's CO (net 10) drives c1's CI and a LUT's I3 (a sum bit), c1's
    CO (net 11) drives a flip-flop and a LUT's I0 (an adder's top bit)."""
    def carry(ci, co):
        return {"type": "SB_CARRY", "parameters": {},
                "port_directions": {"CI": "input", "I0": "input", "I1": "input", "CO": "output"},
                "connections": {"CI": [ci], "I0": [3], "I1": [4], "CO": [co]}}

    def lut(pin, net, out):
        conns = {"I0": ["0"], "I1": ["0"], "I2": ["0"], "I3": ["0"], "O": [out]}
        conns[pin] = [net]
        return {"type": "SB_LUT4", "parameters": {"LUT_INIT": "0110100110010110"},
                "port_directions": {p: "output" if p == "O" else "input" for p in conns},
                "connections": conns}
    cells = {"c0": carry(5, 10), "c1": carry(10, 11), "sum": lut("I3", 10, 12),
             "other": lut("I0", 11, 13),
             "ff": {"type": "SB_DFF", "parameters": {},
                    "port_directions": {"C": "input", "D": "input", "Q": "output"},
                    "connections": {"C": [2], "D": [11], "Q": [14]}}}
    return {"modules": {"top": {"cells": cells, "netnames": {"top_bit": {"bits": [11]}}}}}


def test_carry_chain_ends_in_a_lut(tmp_path):
    from convhw.toolchain.netlist import end_carry_chains_in_luts
    path = tmp_path / "net.json"
    path.write_text(json.dumps(_carry_netlist()))
    assert end_carry_chains_in_luts(path) == 1
    cells = json.loads(path.read_text())["modules"]["top"]["cells"]
    assert cells["c0"]["connections"]["CO"] == [10]          # already in the chain
    (carry,) = cells["c1"]["connections"]["CO"]
    assert carry > 14                                         # a new net
    (name,) = set(cells) - set(_carry_netlist()["modules"]["top"]["cells"])
    lut = cells[name]
    assert lut["type"] == "SB_LUT4" and lut["parameters"]["LUT_INIT"] == "1111111100000000"
    assert lut["connections"]["I3"] == [carry] and lut["connections"]["O"] == [11]
    assert cells["ff"]["connections"]["D"] == [11] and cells["other"]["connections"]["I0"] == [11]
    assert end_carry_chains_in_luts(path) == 0                # the LUT is now the chain's end


def test_chains_keep_small_enables_in_luts():
    from convhw.toolchain.synth import CHAIN_MIN_CE_USE, yosys_script
    assert f"-dffe_min_ce_use {CHAIN_MIN_CE_USE}" in yosys_script(
        "ice40-up5k", min_ce_use=CHAIN_MIN_CE_USE)
    assert "dffe_min_ce_use" not in yosys_script("ice40-up5k")
    assert "dffe_min_ce_use" not in yosys_script("ecp5-25k", min_ce_use=8)


def test_packed_logic_cells(tmp_path):
    _need("nextpnr-ice40")
    from convhw.toolchain import packed_logic_cells
    used, available = packed_logic_cells(ConvSpec(width=32, height=8, kernel=SOBEL),
                                         "ice40-up5k", build_dir=tmp_path)
    assert available == 5280 and 100 < used < 1000
    assert (tmp_path / "pack.json").exists()


@pytest.mark.parametrize("cells_per_multiplier, expected", [(500, 8), (700, 5), (2000, 3)])
def test_fold_to_place_folds_until_the_logic_places(monkeypatch, cells_per_multiplier,
                                                    expected):
    pytest.importorskip("onnx")
    from convhw import toolchain
    from convhw.folding import balance_network
    from convhw.model_options import fold_to_place
    from convhw.onnx import read_model

    network = read_model("sim/models/digits.onnx")
    packed = []

    def fake_pack(chain, target, **_):
        packed.append(chain.multipliers)
        return cells_per_multiplier * chain.multipliers, 5280

    monkeypatch.setattr(toolchain, "packed_logic_cells", fake_pack)
    folding, note = fold_to_place(network, balance_network(network, max_multipliers=8),
                                  "ice40-up5k")
    assert folding.multipliers == expected
    # One multiplier less each time (a budget that balances the same is one step).
    assert packed[0] == 8 and packed == sorted(packed, reverse=True)
    if expected == 8:
        assert note is None
    else:
        assert note.startswith(f"folded for {expected} multipliers, not the 8 of the DSP "
                               f"budget: nextpnr places at most about 80% of the "
                               f"ice40-up5k's 5280 logic cells (8 multipliers: "
                               f"{8 * cells_per_multiplier} cells;")
    # Parts whose limit is not measured are left alone.
    packed.clear()
    assert fold_to_place(network, balance_network(network, max_multipliers=28),
                         "ecp5-25k")[1] is None and packed == []



@pytest.mark.parametrize("in_block_ram", [False, True])
def test_small_result_queues_in_block_ram(tmp_path, in_block_ram):
    """A queue of two 70-bit results: registers, or block RAM when asked (on the iCE40)."""
    _need("yosys")
    from amaranth.back import rtlil

    from convhw.gateware.core_io import OutputQueue
    from convhw.toolchain.synth import yosys_script
    from convhw.toolchain.tools import run_tool

    queue = OutputQueue(bits=70, depth=2, small_in_block_ram=in_block_ram)
    (tmp_path / "top.il").write_text(rtlil.convert(queue, name="top"))
    run_tool("yosys", ["-q", "-p", yosys_script("ice40-up5k")], cwd=tmp_path,
             log_path=tmp_path / "yosys.log")
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    assert (cells.get("SB_RAM40_4K", 0) > 0) == in_block_ram
    flip_flops = sum(n for name, n in cells.items() if name.startswith("SB_DFF"))
    assert flip_flops < 70 if in_block_ram else flip_flops >= 140
