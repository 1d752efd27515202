"""A value carried alongside a pipeline: ``cycles`` registers in a row."""

from amaranth import *

__all__ = ["delay"]


def delay(m, value, cycles, name):
    """``value`` delayed by ``cycles`` clocks of ``m.d.sync`` (``value`` itself for 0)."""
    for index in range(cycles):
        stage = Signal.like(value, name=f"{name}_d{index}")
        m.d.sync += stage.eq(value)
        value = stage
    return value
