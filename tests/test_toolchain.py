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
