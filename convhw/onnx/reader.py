"""Read a quantized ONNX model into a :class:`~convhw.onnx.layers.Network`.

Two formats, as ``onnxruntime.quantization.quantize_static`` writes them:

- **QDQ**: float ops between DequantizeLinear and QuantizeLinear nodes. Conv, Gemm and MatMul
  take their weights from a DequantizeLinear of an int8/uint8 initializer (per tensor or per
  output channel) and their bias from a DequantizeLinear of an int32 initializer.
- **QOperator**: QLinearConv, QLinearMatMul, ``com.microsoft`` QGemm, QLinearAveragePool and
  QLinearGlobalAveragePool on the codes themselves.

The graph must be one chain: input -> QuantizeLinear -> layers -> (DequantizeLinear) -> output,
every tensor read by one node. Relu and Clip between a DequantizeLinear and a QuantizeLinear
with the same parameters become a clamp of the layer before; a Relu that the quantizer removed
is already the output type's saturation. Flatten and Reshape to ``(batch, C*H*W)`` before a
dense layer cost nothing: the dense layer's kernel covers the whole map.

Anything else raises :class:`~convhw.onnx.errors.UnsupportedModelError` with one line naming
the node, its op and what is supported. Nothing is approximated.
"""

import numpy as np

from .errors import UnsupportedModelError, node_label
from .layers import AveragePoolLayer, ConvLayer, MaxPoolLayer, Network
from .multiplier import multiplier
from .quantization import DTYPES, Quantization, quantize_linear

__all__ = ["read_model", "SUPPORTED_OPS"]

MS_DOMAIN = "com.microsoft"

#: Ops a model may contain (QGemm, QLinearAveragePool, QLinearGlobalAveragePool in
#: ``com.microsoft``).
SUPPORTED_OPS = ("QuantizeLinear", "DequantizeLinear", "Conv", "Gemm", "MatMul", "Relu", "Clip",
                 "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape",
                 "QLinearConv", "QLinearMatMul", "QGemm", "QLinearAveragePool",
                 "QLinearGlobalAveragePool", "Constant")

_LAYER_OPS = ("Conv", "Gemm", "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool")
_ACTIVATIONS = ("Relu", "Clip")
_SHAPE_OPS = ("Flatten", "Reshape")
_QOPERATORS = ("QLinearConv", "QLinearMatMul", "QGemm", "QLinearAveragePool",
               "QLinearGlobalAveragePool")
_ONNX_DTYPES = {2: "uint8", 3: "int8"}


def read_model(model):
    """The integer :class:`~convhw.onnx.layers.Network` of a quantized ONNX model.

    Parameters
    ----------
    model : str, os.PathLike or onnx.ModelProto

    Raises
    ------
    UnsupportedModelError
        For any construct convhw cannot reproduce exactly.
    """
    import onnx

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    return _Reader(model).read()


def _attributes(node):
    import onnx.helper

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _decode(value):
    return value.decode() if isinstance(value, bytes) else value


class _Reader:
    def __init__(self, model):
        from onnx import numpy_helper

        graph = model.graph
        self.graph = graph
        self.constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.used = set()          # nodes read as part of the chain or as parameters
        for node in graph.node:
            if node.op_type == "Constant":
                attrs = _attributes(node)
                if "value" not in attrs:
                    raise UnsupportedModelError.at(node, "only a 'value' tensor is supported")
                self.constants[node.output[0]] = numpy_helper.to_array(attrs["value"])
                self.used.add(id(node))
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers = {}
        for node in graph.node:
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(node)
        for node in graph.node:
            known = node.op_type in SUPPORTED_OPS and (
                node.domain in ("", "ai.onnx") or
                (node.domain == MS_DOMAIN and node.op_type in _QOPERATORS))
            if not known:
                domain = f"{node.domain}." if node.domain not in ("", "ai.onnx") else ""
                raise UnsupportedModelError(
                    f"node {node_label(node)} ({domain}{node.op_type}): op not supported; "
                    f"supported: {', '.join(SUPPORTED_OPS)}")

    # --- tensors ----------------------------------------------------------------------------

    def constant(self, node, name, what):
        if name not in self.constants:
            raise UnsupportedModelError.at(
                node, f"{what} {name!r} must be a constant (an initializer), not computed")
        producer = self.producer.get(name)
        if producer is not None:
            self.used.add(id(producer))
        return self.constants[name]

    def quantization(self, node, scale_name, zero_name, what):
        """Per-tensor quantization from a scale and an optional zero point."""
        scale = np.asarray(self.constant(node, scale_name, f"{what} scale"))
        if zero_name:
            zero = np.asarray(self.constant(node, zero_name, f"{what} zero point"))
            dtype = zero.dtype.name
        else:
            zero, dtype = np.zeros(1, np.uint8), "uint8"
        if dtype not in DTYPES:
            raise UnsupportedModelError.at(node, f"{what} type {dtype} is not supported; "
                                                 f"supported: int8, uint8")
        if scale.size != 1 or zero.size != 1:
            raise UnsupportedModelError.at(
                node, f"{what} is quantized per channel (scale shape {scale.shape}); "
                      f"activations must be quantized per tensor")
        if scale.dtype != np.float32:
            raise UnsupportedModelError.at(node, f"{what} scale is {scale.dtype}; supported: "
                                                 f"float32")
        try:
            return Quantization(float(scale.ravel()[0]), int(zero.ravel()[0]), dtype)
        except ValueError as error:
            raise UnsupportedModelError.at(node, f"{what} {error}") from None

    def only_consumer(self, name):
        """The one node reading ``name``; ``None`` when ``name`` is the graph output."""
        consumers = self.consumers.get(name, [])
        is_output = any(o.name == name for o in self.graph.output)
        if len(consumers) + is_output > 1:
            readers = [node_label(n) for n in consumers] + (["the graph output"] * is_output)
            raise UnsupportedModelError(
                f"tensor {name!r} is read by {len(readers)} nodes/outputs ({', '.join(readers)}); "
                f"convhw supports a single chain of layers")
        if not consumers and not is_output:
            raise UnsupportedModelError(f"tensor {name!r} is read by nothing and is not the "
                                        f"graph output")
        return consumers[0] if consumers else None

    def check_qdq_attributes(self, node):
        attrs = _attributes(node)
        if attrs.get("block_size", 0):
            raise UnsupportedModelError.at(node, f"'block_size'={attrs['block_size']} is not "
                                                 f"supported; supported: 0 (per tensor/channel)")
        if attrs.get("saturate", 1) != 1:
            raise UnsupportedModelError.at(node, "'saturate'=0 is not supported; supported: 1")
        return attrs

    # --- the chain --------------------------------------------------------------------------

    def read(self):
        graph = self.graph
        inputs = [i for i in graph.input if i.name not in self.constants]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise UnsupportedModelError(
                f"the graph has {len(inputs)} inputs and {len(graph.output)} outputs; "
                f"supported: one input and one output")
        graph_input = inputs[0]
        self.input_shape = self.input_dims(graph_input)
        self.output_name = graph.output[0].name

        first = self.only_consumer(graph_input.name)
        if first is None or first.op_type != "QuantizeLinear":
            op = "nothing" if first is None else f"{node_label(first)} ({first.op_type})"
            raise UnsupportedModelError(
                f"input {graph_input.name!r} is read by {op}; supported: a float input read "
                f"by a QuantizeLinear")
        self.check_qdq_attributes(first)
        self.used.add(id(first))
        self.input_quant = self.quantization(first, first.input[1], _at(first.input, 2), "input")

        self.layers = []
        self.shape = self.input_shape          # (C, H, W), or (K,) once flattened
        self.quant = self.input_quant
        tensor, dequantized = first.output[0], False
        while True:
            node = self.only_consumer(tensor)
            if node is None:
                break
            self.used.add(id(node))
            if dequantized:
                tensor, dequantized = self.float_node(node)
            else:
                tensor, dequantized = self.code_node(node)
        for node in graph.node:
            if id(node) not in self.used:
                raise UnsupportedModelError.at(
                    node, "is not on the single chain from the input to the output (branches "
                          "and side computations are not supported)")
        return Network(input_name=graph_input.name, output_name=self.output_name,
                       input_shape=self.input_shape, output_shape=tuple(self.shape),
                       input=self.input_quant, layers=tuple(self.layers),
                       output_dequantized=dequantized)

    def input_dims(self, value_info):
        tensor_type = value_info.type.tensor_type
        if tensor_type.elem_type != 1:
            raise UnsupportedModelError(f"input {value_info.name!r} has element type "
                                        f"{tensor_type.elem_type}; supported: float (1)")
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in tensor_type.shape.dim]
        if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
            raise UnsupportedModelError(
                f"input {value_info.name!r} has shape {dims}; supported: (batch, C, H, W) "
                f"with fixed C, H, W (only the batch may be symbolic)")
        return tuple(dims[1:])

    def code_node(self, node):
        """A node reading codes of ``self.quant``."""
        op = node.op_type
        if op == "DequantizeLinear":
            self.check_qdq_attributes(node)
            self.expect_same(node, self.quantization(node, node.input[1], _at(node.input, 2),
                                                     "input"), "its input's QuantizeLinear")
            return node.output[0], True
        if op in _QOPERATORS:
            getattr(self, "q_" + op)(node)
            return node.output[0], False
        if op == "MaxPool":
            self.add_pool(node, self.quant)
            return node.output[0], False
        if op in _SHAPE_OPS:
            self.flatten(node)
            return node.output[0], False
        raise UnsupportedModelError.at(
            node, "cannot read quantized codes; supported there: DequantizeLinear, "
                  "QLinearConv, QLinearMatMul, QGemm, QLinearAveragePool, "
                  "QLinearGlobalAveragePool, MaxPool, Flatten, Reshape")

    def float_node(self, node):
        """A node reading the DequantizeLinear of ``self.quant`` codes."""
        op = node.op_type
        if op == "QuantizeLinear":
            self.check_qdq_attributes(node)
            self.expect_same(node, self.output_quant(node), "the DequantizeLinear before it "
                                                            "(a requantization)")
            return node.output[0], False
        if op in _SHAPE_OPS:
            quantize = self.quantize_after(node)
            self.expect_same(quantize, self.output_quant(quantize),
                             f"the DequantizeLinear before {op} {node_label(node)}")
            self.flatten(node)
            return quantize.output[0], False
        if op in _ACTIVATIONS:
            quantize = self.quantize_after(node)
            self.expect_same(quantize, self.output_quant(quantize),
                             f"the DequantizeLinear before {op} {node_label(node)}")
            self.activation(node)
            return quantize.output[0], False
        if op in _LAYER_OPS:
            quantize = self.quantize_after(node)
            out = self.output_quant(quantize)
            if op == "Conv":
                self.qdq_conv(node, out)
            elif op in ("Gemm", "MatMul"):
                self.qdq_dense(node, out)
            else:
                self.add_pool(node, out, qdq=True)
            return quantize.output[0], False
        raise UnsupportedModelError.at(
            node, "reads dequantized values; supported there: QuantizeLinear, Conv, Gemm, "
                  "MatMul, MaxPool, AveragePool, GlobalAveragePool, Relu, Clip, Flatten, "
                  "Reshape, or the graph output")

    def quantize_after(self, node):
        after = self.only_consumer(node.output[0])
        if after is None or after.op_type != "QuantizeLinear":
            what = "the graph output" if after is None else \
                f"{node_label(after)} ({after.op_type})"
            raise UnsupportedModelError.at(
                node, f"its float output goes to {what}, a float-only path; supported: a "
                      f"QuantizeLinear right after it")
        self.check_qdq_attributes(after)
        self.used.add(id(after))
        return after

    def output_quant(self, quantize):
        return self.quantization(quantize, quantize.input[1], _at(quantize.input, 2), "output")

    def expect_same(self, node, quant, other):
        if quant != self.quant:
            raise UnsupportedModelError.at(
                node, f"quantization (scale {quant.scale!r}, zero point {quant.zero_point}, "
                      f"{quant.dtype}) differs from {other} (scale {self.quant.scale!r}, zero "
                      f"point {self.quant.zero_point}, {self.quant.dtype}); supported: equal")

    # --- shapes and activations ---------------------------------------------------------------

    def flatten(self, node):
        size = int(np.prod(self.shape))
        if node.op_type == "Flatten":
            axis = _attributes(node).get("axis", 1)
            if axis != 1:
                raise UnsupportedModelError.at(node, f"'axis'={axis} is not supported; "
                                                     f"supported: 1")
        else:
            target = [int(v) for v in np.ravel(self.constant(node, node.input[1], "shape"))]
            if not (len(target) == 2 and target[0] in (0, -1) and target[1] in (-1, size)
                    and target != [-1, -1]):
                raise UnsupportedModelError.at(
                    node, f"shape {target} is not supported; supported: (batch, C*H*W) as "
                          f"[-1, {size}], [0, -1] or [0, {size}]")
        if len(self.shape) == 3:
            self.unflattened = self.shape
        self.shape = (size,)

    def activation(self, node):
        attrs = _attributes(node)
        lo, hi = self.quant.centred_range
        if node.op_type == "Relu":
            low, high = 0.0, None
        else:
            low = attrs.get("min", None)
            high = attrs.get("max", None)
            if len(node.input) > 1 and node.input[1]:
                low = float(np.ravel(self.constant(node, node.input[1], "min"))[0])
            if len(node.input) > 2 and node.input[2]:
                high = float(np.ravel(self.constant(node, node.input[2], "max"))[0])
        # Quantizing is monotone and maps each dequantized code back to itself, so
        # Q(clip(DQ(q), low, high)) == clip(q, Q(low), Q(high)) exactly.
        if low is not None:
            lo = max(lo, int(quantize_linear(low, self.quant)) - self.quant.zero_point)
        if high is not None:
            hi = min(hi, int(quantize_linear(high, self.quant)) - self.quant.zero_point)
        if not self.layers:
            raise UnsupportedModelError.at(node, "acts on the network input; supported: "
                                                 "Relu and Clip after a layer")
        previous = self.layers[-1]
        lo, hi = max(lo, previous.clamp[0]), min(hi, previous.clamp[1])
        if lo > hi:
            lo = hi
        self.layers[-1] = previous.with_clamp((lo, hi))

    # --- geometry ---------------------------------------------------------------------------

    def map_shape(self, node):
        if len(self.shape) != 3:
            raise UnsupportedModelError.at(node, f"needs a C x H x W map, not a flattened "
                                                 f"vector of {self.shape[0]}")
        return self.shape

    def padding(self, node, attrs, kernel, stride, dilation):
        auto_pad = _decode(attrs.get("auto_pad", "NOTSET"))
        (h, w) = self.shape[1:]
        if auto_pad == "VALID":
            return ((0, 0), (0, 0))
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            pads = []
            for size, k, s, d in zip((h, w), kernel, stride, dilation):
                out = -(-size // s)
                total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
                small = total // 2
                pads.append((small, total - small) if auto_pad == "SAME_UPPER"
                            else (total - small, small))
            return tuple(pads)
        if auto_pad != "NOTSET":
            raise UnsupportedModelError.at(node, f"'auto_pad'={auto_pad!r} is not supported; "
                                                 f"supported: NOTSET, VALID, SAME_UPPER, "
                                                 f"SAME_LOWER")
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if len(pads) != 4:
            raise UnsupportedModelError.at(node, f"'pads'={pads} is not 2-D; supported: "
                                                 f"[top, left, bottom, right]")
        return ((pads[0], pads[2]), (pads[1], pads[3]))

    def spatial(self, node, attrs, name, default):
        value = tuple(attrs.get(name, default))
        if len(value) != 2 or min(value) < 1:
            raise UnsupportedModelError.at(node, f"'{name}'={list(value)} is not supported; "
                                                 f"supported: two values >= 1 (a 2-D op)")
        return value

    # --- layers -------------------------------------------------------------------------------

    def add_conv(self, node, *, kind, weights, bias, groups, stride, padding, dilation, out,
                 w_scales):
        c, h, w = self.shape if len(self.shape) == 3 else (self.shape[0], 1, 1)
        cout, kh, kw = weights.shape[0], weights.shape[2], weights.shape[3]
        spans = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
        oh = (h + sum(padding[0]) - spans[0]) // stride[0] + 1
        ow = (w + sum(padding[1]) - spans[1]) // stride[1] + 1
        if oh < 1 or ow < 1:
            raise UnsupportedModelError.at(node, f"kernel {kh}x{kw} does not fit the "
                                                 f"{h}x{w} input with padding {padding}")
        scales = np.broadcast_to(np.asarray(w_scales, dtype=np.float32).ravel(), (cout,))
        layer = ConvLayer(
            name=node.name or node.output[0], op=node.op_type, kind=kind, in_shape=(c, h, w),
            out_shape=(cout, oh, ow), weights=weights, bias=bias, groups=groups,
            stride=stride, padding=padding, dilation=dilation, input=self.quant, output=out,
            multipliers=multiplier(self.quant.scale, scales, out.scale),
            clamp=out.centred_range)
        self.layers.append(layer)
        self.quant = out
        self.shape = layer.out_shape if kind != "dense" else (cout,)

    def conv(self, node, weights, w_scales, bias, out):
        attrs = _attributes(node)
        c, h, w = self.map_shape(node)
        groups = attrs.get("group", 1)
        if weights.ndim != 4:
            raise UnsupportedModelError.at(node, f"weights of shape {weights.shape} are not "
                                                 f"2-D; supported: (Cout, Cin/group, KH, KW)")
        if weights.shape[1] * groups != c or weights.shape[0] % groups:
            raise UnsupportedModelError.at(node, f"weights {weights.shape} with group "
                                                 f"{groups} do not fit {c} input channels")
        kernel = tuple(attrs.get("kernel_shape", weights.shape[2:]))
        if kernel != tuple(weights.shape[2:]):
            raise UnsupportedModelError.at(node, f"'kernel_shape'={list(kernel)} differs from "
                                                 f"the weights' {list(weights.shape[2:])}")
        stride = self.spatial(node, attrs, "strides", (1, 1))
        dilation = self.spatial(node, attrs, "dilations", (1, 1))
        padding = self.padding(node, attrs, kernel, stride, dilation)
        self.add_conv(node, kind="conv", weights=weights, bias=bias, groups=groups,
                      stride=stride, padding=padding, dilation=dilation, out=out,
                      w_scales=w_scales)

    def dense(self, node, weights, w_scales, bias, out):
        """``weights`` ``(Cout, K)``: the kernel that covers the flattened map."""
        if len(self.shape) != 1:
            raise UnsupportedModelError.at(
                node, f"reads a {'x'.join(map(str, self.shape))} map; supported: a Flatten or "
                      f"Reshape to (batch, C*H*W) before a dense layer")
        size = self.shape[0]
        if weights.shape[1] != size:
            raise UnsupportedModelError.at(node, f"weights {weights.shape} do not fit "
                                                 f"{size} inputs")
        source = getattr(self, "unflattened", None) or (size, 1, 1)
        self.unflattened = None
        kernel = weights.reshape(weights.shape[0], *source)
        self.shape = source
        self.add_conv(node, kind="dense", weights=kernel, bias=bias, groups=1, stride=(1, 1),
                      padding=((0, 0), (0, 0)), dilation=(1, 1), out=out, w_scales=w_scales)

    def add_pool(self, node, out, *, qdq=False):
        op = node.op_type.replace("QLinear", "")
        attrs = _attributes(node)
        c, h, w = self.map_shape(node)
        if op == "GlobalAveragePool":
            return self.global_average(node, out)
        kernel = self.spatial(node, attrs, "kernel_shape", ())
        stride = self.spatial(node, attrs, "strides", (1, 1))
        if attrs.get("ceil_mode", 0):
            raise UnsupportedModelError.at(node, "'ceil_mode'=1 is not supported; supported: 0")
        if attrs.get("channels_last", 0):
            raise UnsupportedModelError.at(node, "'channels_last'=1 is not supported; "
                                                 "supported: 0")
        if op == "MaxPool":
            dilation = self.spatial(node, attrs, "dilations", (1, 1))
            if dilation != (1, 1):
                raise UnsupportedModelError.at(node, f"'dilations'={list(dilation)} is not "
                                                     f"supported; supported: [1, 1]")
            if attrs.get("storage_order", 0):
                raise UnsupportedModelError.at(node, "'storage_order'=1 is not supported; "
                                                     "supported: 0")
            if len(node.output) > 1 and node.output[1]:
                raise UnsupportedModelError.at(node, "the Indices output is not supported")
        padding = self.padding(node, attrs, kernel, stride, (1, 1))
        oh = (h + sum(padding[0]) - kernel[0]) // stride[0] + 1
        ow = (w + sum(padding[1]) - kernel[1]) // stride[1] + 1
        if oh < 1 or ow < 1:
            raise UnsupportedModelError.at(node, f"kernel {kernel} does not fit the {h}x{w} "
                                                 f"input with padding {padding}")
        name = node.name or node.output[0]
        if op == "MaxPool":
            if out != self.quant:
                self.expect_same(node, out, "its input")
            layer = MaxPoolLayer(name=name, op=node.op_type, in_shape=(c, h, w),
                                 out_shape=(c, oh, ow), kernel=kernel, stride=stride,
                                 padding=padding, input=self.quant, output=out,
                                 clamp=out.centred_range)
        elif kernel == (h, w) and padding == ((0, 0), (0, 0)):
            # onnxruntime's QLinearAveragePool takes its global (integer) path here.
            return self.global_average(node, out)
        else:
            layer = AveragePoolLayer(name=name, op=node.op_type, in_shape=(c, h, w),
                                     out_shape=(c, oh, ow), kernel=kernel, stride=stride,
                                     padding=padding,
                                     count_include_pad=bool(attrs.get("count_include_pad", 0)),
                                     input=self.quant, output=out, clamp=out.centred_range,
                                     onnxruntime_offset=128 if qdq and out.dtype == "int8"
                                     else 0)
        self.layers.append(layer)
        self.quant = out
        self.shape = layer.out_shape

    def global_average(self, node, out):
        c, h, w = self.map_shape(node)
        size = np.float32(h * w)
        # MLAS: scale = x_scale / (y_scale * float(image_size)), all in float32.
        s = np.float32(self.quant.scale32 / np.float32(out.scale32 * size))
        weights = np.ones((c, 1, h, w), dtype=np.int64)
        self.add_conv(node, kind="global-average-pool", weights=weights,
                      bias=np.zeros(c, np.int64), groups=c, stride=(1, 1),
                      padding=((0, 0), (0, 0)), dilation=(1, 1), out=out, w_scales=1.0)
        self.layers[-1] = _with_multipliers(self.layers[-1], np.full(c, s, np.float32))

    # --- weights ------------------------------------------------------------------------------

    def weights(self, node, codes, scales, zeros, axis, out_axis):
        """Integer weights less their zero point, and the per-output-channel scales."""
        codes = np.asarray(codes)
        if codes.dtype.name not in DTYPES:
            raise UnsupportedModelError.at(node, f"weights of type {codes.dtype} are not "
                                                 f"supported; supported: int8, uint8")
        scales = np.asarray(scales)
        zeros = np.zeros(1, codes.dtype) if zeros is None else np.asarray(zeros)
        if scales.dtype != np.float32:
            raise UnsupportedModelError.at(node, f"weight scale is {scales.dtype}; "
                                                 f"supported: float32")
        cout = codes.shape[out_axis]
        if scales.size not in (1, cout) or zeros.size not in (1, scales.size):
            raise UnsupportedModelError.at(node, f"weight scale shape {scales.shape} is "
                                                 f"neither per tensor nor per output channel "
                                                 f"({cout})")
        if scales.size > 1 and axis % codes.ndim != out_axis:
            raise UnsupportedModelError.at(node, f"weights are quantized along axis {axis}; "
                                                 f"supported: per tensor or along the output "
                                                 f"channels (axis {out_axis})")
        shape = [1] * codes.ndim
        shape[out_axis] = zeros.size
        centred = codes.astype(np.int64) - zeros.astype(np.int64).reshape(shape)
        return centred, np.broadcast_to(scales.astype(np.float32).ravel(), (cout,))

    def dequantized_constant(self, node, name, what):
        """``(codes, scales, zeros, axis)`` of a DequantizeLinear of an initializer."""
        source = self.producer.get(name)
        if source is None or source.op_type != "DequantizeLinear":
            verb = "do" if what == "weights" else "does"
            raise UnsupportedModelError.at(
                node, f"{what} {name!r} {verb} not come from a DequantizeLinear of a quantized "
                      f"initializer (float {what}: a float-only path)")
        self.used.add(id(source))
        attrs = self.check_qdq_attributes(source)
        codes = self.constant(source, source.input[0], what)
        scales = self.constant(source, source.input[1], f"{what} scale")
        zeros = self.constant(source, source.input[2], f"{what} zero point") \
            if _at(source.input, 2) else None
        return codes, scales, zeros, attrs.get("axis", 1)

    def bias(self, node, codes, cout):
        if codes is None:
            return np.zeros(cout, np.int64)
        codes = np.asarray(codes)
        if codes.dtype != np.int32 or codes.size != cout:
            raise UnsupportedModelError.at(node, f"bias of type {codes.dtype} and shape "
                                                 f"{codes.shape} is not supported; supported: "
                                                 f"{cout} int32 values")
        return codes.astype(np.int64).ravel()

    def qdq_bias(self, node, name, cout):
        if not name:
            return self.bias(node, None, cout)
        codes, _, zeros, _ = self.dequantized_constant(node, name, "bias")
        if zeros is not None and np.any(zeros):
            raise UnsupportedModelError.at(node, "bias zero point is not 0; supported: 0")
        return self.bias(node, codes, cout)

    def qdq_conv(self, node, out):
        codes, scales, zeros, axis = self.dequantized_constant(node, node.input[1], "weights")
        weights, w_scales = self.weights(node, codes, scales, zeros, axis, 0)
        bias = self.qdq_bias(node, _at(node.input, 2), weights.shape[0])
        self.conv(node, weights, w_scales, bias, out)

    def dense_weights(self, node, codes, scales, zeros, axis, trans_b):
        codes = np.asarray(codes)
        if codes.ndim != 2:
            raise UnsupportedModelError.at(node, f"weights of shape {codes.shape} are not "
                                                 f"2-D (K, N)")
        out_axis = 0 if trans_b else 1
        weights, w_scales = self.weights(node, codes, scales, zeros, axis, out_axis)
        return (weights if trans_b else weights.T), w_scales

    def gemm_attributes(self, node):
        attrs = _attributes(node)
        for name, allowed in (("alpha", 1.0), ("beta", 1.0), ("transA", 0)):
            if attrs.get(name, allowed) != allowed:
                raise UnsupportedModelError.at(node, f"'{name}'={attrs[name]} is not "
                                                     f"supported; supported: {allowed}")
        return attrs

    def qdq_dense(self, node, out):
        trans_b = self.gemm_attributes(node).get("transB", 0) if node.op_type == "Gemm" else 0
        codes, scales, zeros, axis = self.dequantized_constant(node, node.input[1], "weights")
        weights, w_scales = self.dense_weights(node, codes, scales, zeros, axis, trans_b)
        bias = self.qdq_bias(node, _at(node.input, 2), weights.shape[0]) \
            if node.op_type == "Gemm" else self.bias(node, None, weights.shape[0])
        self.dense(node, weights, w_scales, bias, out)

    # --- QOperator ----------------------------------------------------------------------------

    def q_input(self, node, scale_index):
        self.expect_same(node, self.quantization(node, node.input[scale_index],
                                                 node.input[scale_index + 1], "input"),
                         "its input's quantization")

    def q_QLinearConv(self, node):
        self.q_input(node, 1)
        codes = self.constant(node, node.input[3], "weights")
        scales = self.constant(node, node.input[4], "weight scale")
        zeros = self.constant(node, node.input[5], "weight zero point")
        weights, w_scales = self.weights(node, codes, scales, zeros, 0, 0)
        out = self.quantization(node, node.input[6], node.input[7], "output")
        bias = self.bias(node, self.constant(node, node.input[8], "bias")
                         if _at(node.input, 8) else None, weights.shape[0])
        self.conv(node, weights, w_scales, bias, out)

    def q_QLinearMatMul(self, node):
        self.q_input(node, 1)
        codes = self.constant(node, node.input[3], "weights")
        scales = self.constant(node, node.input[4], "weight scale")
        zeros = self.constant(node, node.input[5], "weight zero point")
        weights, w_scales = self.dense_weights(node, codes, scales, zeros, 1, False)
        out = self.quantization(node, node.input[6], node.input[7], "output")
        self.dense(node, weights, w_scales, self.bias(node, None, weights.shape[0]), out)

    def q_QGemm(self, node):
        attrs = self.gemm_attributes(node)
        self.q_input(node, 1)
        if not _at(node.input, 7):
            raise UnsupportedModelError.at(node, "has no output scale (float output); "
                                                 "supported: quantized output")
        codes = self.constant(node, node.input[3], "weights")
        scales = self.constant(node, node.input[4], "weight scale")
        zeros = self.constant(node, node.input[5], "weight zero point")
        trans_b = attrs.get("transB", 0)
        weights, w_scales = self.dense_weights(node, codes, scales, zeros,
                                               0 if trans_b else 1, trans_b)
        out = self.quantization(node, node.input[7], _at(node.input, 8), "output")
        bias = self.bias(node, self.constant(node, node.input[6], "bias")
                         if _at(node.input, 6) else None, weights.shape[0])
        self.dense(node, weights, w_scales, bias, out)

    def q_QLinearAveragePool(self, node):
        self.q_input(node, 1)
        self.add_pool(node, self.quantization(node, node.input[3], _at(node.input, 4),
                                              "output"))

    def q_QLinearGlobalAveragePool(self, node):
        if _attributes(node).get("channels_last", 0):
            raise UnsupportedModelError.at(node, "'channels_last'=1 is not supported; "
                                                 "supported: 0")
        self.q_QLinearAveragePool(node)


def _at(inputs, index):
    return inputs[index] if len(inputs) > index and inputs[index] else ""


def _with_multipliers(layer, multipliers):
    import dataclasses
    return dataclasses.replace(layer, multipliers=multipliers)
