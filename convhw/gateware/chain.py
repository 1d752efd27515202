"""Chain: streaming cores in a row, one per layer of a :class:`~convhw.chain.ChainSpec`.

Each layer is a :class:`~convhw.gateware.conv2d.Conv2d` (a conv, dense or max-pool core). Core
``k``'s output stream feeds core ``k+1``'s input stream directly (AXI4-Stream ready/valid):
a core's ``o.valid`` and payload come from registers, and its ``i.ready`` does not depend on
``i.valid``, so the link adds no combinational loop. The width adapter between them takes each
signed output channel into the next layer's input format; :class:`~convhw.chain.ChainSpec`
proved that every value the layer can give fits it, so this is a truncation or an extension of
the same number. Frame markers pass through (``first`` starts the next core's frame). A
registered link (:attr:`~convhw.chain.ChainSpec.registered_links`) holds one beat between them
in registers.

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
        cores = [Conv2d(layer, small_queue_in_block_ram=self._spec.small_queues_in_block_ram)
                 for layer in self._spec.specs]
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
        for index, (a, b, registered) in enumerate(
                zip(cores, cores[1:], self._spec.registered_links)):
            source = a.o
            if registered:
                source = _register_link(m, a.o, f"link_{index}")
            channels = a.spec.out_channels
            data, sink = source.payload.data, b.i.payload.data
            if channels == 1:
                m.d.comb += sink.eq(data)
            else:
                m.d.comb += [sink[c].eq(data[c]) for c in range(channels)]
            m.d.comb += [
                b.i.payload.first.eq(source.payload.first),
                b.i.payload.last.eq(source.payload.last),
                b.i.valid.eq(source.valid),
                source.ready.eq(b.i.ready),
            ]
        return m


def _register_link(m, producer, name):
    """A register stage of one beat after ``producer`` (an output stream); its stream."""
    link = producer.signature.flip().create(path=(name,))
    full = Signal(name=f"{name}_full")
    beat = Signal.like(producer.payload, name=f"{name}_beat")
    m.d.comb += [
        producer.ready.eq(~full),
        link.valid.eq(full),
        link.payload.eq(beat),
    ]
    with m.If(producer.valid & ~full):
        m.d.sync += [beat.eq(producer.payload), full.eq(1)]
    with m.Elif(link.ready):
        m.d.sync += full.eq(0)
    return link
