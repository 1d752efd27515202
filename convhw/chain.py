"""A chain of streaming cores: one :class:`~convhw.spec.ConvSpec` per layer, each feeding the next.

:class:`ChainSpec` validates that every layer's output is the next one's input: the same
``(C, H, W)`` shape, and every value the layer can give (its ``out_range``) a pixel value of the
next layer's input format. In hardware (:class:`convhw.gateware.chain.Chain`) each core's
output stream feeds the next core's input stream through a width adapter (the signed output
values taken into the next layer's input format, which holds them all).

A chain shows the attributes of a single layer spec that the simulation harness, the compiled
backend and the exporter read (``input_shape``, ``in_bits``, ``out_bits``, ``out_shape``,
``latency``, ...), so it runs and exports like one core. Its timing:

- ``cycles_per_frame``: cycles per inference when inferences stream back to back, without
  stalls: the interval of the bottleneck layer, ``positions_per_frame + (fold-1)*OH*OW``.
- ``latency``: the sum of the layers' latencies (each from a position's issue to its output)
  and of the registered links (``registered_links``, one cycle each).
- ``multipliers``: the sum of the layers' ``pe * simd``.
"""

import numpy as np

from .spec import ConvSpec

__all__ = ["ChainSpec", "layer_interval"]


def layer_interval(spec):
    """Cycles one frame takes in layer ``spec`` when it never waits: one per position, and
    ``fold`` for each position that completes an output (:attr:`ConvSpec.frame_interval`)."""
    return spec.frame_interval


def _describe(index, spec):
    kind = "max-pool" if spec.operation == "max-pool" else "conv"
    return f"layer {index} ({kind} {spec.input_shape} -> {spec.output_shape})"


class ChainSpec:
    """Layers as streaming cores in a row, each layer's output the next one's input.

    Parameters
    ----------
    specs : sequence of ConvSpec
        Layer specs (``is_layer``: frames ``(C, H, W)``) with compile-time weights, in order.
    names : sequence of str, optional
        A name per layer (for reports).
    link_registers : bool
        Whether links may get a register stage (:attr:`registered_links`); a design clocked
        far below the chain's Fmax (a board's 12 or 25 MHz) saves their flip-flops.
    small_queues_in_block_ram : bool
        Output queues of one or two wide results in block RAM rather than registers
        (:class:`~convhw.gateware.core_io.OutputQueue`): for a design whose logic cells are
        scarce and whose clock is slow (a block RAM's output is slow).

    Raises
    ------
    TypeError, ValueError
        With one line naming the layer and what does not fit.
    """

    #: The harness reads these as it does a single core's.
    runtime_coeffs = False
    is_layer = True
    fold = 1
    coefficient_count = 0
    taps = 0
    coeff_bits = 1

    def __init__(self, specs, names=None, *, link_registers=True,
                 small_queues_in_block_ram=False):
        try:
            specs = tuple(specs)
        except TypeError:
            raise TypeError(f"'specs' must be a sequence of ConvSpec, not {specs!r}") from None
        if not specs:
            raise ValueError("'specs' must hold at least one layer, not an empty sequence")
        for index, spec in enumerate(specs):
            if not isinstance(spec, ConvSpec):
                raise TypeError(f"'specs'[{index}] must be a ConvSpec, not {spec!r}")
            if not spec.is_layer:
                raise ValueError(f"'specs'[{index}] must be a layer (give 'in_channels' or "
                                 f"'weights'), not a single-channel filter: {spec!r}")
            if spec.runtime_coeffs:
                raise ValueError(f"'specs'[{index}] has runtime weights; a chain takes "
                                 f"compile-time weights only")
        for index, (a, b) in enumerate(zip(specs, specs[1:])):
            if tuple(a.output_shape) != tuple(b.input_shape):
                raise ValueError(f"{_describe(index, a)} gives {a.output_shape} but "
                                 f"{_describe(index + 1, b)} takes {b.input_shape}")
            lo, hi = a.out_range
            plo, phi = b.pixel_range
            if lo < plo or hi > phi:
                fmt = f"{b.in_bits}-bit {'signed' if b.in_signed else 'unsigned'}"
                raise ValueError(f"{_describe(index, a)} gives values {lo}..{hi}, outside "
                                 f"{_describe(index + 1, b)}'s {fmt} input ({plo}..{phi})")
        if names is None:
            names = [f"layer{index}" for index in range(len(specs))]
        names = tuple(str(n) for n in names)
        if len(names) != len(specs):
            raise ValueError(f"'names' must give one name per layer ({len(specs)}), "
                             f"not {len(names)}")
        self._specs, self._names = specs, names
        self._link_registers = bool(link_registers)
        self._small_queues_in_block_ram = bool(small_queues_in_block_ram)

    # --- the layers -------------------------------------------------------------------------

    specs = property(lambda self: self._specs, doc="The layer specs, in order.")
    names = property(lambda self: self._names)
    small_queues_in_block_ram = property(lambda self: self._small_queues_in_block_ram)

    def __len__(self):
        return len(self._specs)

    def __iter__(self):
        return iter(self._specs)

    def __getitem__(self, index):
        return self._specs[index]

    # --- what the harness and the exporter read ------------------------------------------------

    first = property(lambda self: self._specs[0])
    last = property(lambda self: self._specs[-1])
    width = property(lambda self: self.first.width)
    height = property(lambda self: self.first.height)
    in_bits = property(lambda self: self.first.in_bits)
    in_signed = property(lambda self: self.first.in_signed)
    in_channels = property(lambda self: self.first.in_channels)
    pixel_range = property(lambda self: self.first.pixel_range)
    frame_shape = property(lambda self: self.first.frame_shape)
    input_shape = property(lambda self: self.first.input_shape)
    out_bits = property(lambda self: self.last.out_bits)
    out_channels = property(lambda self: self.last.out_channels)
    out_shape = property(lambda self: self.last.out_shape)
    output_shape = property(lambda self: self.last.output_shape)
    out_range = property(lambda self: self.last.out_range)

    @property
    def intervals(self):
        """Per layer: cycles per frame when it never waits (:func:`layer_interval`)."""
        return tuple(layer_interval(spec) for spec in self._specs)

    @property
    def bottleneck(self):
        """Index of the layer with the longest interval (the first of equals)."""
        intervals = self.intervals
        return intervals.index(max(intervals))

    @property
    def cycles_per_frame(self):
        """Cycles per inference, inferences back to back without stalls: the bottleneck's."""
        return max(self.intervals)

    @property
    def positions_per_frame(self):
        """For the harness's cycle budget: the layers' intervals summed, more than one
        inference takes through the chain even when each layer waits for the whole of the
        previous layer's frame."""
        return sum(self.intervals)

    @property
    def registered_links(self):
        """Per link (after each layer but the last): whether a register stage carries it.

        A registered link holds one beat: the producer sees ``ready`` from a flip-flop and the
        consumer ``valid``, ``first`` and the data from flip-flops, so no logic path runs from
        one core's issue decision into the other's queue (the handshake was the UP5K critical
        path of the digits chain). It passes a beat every other cycle, so it carries only
        links with at most half as many beats per frame as the bottleneck's cycles: the
        pipeline keeps its rate. All false without ``link_registers``."""
        return tuple(self._link_registers
                     and 2 * spec.out_shape[0] * spec.out_beats <= self.cycles_per_frame
                     for spec in self._specs[:-1])

    @property
    def latency(self):
        """The sum of the layers' latencies and of the registered links'."""
        return sum(spec.latency for spec in self._specs) + sum(self.registered_links)

    @property
    def multipliers(self):
        """Products per cycle of the folded layers, ``pe * simd`` summed over the layers."""
        return sum(spec.multipliers for spec in self._specs)

    def replace(self, index, **changes):
        """A new chain with layer ``index``'s spec changed (``ConvSpec.replace``)."""
        specs = list(self._specs)
        specs[index] = specs[index].replace(**changes)
        return ChainSpec(specs, self._names, link_registers=self._link_registers,
                         small_queues_in_block_ram=self._small_queues_in_block_ram)

    def _key(self):
        return tuple(spec._key() for spec in self._specs) + (
            self._link_registers, self._small_queues_in_block_ram)

    def __eq__(self, other):
        return isinstance(other, ChainSpec) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def to_dict(self):
        """Plain values: the chain's numbers and each layer's (for headers and JSON)."""
        layers = []
        for name, spec, interval in zip(self._names, self._specs, self.intervals):
            facts = spec.to_dict()
            facts.pop("kernel", None)
            layers.append({"name": name, "operation": spec.operation,
                           "input_shape": list(spec.input_shape),
                           "output_shape": list(spec.output_shape),
                           "interval": interval, **facts})
        return {"input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
                "in_bits": self.in_bits, "in_signed": self.in_signed, "out_bits": self.out_bits,
                "cycles_per_frame": self.cycles_per_frame, "latency": self.latency,
                "multipliers": self.multipliers, "bottleneck": self.bottleneck,
                "layers": layers}

    def run(self, frame):
        """The golden output of one input frame ``(C, H, W)``: each layer's
        :func:`convhw.golden.run_spec` in turn."""
        from .golden import run_spec
        value = np.asarray(frame)
        for spec in self._specs:
            value = run_spec(spec, value)
        return value

    def __repr__(self):
        return (f"ChainSpec({len(self._specs)} layers, {self.input_shape} -> "
                f"{self.output_shape}, {self.cycles_per_frame} cycles per frame)")
