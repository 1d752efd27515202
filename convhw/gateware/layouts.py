"""Stream payloads and the runtime coefficient port.

A pixel carries AXI4-Stream video frame markers: ``first`` on the first pixel of a frame (SOF,
``tuser``) and ``last`` on the last pixel of each row (EOL, ``tlast``).
"""

from amaranth import signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2

__all__ = ["pixel_layout", "coefficient_port_signature"]


def pixel_layout(bits, is_signed):
    return data.StructLayout({
        "data": signed(bits) if is_signed else unsigned(bits),
        "first": 1,
        "last": 1,
    })


def coefficient_port_signature(spec):
    """Write port for runtime coefficients: ``addr`` is the row-major kernel index."""
    return wiring.Signature({
        "addr": Out(max(1, ceil_log2(spec.taps))),
        "data": Out(signed(spec.coeff_bits)),
        "we": Out(1),
    })
