"""Netlist passes that Yosys lacks, applied to its JSON netlist before nextpnr.

:func:`absorb_ram_output_registers` moves the flip-flops that capture an ECP5 ``DP16KD`` read
port into the block RAM's own output register (``REGMODE_x = "OUTREG"``). Yosys never uses that
register, so a RAM read otherwise costs its whole clock-to-output time (5.8 ns at speed grade 6)
plus routing to a fabric flip-flop. The move keeps the behaviour cycle for cycle: the output
register loads when the flip-flops' clock enable is high (``OCEx``), on the same clock, and
their synchronous reset to zero becomes the RAM's (``RSTx``, ``RESETMODE = "SYNC"``). It is made
only where every used output bit of the port drives exactly one such flip-flop and nothing else.

:func:`absorb_dsp_registers` does the same for ``MULT18X18D`` multipliers: the flip-flops that
feed all of A and all of B go into the input registers, and those that capture the product P
into the output register (see its docstring for when).

:func:`end_carry_chains_in_luts` gives an iCE40 carry chain whose carry out is a result bit (an
adder's top bit) a pass-through ``SB_LUT4`` there, so nextpnr places that bit in the chain's
next logic cell with its flip-flop.
"""

import json

__all__ = ["absorb_ram_output_registers", "absorb_dsp_registers", "end_carry_chains_in_luts"]


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
    cemux = params.get("CEMUX", "1").strip()
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
                    # The RAM's reset mode is shared by both ports: the other must not use its
                    # reset, or use this one (a 36-bit read split over DOA and DOB).
                    if cell["connections"].get(f"RST{other}", ["0"]) not in (["0"], reset):
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


def _drivers(cells):
    drivers = {}
    for name, cell in cells.items():
        directions = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            if directions.get(port) == "output":
                for bit in bits:
                    if isinstance(bit, int):
                        drivers[bit] = (name, port)
    return drivers


def _dsp_ff(cell, clock):
    """``(enable, reset)`` of a flip-flop that a DSP register can stand in for, or ``None``.

    As for RAM output registers; in addition the enable or the reset must be constant, so the
    order of the two (which the DSP documentation leaves open) never matters.
    """
    control = _capture_ff(cell, clock)
    if control is None or (control[0] != ["1"] and control[1] != ["0"]):
        return None
    return control


def _is_multiplier_input(cells, user, pin):
    return (cells[user]["type"] == "MULT18X18D" and pin[:1] in "AB" and pin[1:].isdigit())


def _input_register(cells, drivers, loads, dsp_name, bits, clock):
    """``(flip_flops, (enable, reset))`` when every bit of a multiplier input comes from a
    flip-flop that feeds only multiplier inputs (this one's, or others' too: each multiplier
    then holds a copy in its own register), or is a constant 0, all with one control, else
    None.
    """
    flip_flops, control = {}, None
    for pin, bit in bits.items():
        if bit == "0":
            continue
        if not isinstance(bit, int) or bit not in drivers:
            return None
        ff_name, port = drivers[bit]
        if port != "Q":
            return None
        if not all(_is_multiplier_input(cells, user, user_pin)
                   for user, user_pin in loads.get(bit, [])):
            return None
        ff_control = _dsp_ff(cells[ff_name], clock)
        if ff_control is None or (control is not None and ff_control != control):
            return None
        control = ff_control
        flip_flops[ff_name] = bit
    return (flip_flops, control) if flip_flops else None


def _output_register(cells, loads, outputs, clock):
    """``(captures, (enable, reset))`` when every used product bit drives exactly one
    flip-flop and nothing else, all with one control, else None."""
    captures, control = {}, None
    for pin, bit in outputs.items():
        users = loads.get(bit, []) if isinstance(bit, int) else []
        if not users:
            continue
        if len(users) != 1 or users[0][1] != "DI":
            return None
        ff_name = users[0][0]
        ff_control = _dsp_ff(cells[ff_name], clock)
        if ff_control is None or (control is not None and ff_control != control):
            return None
        control = ff_control
        captures[pin] = ff_name
    return (captures, control) if captures else None


def absorb_dsp_registers(netlist_path, *, top="top"):
    """Move flip-flops into ``MULT18X18D`` registers; rewrite ``netlist_path`` in place.

    A multiplier gets input registers (``REG_INPUTA_CLK = REG_INPUTB_CLK = "CLK0"``) when
    every bit of A and of B is a constant 0 or the output of a flip-flop whose output feeds only
    multiplier inputs (a flip-flop shared by several multipliers, such as a folded layer's
    operand, is copied into each one's register and removed once none reads it), and an output
    register (``REG_OUTPUT_CLK``) when every used bit of P drives
    exactly one flip-flop and nothing else. The flip-flops of a register must share one clock
    (it becomes ``CLK0``), one clock enable and one synchronous reset to zero (they become a
    ``CEx``/``RSTx`` pair, the output register's on ``CE0``/``RST0``), and the enable or the
    reset must be constant. So the registers behave as the flip-flops did, cycle for cycle: a
    constant 0 stays 0 through a reset, and ``SIGNEDA``/``SIGNEDB`` (constants) only read 0
    after a reset of their register, when that operand, and so the product, is 0 too.

    Returns ``(multipliers, flip_flops)``: how many multipliers gained registers, and how many
    flip-flops went into them.
    """
    with open(netlist_path) as f:
        netlist = json.load(f)
    cells = netlist["modules"][top]["cells"]
    loads = _drivers_and_loads(cells)
    drivers = _drivers(cells)
    multipliers = flip_flops = 0
    shared = set()      # input flip-flops that other multipliers may still read
    for name, cell in list(cells.items()):
        if cell["type"] != "MULT18X18D":
            continue
        params, conns = cell["parameters"], cell["connections"]
        if any(params.get(f"REG_{reg}_CLK", "NONE") != "NONE"
               for reg in ("INPUTA", "INPUTB", "INPUTC", "PIPELINE", "OUTPUT")):
            continue
        if any(conns.get(pin, ["0"]) != ["0"] for pin in ("SOURCEA", "SOURCEB")):
            continue
        if any(conns.get(f"{kind}{i}", ["0"]) not in (["0"], ["1"])
               for kind in ("CLK", "CE", "RST") for i in range(4)):
            continue
        bits_of = {port: {pin: bits[0] for pin, bits in conns.items()
                          if pin[:1] == port and pin[1:].isdigit()} for port in "ABP"}
        # One clock for every register: that of the flip-flops that the pass would remove.
        clock = None
        for bit in list(bits_of["A"].values()) + list(bits_of["B"].values()):
            if isinstance(bit, int) and bit in drivers \
                    and cells[drivers[bit][0]]["type"] == "TRELLIS_FF":
                clock = cells[drivers[bit][0]]["connections"].get("CLK")
                break
        for pin, bit in bits_of["P"].items():
            users = loads.get(bit, []) if isinstance(bit, int) else []
            if clock is None and len(users) == 1 \
                    and cells[users[0][0]]["type"] == "TRELLIS_FF":
                clock = cells[users[0][0]]["connections"].get("CLK")
        if clock is None:
            continue
        registers = {}
        input_a = _input_register(cells, drivers, loads, name, bits_of["A"], clock)
        input_b = _input_register(cells, drivers, loads, name, bits_of["B"], clock)
        if input_a and input_b:
            registers["INPUTA"], registers["INPUTB"] = input_a, input_b
        output = _output_register(cells, loads, bits_of["P"], clock)
        if output:
            registers["OUTPUT"] = output
        # Control signal pairs: the output register only has CE0 and RST0.
        enables, resets = [], []
        order = ["OUTPUT", "INPUTA", "INPUTB"]
        for reg in [reg for reg in order if reg in registers]:
            enable, reset = registers[reg][1]
            for signals, signal in ((enables, enable), (resets, reset)):
                if signal not in signals:
                    signals.append(signal)
        if not registers or len(enables) > 4 or len(resets) > 4:
            continue
        for reg, (members, (enable, reset)) in registers.items():
            params[f"REG_{reg}_CLK"] = "CLK0"
            params[f"REG_{reg}_CE"] = f"CE{enables.index(enable)}"
            params[f"REG_{reg}_RST"] = f"RST{resets.index(reset)}"
            if reg == "OUTPUT":
                for pin, ff_name in members.items():
                    conns[pin] = cells[ff_name]["connections"]["Q"]
            else:
                for ff_name, q_bit in members.items():
                    d = cells[ff_name]["connections"]["DI"]
                    for pin, bit in bits_of[reg[-1]].items():
                        if bit == q_bit:
                            conns[pin] = d
            if reg == "OUTPUT":
                for ff_name in members.values():
                    del cells[ff_name]
                flip_flops += len(members)
            else:
                shared.update(members)
        params["GSR"] = "DISABLED"
        params["RESETMODE"] = "SYNC"
        directions = cell.setdefault("port_directions", {})
        conns["CLK0"] = clock
        for i in range(4):
            conns[f"CE{i}"] = enables[i] if i < len(enables) else ["1"]
            conns[f"RST{i}"] = resets[i] if i < len(resets) else ["0"]
        for pin in ["CLK0"] + [f"{kind}{i}" for kind in ("CE", "RST") for i in range(4)]:
            directions[pin] = "input"
        multipliers += 1
    # An input flip-flop goes once no multiplier (nor anything else) reads it any more.
    loads = _drivers_and_loads(cells)
    for ff_name in shared:
        if not any(loads.get(bit) for bit in cells[ff_name]["connections"]["Q"]
                   if isinstance(bit, int)):
            del cells[ff_name]
            flip_flops += 1
    with open(netlist_path, "w") as f:
        json.dump(netlist, f)
    return multipliers, flip_flops


#: ``O = I3``.
_PASS_I3 = "1111111100000000"


def end_carry_chains_in_luts(netlist_path, *, top="top"):
    """Rewrite ``netlist_path`` in place; return how many carry outputs got a pass-through LUT.

    An unsigned adder's top bit is its last carry out: Yosys maps its sum LUT (``0 ^ 0 ^ CI``)
    away, so an ``SB_CARRY``'s ``CO`` drives a flip-flop or logic. An iCE40 logic cell takes
    its carry in only at ``I3`` and its carry out only into the next cell, so nextpnr then
    inserts a pass-out cell (``O = I3``) and places the flip-flop in a cell of its own: a carry
    chain's top bit took about 4.6 ns after the chain's last carry (0.66 + 0.87 + 3.06 ns of
    routing, LUT and routing on the UP5K) against about 0.3 ns for the other bits. A pass-through
    ``SB_LUT4`` on ``CO`` (``I3`` only) is a logic cell that nextpnr packs with the flip-flop
    and places as the chain's next cell. Made where no user of ``CO`` is already a carry in or a
    LUT's ``I3`` (those stay in the chain as they are); the logic is unchanged.
    """
    with open(netlist_path) as f:
        netlist = json.load(f)
    module = netlist["modules"][top]
    cells = module["cells"]
    loads = _drivers_and_loads(cells)
    next_bit = 1 + max((bit for net in module["netnames"].values() for bit in net["bits"]
                        if isinstance(bit, int)), default=1)
    for cell in cells.values():
        for bits in cell["connections"].values():
            next_bit = max([next_bit] + [bit + 1 for bit in bits if isinstance(bit, int)])
    inserted = 0
    for name, cell in list(cells.items()):
        if cell["type"] != "SB_CARRY":
            continue
        (carry,) = cell["connections"]["CO"]
        users = loads.get(carry, []) if isinstance(carry, int) else []
        if not users or any((cells[user]["type"], pin) in (("SB_CARRY", "CI"), ("SB_LUT4", "I3"))
                            for user, pin in users):
            continue
        cell["connections"]["CO"] = [next_bit]
        cells[f"{name}$pass_out"] = {
            "hide_name": 1, "type": "SB_LUT4", "parameters": {"LUT_INIT": _PASS_I3},
            "attributes": {},
            "port_directions": {"I0": "input", "I1": "input", "I2": "input", "I3": "input",
                                "O": "output"},
            "connections": {"I0": ["0"], "I1": ["0"], "I2": ["0"], "I3": [next_bit],
                            "O": [carry]},
        }
        module["netnames"][f"{name}$carry_out"] = {"hide_name": 1, "bits": [next_bit],
                                                    "attributes": {}}
        next_bit += 1
        inserted += 1
    with open(netlist_path, "w") as f:
        json.dump(netlist, f)
    return inserted
