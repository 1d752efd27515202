"""Stream payloads and the runtime coefficient port.

A pixel carries AXI4-Stream video frame markers: ``first`` on the first pixel of a frame (SOF,
``tuser``) and ``last`` on the last pixel of each row (EOL, ``tlast``). A pixel of several
channels carries them side by side, channel 0 in the lowest bits.
"""

from amaranth import signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2

__all__ = ["pixel_layout", "coefficient_port_signature"]


def pixel_layout(bits, is_signed, channels=1, lanes=1):
    """``{data, first, last}``; ``data`` is one value, or an array of ``channels`` values; with
    ``lanes`` > 1 an array of that many such pixels (a beat, the leftmost in the lowest bits)."""
    value = signed(bits) if is_signed else unsigned(bits)
    pixel = value if channels == 1 else data.ArrayLayout(value, channels)
    return data.StructLayout({
        "data": pixel if lanes == 1 else data.ArrayLayout(pixel, lanes),
        "first": 1,
        "last": 1,
    })


def coefficient_port_signature(spec):
    """Write port for runtime coefficients: ``addr`` as :meth:`ConvSpec.coefficient_address`
    documents (the row-major kernel index for one kernel)."""
    depth = getattr(spec, "coefficient_addresses", spec.taps)
    return wiring.Signature({
        "addr": Out(max(1, ceil_log2(depth))),
        "data": Out(signed(spec.coeff_bits)),
        "we": Out(1),
    })
