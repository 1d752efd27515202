"""Netlist passes that Yosys lacks, applied to its JSON netlist before nextpnr.

:func:`absorb_ram_output_registers` moves the flip-flops that capture an ECP5 ``DP16KD`` read
port into the block RAM's own output register (``REGMODE_x = "OUTREG"``). Yosys never uses that
register, so a RAM read otherwise costs its whole clock-to-output time (5.8 ns at speed grade 6)
plus routing to a fabric flip-flop. The move keeps the behaviour cycle for cycle: the output
register loads when the flip-flops' clock enable is high (``OCEx``), on the same clock, and
their synchronous reset to zero becomes the RAM's (``RSTx``, ``RESETMODE = "SYNC"``). It is made
only where every used output bit of the port drives exactly one such flip-flop and nothing else.
"""

import json

__all__ = ["absorb_ram_output_registers"]


def _drivers_and_loads(cells):
    loads = {}
    for name, cell in cells.items():
        directions = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            if directions.get(port) == "input":
                for bit in bits:
                    if isinstance(bit, int):
                        loads.setdefault(bit, []).append((name, port))
    return loads


def _capture_ff(cell, clock):
    """``(enable, reset)`` connections of a ``TRELLIS_FF`` on ``clock`` that a RAM output
    register can stand in for (reset to zero, synchronous, over the enable), or ``None``."""
    if cell["type"] != "TRELLIS_FF":
        return None
    params, conns = cell["parameters"], cell["connections"]
    if conns.get("CLK") != clock or params.get("CLKMUX", "CLK") != "CLK":
        return None
    if params.get("REGSET", "RESET") != "RESET" or params.get("LSRMUX", "LSR") != "LSR":
        return None
    reset = conns.get("LSR", ["0"])
    if reset != ["0"] and (params.get("SRMODE", "LSR_OVER_CE") != "LSR_OVER_CE"
                           or params.get("GSR", "DISABLED") != "DISABLED"):
        return None
    cemux = params.get("CEMUX", "1")
    if cemux == "CE" and "CE" in conns:
        return conns["CE"], reset
    if cemux in ("1", "") and conns.get("CE", ["1"]) == ["1"]:
        return ["1"], reset
    return None


def absorb_ram_output_registers(netlist_path, *, top="top"):
    """Rewrite ``netlist_path`` in place; return ``(ports, flip_flops)``: how many RAM ports
    now use OUTREG, and how many flip-flops went into them."""
    with open(netlist_path) as f:
        netlist = json.load(f)
    cells = netlist["modules"][top]["cells"]
    loads = _drivers_and_loads(cells)
    ports = flip_flops = 0
    for name, cell in list(cells.items()):
        if cell["type"] != "DP16KD":
            continue
        for port in "AB":
            if cell["parameters"].get(f"REGMODE_{port}", "NOREG") != "NOREG":
                continue
            clock = cell["connections"].get(f"CLK{port}")
            outputs = {pin: bits for pin, bits in cell["connections"].items()
                       if pin.startswith(f"DO{port}") and isinstance(bits[0], int)}
            other = "B" if port == "A" else "A"
            captures, control = {}, None
            for pin, (bit,) in outputs.items():
                users = loads.get(bit, [])
                if not users:
                    continue
                if len(users) != 1 or users[0][1] != "DI":
                    break
                ff_name = users[0][0]
                ff_control = _capture_ff(cells[ff_name], clock)
                if ff_control is None or (control is not None and ff_control != control):
                    break
                control = ff_control
                captures[pin] = ff_name
            else:
                if not captures:
                    continue
                enable, reset = control
                if reset != ["0"]:
                    # The RAM's reset mode is shared by both ports: the other must not use it.
                    if cell["connections"].get(f"RST{other}", ["0"]) != ["0"]:
                        continue
                    cell["parameters"]["RESETMODE"] = "SYNC"
                    cell["connections"][f"RST{port}"] = reset
                for pin, ff_name in captures.items():
                    cell["connections"][pin] = cells[ff_name]["connections"]["Q"]
                    del cells[ff_name]
                cell["parameters"][f"REGMODE_{port}"] = "OUTREG"
                cell["connections"][f"OCE{port}"] = enable
                ports += 1
                flip_flops += len(captures)
    with open(netlist_path, "w") as f:
        json.dump(netlist, f)
    return ports, flip_flops
