"""Chain: streaming cores in a row, one per layer of a :class:`~convhw.chain.ChainSpec`.

Each layer is a :class:`~convhw.gateware.conv2d.Conv2d` (a conv, dense or max-pool core). Core
``k``'s output stream feeds core ``k+1``'s input stream directly (AXI4-Stream ready/valid):
a core's ``o.valid`` and payload come from registers, and its ``i.ready`` does not depend on
``i.valid``, so the link adds no combinational loop. The width adapter between them takes each
signed output channel into the next layer's input format; :class:`~convhw.chain.ChainSpec`
proved that every value the layer can give fits it, so this is a truncation or an extension of
the same number. Frame markers pass through (``first`` starts the next core's frame).

The chain has the ports of a single core: ``i``, one beat per input pixel with every channel;
``o``, one beat per output pixel with every channel (for a final dense layer, one beat per
inference with every score). Frames stream back to back: every core starts a frame as soon
as the previous one's positions have been issued.
"""

from amaranth import *
from amaranth.lib import wiring

from ..chain import ChainSpec
from .conv2d import Conv2d
from .core_io import core_signature

__all__ = ["Chain"]


class Chain(wiring.Component):
    """The cores of ``spec`` (a :class:`~convhw.chain.ChainSpec`) chained by their streams.

    Members
    -------
    i : In(stream.Signature(pixel_layout(in_bits, in_signed, in_channels)))
    o : Out(stream.Signature(pixel_layout(out_bits, True, out_channels)))
    """

    def __init__(self, spec):
        if not isinstance(spec, ChainSpec):
            raise TypeError(f"'spec' must be a ChainSpec, not {spec!r}")
        self._spec = spec
        super().__init__(core_signature(spec))

    @property
    def spec(self):
        return self._spec

    def elaborate(self, platform):
        m = Module()
        # Built here, not in __init__: a compiled model found in the cache runs the chain
        # without elaborating it, and cores made up front would then be reported unused.
        cores = [Conv2d(layer) for layer in self._spec.specs]
        for index, (core, name) in enumerate(zip(cores, self._spec.names)):
            m.submodules[f"l{index}_{name}"] = core
        first, last = cores[0], cores[-1]
        m.d.comb += [
            first.i.payload.eq(self.i.payload),
            first.i.valid.eq(self.i.valid),
            self.i.ready.eq(first.i.ready),
            self.o.payload.eq(last.o.payload),
            self.o.valid.eq(last.o.valid),
            last.o.ready.eq(self.o.ready),
        ]
        for a, b in zip(cores, cores[1:]):
            channels = a.spec.out_channels
            source, sink = a.o.payload.data, b.i.payload.data
            if channels == 1:
                m.d.comb += sink.eq(source)
            else:
                m.d.comb += [sink[c].eq(source[c]) for c in range(channels)]
            m.d.comb += [
                b.i.payload.first.eq(a.o.payload.first),
                b.i.payload.last.eq(a.o.payload.last),
                b.i.valid.eq(a.o.valid),
                a.o.ready.eq(b.i.ready),
            ]
        return m
