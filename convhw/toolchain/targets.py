"""FPGA targets that ``synthesize`` knows: device, package and the hard blocks they offer."""

from dataclasses import dataclass

__all__ = ["Target", "TARGETS", "get_target"]


@dataclass(frozen=True)
class Target:
    """One FPGA part as Yosys and nextpnr name it.

    ``device`` is the nextpnr device flag without dashes (``up5k``, ``25k``); ``dsps`` and
    ``brams`` count the multiplier blocks (``SB_MAC16``, ``MULT18X18D``) and block RAMs
    (``SB_RAM40_4K``, ``DP16KD``) of the part, ``bram_bits`` the bits in one block RAM.
    """
    name: str
    family: str
    device: str
    package: str
    dsps: int
    brams: int
    bram_bits: int
    luts: int
    speed: int = None
    yosys_device: str = None
    #: The share of the logic cells beyond which nextpnr does not place a design in practice
    #: (``None``: not measured). iCE40: the digits network on the UP5K packed into 78% placed
    #: in two minutes; into 83% and 85%, HeAP found no legal placement in 20 minutes.
    placeable_fraction: float = None

    @property
    def description(self):
        speed = f", speed grade {self.speed}" if self.speed else ""
        return f"{self.family} {self.device} ({self.package}{speed})"


TARGETS = {target.name: target for target in (
    Target("ice40-up5k", "ice40", "up5k", "sg48", dsps=8, brams=30, bram_bits=4096, luts=5280,
           yosys_device="u", placeable_fraction=0.8),
    Target("ice40-hx8k", "ice40", "hx8k", "ct256", dsps=0, brams=32, bram_bits=4096, luts=7680,
           yosys_device="hx", placeable_fraction=0.8),
    Target("ecp5-25k", "ecp5", "25k", "CABGA256", dsps=28, brams=56, bram_bits=18432,
           luts=24288, speed=6),
    Target("ecp5-85k", "ecp5", "85k", "CABGA381", dsps=156, brams=208, bram_bits=18432,
           luts=83640, speed=6),
)}


def get_target(target):
    """The :class:`Target` named ``target`` (or ``target`` itself)."""
    if isinstance(target, Target):
        return target
    if target not in TARGETS:
        raise ValueError(f"'target' must be one of {', '.join(TARGETS)}, not {target!r}")
    return TARGETS[target]
