"""The integer graph an ONNX import produces: a chain of layers on zero-point-centred codes.

Every tensor between layers holds *centred* codes ``v = q - zero_point`` of one quantized
activation. The network subtracts the input zero point once, at its input, so convolution
padding is a true zero and no layer needs an input offset. Each layer knows its input and
output shapes ``(C, H, W)`` and the quantization of both sides.

- :class:`ConvLayer`: a conv, dense or global-average-pool layer. ``acc = sum(v * w) + bias``,
  then ``clamp(rne(acc * S[c]))`` per output channel, with the float32 multiplier
  ``S = x_scale * w_scale[c] / y_scale`` (:mod:`convhw.onnx.multiplier`). :meth:`ConvLayer.spec`
  gives the :class:`~convhw.spec.ConvSpec` that builds it.
- :class:`MaxPoolLayer`: the maximum over each window (padding never wins), then the clamp.
- :class:`AveragePoolLayer`: the exact average ``clamp(rne(sum * S(n)))``, which onnxruntime
  computes in float32 (see :mod:`convhw.onnx.pooling`).

A dense layer over a ``C x H x W`` map is the convolution whose kernel covers the map; a global
average pool is the depthwise convolution with all-ones weights over the map and
``S = x_scale / (y_scale * H * W)``. Both give a ``(Cout, 1, 1)`` output.
"""

from dataclasses import dataclass, field

import numpy as np

from ..bits import signed_bits
from .multiplier import scale_and_shift
from .quantization import Quantization

__all__ = ["ConvLayer", "MaxPoolLayer", "AveragePoolLayer", "Network", "centred_bits",
           "DEFAULT_FOLDING"]


#: The folding of a conv or dense layer that :meth:`Network.chain` is given none for:
#: ``(pe, simd)``, one product per cycle. The folding balancer chooses better ones.
DEFAULT_FOLDING = (1, 1)


def centred_bits(lo, hi):
    """``(bits, signed)``: the narrowest integer format holding ``[lo, hi]``."""
    if lo >= 0:
        return max(int(hi).bit_length(), 1), False
    return signed_bits(lo, hi), True


def _out_size(size, pads, span, stride):
    return (size + pads[0] + pads[1] - span) // stride + 1


@dataclass(frozen=True, eq=False)
class ConvLayer:
    """A quantized convolution on centred codes (conv, dense or global average pool).

    Members
    -------
    name, op : str
        The ONNX node's name and op type.
    kind : "conv", "dense" or "global-average-pool"
    in_shape, out_shape : (int, int, int)
        ``(C, H, W)``.
    weights : numpy.ndarray of int64
        ``(Cout, Cin/groups, KH, KW)``, the weight zero point subtracted.
    bias : numpy.ndarray of int64
        ``(Cout,)``, the int32 bias.
    groups : int
    stride, dilation : (int, int)
    padding : ((int, int), (int, int))
        ``((top, bottom), (left, right))`` zeros.
    input, output : Quantization
    multipliers : numpy.ndarray of float32
        ``S`` per output channel, as onnxruntime computes it.
    clamp : (int, int)
        Bounds of the centred output: the output type's range less its zero point, narrowed by
        any ReLU or Clip that follows.
    """

    name: str
    op: str
    kind: str
    in_shape: tuple
    out_shape: tuple
    weights: np.ndarray = field(repr=False)
    bias: np.ndarray = field(repr=False)
    groups: int
    stride: tuple
    padding: tuple
    dilation: tuple
    input: Quantization
    output: Quantization
    multipliers: np.ndarray = field(repr=False)
    clamp: tuple

    @property
    def in_channels(self):
        return self.in_shape[0]

    @property
    def out_channels(self):
        return self.out_shape[0]

    @property
    def kernel_shape(self):
        return tuple(self.weights.shape[2:])

    @property
    def macs(self):
        """Multiply-accumulates per inference: ``Cout * OH * OW * Cin/groups * KH * KW``."""
        cout, oh, ow = self.out_shape
        return cout * oh * ow * int(np.prod(self.weights.shape[1:]))

    @property
    def scales(self):
        """Integer ``scale`` per channel: ``S == scale * 2**-shift`` exactly."""
        return scale_and_shift(self.multipliers)[0]

    @property
    def shifts(self):
        return scale_and_shift(self.multipliers)[1]

    @property
    def in_format(self):
        """``(bits, signed)`` of the centred input codes."""
        return centred_bits(*self.input.centred_range)

    @property
    def out_bits(self):
        """Signed width that holds every centred output."""
        return signed_bits(*self.clamp)

    def with_clamp(self, clamp):
        return _replace(self, clamp=clamp)

    def to_dict(self):
        """Plain values describing the layer (for reports and JSON)."""
        return {**_common(self), "kernel_shape": list(self.kernel_shape),
                "groups": self.groups, "stride": list(self.stride),
                "padding": [list(p) for p in self.padding], "dilation": list(self.dilation),
                "weights": int(self.weights.size), "macs": self.macs,
                "scale": list(self.scales), "shift": list(self.shifts)}

    def spec(self, *, pe=None, simd=None, **changes):
        """The :class:`~convhw.spec.ConvSpec` of this layer over its ``in_shape`` frame.

        Parameters
        ----------
        pe, simd : int, optional
            Folding.
        **changes
            Any other ``ConvSpec`` argument to override.

        """
        from ..spec import ConvSpec

        (top, bottom), (left, right) = self.padding
        bits, signed = self.in_format
        args = dict(width=self.in_shape[2], height=self.in_shape[1],
                    weights=self.weights.tolist(), groups=self.groups,
                    bias=[int(b) for b in self.bias], stride=self.stride,
                    padding=((top, bottom), (left, right)),
                    dilation=self.dilation, in_bits=bits, in_signed=signed,
                    scale=list(self.scales), shift=list(self.shifts), rounding="half-even",
                    out_bits=self.out_bits, clamp=self.clamp, pe=pe, simd=simd)
        args.update(changes)
        return ConvSpec(**args)


@dataclass(frozen=True, eq=False)
class MaxPoolLayer:
    """Maximum over ``kernel`` windows of centred codes; padding cells never win.

    Members
    -------
    name, op : str
    in_shape, out_shape : (int, int, int)
    kernel, stride : (int, int)
    padding : ((int, int), (int, int))
    input, output : Quantization
        Equal: a max pool does not requantize.
    clamp : (int, int)
    """

    name: str
    op: str
    in_shape: tuple
    out_shape: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    input: Quantization
    output: Quantization
    clamp: tuple

    kind = "max-pool"

    def with_clamp(self, clamp):
        return _replace(self, clamp=clamp)

    @property
    def in_format(self):
        """``(bits, signed)`` of the centred input codes."""
        return centred_bits(*self.input.centred_range)

    @property
    def out_bits(self):
        return signed_bits(*self.clamp)

    def spec(self, **changes):
        """The max-pool :class:`~convhw.spec.ConvSpec` of this layer over its ``in_shape``."""
        from ..spec import ConvSpec

        bits, signed = self.in_format
        args = dict(width=self.in_shape[2], height=self.in_shape[1], operation="max-pool",
                    kernel_shape=self.kernel, in_channels=self.in_shape[0], stride=self.stride,
                    padding=tuple(tuple(p) for p in self.padding), in_bits=bits,
                    in_signed=signed, out_bits=self.out_bits, clamp=self.clamp)
        args.update(changes)
        return ConvSpec(**args)

    def to_dict(self):
        """Plain values describing the layer (for reports and JSON)."""
        return {**_common(self), "kernel_shape": list(self.kernel), "stride": list(self.stride),
                "padding": [list(p) for p in self.padding]}


@dataclass(frozen=True, eq=False)
class AveragePoolLayer:
    """Average over ``kernel`` windows, requantized, as onnxruntime's QLinearAveragePool.

    Members
    -------
    name, op : str
    in_shape, out_shape : (int, int, int)
    kernel, stride : (int, int)
    padding : ((int, int), (int, int))
    count_include_pad : bool
        Divide by the kernel size everywhere, or by the cells inside the frame.
    input, output : Quantization
    clamp : (int, int)
    onnxruntime_offset : int
        128 when onnxruntime runs this pool on int8 codes moved to uint8 (its QDQ S8-to-U8
        transformation of an int8 DequantizeLinear -> AveragePool -> QuantizeLinear), else 0.
        The float32 sum ``avg / y_scale + y_zero_point`` then adds ``y_zero_point + 128``,
        which rounds differently near ties.
    """

    name: str
    op: str
    in_shape: tuple
    out_shape: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    count_include_pad: bool
    input: Quantization
    output: Quantization
    clamp: tuple
    onnxruntime_offset: int = 0

    kind = "average-pool"

    def with_clamp(self, clamp):
        return _replace(self, clamp=clamp)

    @property
    def in_format(self):
        """``(bits, signed)`` of the centred input codes."""
        return centred_bits(*self.input.centred_range)

    @property
    def out_bits(self):
        return signed_bits(*self.clamp)

    @property
    def has_padding(self):
        return any(p for pads in self.padding for p in pads)

    def spec(self, **changes):
        """The :class:`~convhw.spec.ConvSpec` of this pool: a depthwise convolution with
        all-ones weights, requantized by ``S(KH*KW)`` (:func:`convhw.onnx.pooling.
        average_multiplier`), or with ``count_include_pad=0`` and padding by ``S(n)`` for a
        window of ``n`` in-frame cells (``window_scales``): it computes
        :func:`convhw.onnx.pooling.exact_average_pool`."""
        from ..spec import ConvSpec
        from .pooling import average_multiplier

        channels = self.in_shape[0]
        kh, kw = self.kernel
        bits, signed = self.in_format
        args = dict(width=self.in_shape[2], height=self.in_shape[1],
                    weights=np.ones((channels, 1, kh, kw), np.int64).tolist(), groups=channels,
                    stride=self.stride, padding=tuple(tuple(p) for p in self.padding),
                    in_bits=bits, in_signed=signed, rounding="half-even",
                    out_bits=self.out_bits, clamp=self.clamp)
        if not self.count_include_pad and self.has_padding:
            # A divisor per window: its in-frame cells.
            windows = {}
            for cells in range(1, kh * kw + 1):
                (scale,), (shift,) = scale_and_shift([average_multiplier(self, cells)])
                windows[cells] = (scale, shift)
            args.update(window_scales=windows, separable=False)
        else:
            scales, shifts = scale_and_shift(
                np.full(channels, average_multiplier(self, kh * kw), np.float32))
            args.update(scale=list(scales), shift=list(shifts))
        args.update(changes)
        return ConvSpec(**args)

    def to_dict(self):
        """Plain values describing the layer (for reports and JSON)."""
        return {**_common(self), "kernel_shape": list(self.kernel), "stride": list(self.stride),
                "padding": [list(p) for p in self.padding],
                "count_include_pad": self.count_include_pad}


def _quantization_dict(quant):
    return {"scale": quant.scale, "zero_point": quant.zero_point, "dtype": quant.dtype}


def _common(layer):
    return {"name": layer.name, "op": layer.op, "kind": layer.kind,
            "in_shape": list(layer.in_shape), "out_shape": list(layer.out_shape),
            "input": _quantization_dict(layer.input), "output": _quantization_dict(layer.output),
            "clamp": list(layer.clamp)}


def _replace(layer, **changes):
    import dataclasses
    return dataclasses.replace(layer, **changes)


@dataclass(frozen=True, eq=False)
class Network:
    """A quantized ONNX model as a chain of integer layers.

    Members
    -------
    input_name, output_name : str
        The ONNX graph's input and output.
    input_shape : (int, int, int)
        ``(C, H, W)`` of one inference (the batch dimension is free).
    output_shape : tuple of int
        One inference's ONNX output shape, without the batch: ``(C, H, W)``, or ``(K,)``
        after a dense layer or a Flatten.
    input : Quantization
        The input QuantizeLinear.
    layers : tuple
        :class:`ConvLayer`, :class:`MaxPoolLayer` and :class:`AveragePoolLayer`, in order.
    output_dequantized : bool
        Whether the graph ends in a DequantizeLinear (float outputs) or in codes.
    """

    input_name: str
    output_name: str
    input_shape: tuple
    output_shape: tuple
    input: Quantization
    layers: tuple
    output_dequantized: bool

    @property
    def output(self):
        """Quantization of the last layer's output (the input's when there is no layer)."""
        return self.layers[-1].output if self.layers else self.input

    def specs(self, **folding):
        """The :class:`~convhw.spec.ConvSpec` of every conv and dense layer, in order."""
        return [layer.spec(**folding) for layer in self.layers if isinstance(layer, ConvLayer)]

    def chain(self, foldings=None, *, link_registers=True, small_queues_in_block_ram=False):
        """The :class:`~convhw.chain.ChainSpec` of the whole network: one core per layer.

        Parameters
        ----------
        foldings : sequence, optional
            One entry per layer: ``(pe, simd)`` for a conv or dense layer (or an average pool,
            a depthwise convolution), or ``None`` for the layer's default
            (:data:`DEFAULT_FOLDING` for convs; an average pool unfolded; max pools never
            fold).
        link_registers, small_queues_in_block_ram : bool
            :class:`~convhw.chain.ChainSpec`'s: whether links may get a register stage, and
            whether small output queues of wide results go into block RAM.

        Raises
        ------
        ValueError
            A folding that does not fit its layer, or a layer the hardware cannot build.
        """
        from ..chain import ChainSpec

        if not self.layers:
            raise ValueError("the network has no layer to build")
        if foldings is None:
            foldings = [None] * len(self.layers)
        foldings = list(foldings)
        if len(foldings) != len(self.layers):
            raise ValueError(f"'foldings' must give one (pe, simd) or None per layer "
                             f"({len(self.layers)}), not {len(foldings)}")
        specs = []
        for index, (layer, folding) in enumerate(zip(self.layers, foldings)):
            try:
                if isinstance(layer, ConvLayer):
                    pe, simd = DEFAULT_FOLDING if folding is None else folding
                    specs.append(layer.spec(pe=pe, simd=simd))
                elif isinstance(layer, AveragePoolLayer) and folding is not None:
                    pe, simd = folding
                    specs.append(layer.spec(pe=pe, simd=simd))
                elif folding is not None:
                    raise ValueError(f"a {layer.kind} layer takes no folding, not {folding!r}")
                else:
                    specs.append(layer.spec())
            except (TypeError, ValueError) as error:
                raise ValueError(f"layer {index} {layer.name!r} ({layer.op}): {error}") from None
        return ChainSpec(specs, [layer.name for layer in self.layers],
                         link_registers=link_registers,
                         small_queues_in_block_ram=small_queues_in_block_ram)

    def to_dict(self):
        """Plain values describing the network and each layer (for reports and JSON)."""
        return {"input_name": self.input_name, "output_name": self.output_name,
                "input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
                "input": _quantization_dict(self.input),
                "output_dequantized": self.output_dequantized,
                "layers": [layer.to_dict() for layer in self.layers]}

    def describe(self):
        """One line per layer: kind, shapes and numbers (for reports)."""
        lines = [f"input {self.input_name!r} {self.input_shape} {self.input.dtype} "
                 f"scale={self.input.scale!r} zero_point={self.input.zero_point}"]
        for layer in self.layers:
            lines.append(f"{layer.kind:<20} {layer.name!r:<24} {layer.in_shape} -> "
                         f"{layer.out_shape} clamp={layer.clamp}")
        return "\n".join(lines)
