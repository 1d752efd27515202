"""One validated, immutable description of a 2-D convolution accelerator or CNN layer.

:class:`ConvSpec` is the single source of truth for every derived number: the output shape, the
accumulator and output widths, the streaming schedule, the folding and the pipeline latency. The
golden model, the gateware, the exporters and the CLI all read these values from the spec.

Channels
--------
A spec computes ``out_channels`` outputs per position from ``in_channels`` inputs. The weights
have PyTorch's layout ``(Cout, Cin/groups, KH, KW)``: output channel ``co`` belongs to group
``g = co // (Cout/groups)`` and correlates input channels ``g*Cin/groups ...`` with its weights.
A single 2-D ``kernel`` is the one-channel case (today's image filter); with ``in_channels=C`` it
is applied to each of C channels (depthwise, like ``cv2.filter2D`` on a colour image).

Arithmetic
----------
The accumulator range is exact. For a weight ``c`` and pixels in ``[xlo, xhi]`` the product lies
in ``[min(c*xlo, c*xhi), max(c*xlo, c*xhi)]``. This interval always contains 0 and ``c*V`` for a
constant border ``V`` (which must be a pixel value), what a padding tap contributes; other border
modes repeat pixels. A channel's accumulator range is the sum of those intervals over its
weights, and ``acc_bits`` is the smallest two's-complement width that holds every channel's. With
runtime coefficients every weight may hold any ``coeff_bits`` value, so each interval spans the
four corner products ``{clo, chi} x {xlo, xhi}``. Bias, ReLU, scaling, rounding and saturation
follow, per channel (:mod:`convhw.requant`).

Folding
-------
``pe`` output channels are computed in parallel, each from ``simd`` products per cycle over the
``KH*KW*Cin/groups`` inputs of one output value. A position that completes an output takes
``fold = ceil(Cout/pe) * ceil(KH*KW*Cin/groups / simd)`` cycles; a position that completes none
takes one. The default, ``pe = Cout`` and ``simd`` = all inputs, is one position per clock.
A folded dense layer (the kernel covers the frame) is built in the accumulating form instead
(:attr:`ConvSpec.accumulates_positions`): every position takes ``ceil(Cout/pe) *
ceil(Cin/simd)`` cycles.

Schedule
--------
The hardware walks a stream of *positions* in rows of ``stream_width``; a frame is
``positions_per_frame`` of them. A position with row ``< height`` and column ``< width`` consumes
one input pixel (all its channels); the others (bottom padding rows, and the right end of rows
when padding makes output rows longer than input rows) consume nothing. Output ``(oy, ox)`` is
computed at position ``(oy*sy + row_offset) * stream_width + ox*sx + col_offset`` and leaves the
core ``latency`` cycles after that position's issue. Left and right padding overlaps the
neighbouring rows, so it costs no cycles.
"""

import copy
import math

import numpy as np

from .bits import is_int as _is_int, pair, signed_bits, validate_int
from .border import AxisBorder, check_border_padding, validate_border
from .requant import OutputStage
from .separable import DSP_OPERAND_BITS, LOW_BIT, best_factors, digits
from .terms import PRODUCT, tap_terms, tree_depth

__all__ = ["ConvSpec", "OPERATIONS", "signed_bits", "pair", "validate_positive_int",
           "PIXELS_PER_CLOCK"]

#: What a core computes over each window: a convolution, or the maximum (a max pool).
OPERATIONS = ("conv", "max-pool")

#: The pixels per clock (lanes) a core can take and give.
PIXELS_PER_CLOCK = (1, 2, 4, 8)

#: The name other specs import (the 1-D spec validates its integers with it too).
validate_positive_int = validate_int


def _integer_array(name, value, ndim, description):
    """``value`` as a nested tuple of Python ints of ``ndim`` dimensions, or a clear error."""
    try:
        array = np.asarray(value)
    except ValueError:
        raise ValueError(f"'{name}' must be a rectangular {description} of integers, "
                         f"not {value!r}") from None
    huge_ints = array.dtype == object and all(_is_int(v) for v in array.flat)
    if (array.dtype == object and not huge_ints) or array.ndim != ndim:
        raise ValueError(f"'{name}' must be a rectangular {description} of integers, "
                         f"not {value!r}" if array.size <= 64 else
                         f"'{name}' must be a {description} of integers, not an array of "
                         f"shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"'{name}' must have at least one row and one column, "
                         f"not shape {array.shape}" if ndim == 2 else
                         f"'{name}' must not be empty, not shape {array.shape}")
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu" and not huge_ints:
        raise TypeError(f"'{name}' must hold integers, not {array.dtype} values")
    return array.astype(object).tolist()


def _fold_factor(name, value, most, what):
    try:
        return validate_int(name, value, maximum=most)
    except ValueError:
        raise ValueError(f"'{name}' must be from 1 to {most} ({what}), not {value!r}") from None


def _tuples(nested):
    return tuple(_tuples(v) for v in nested) if isinstance(nested, list) else int(nested)


class ConvSpec:
    """A 2-D convolution accelerator or CNN layer: weights, geometry, numbers and folding.

    Parameters
    ----------
    width, height : int
        Frame size in pixels.
    kernel : 2-D array of int, optional
        One compile-time kernel, ``kernel[row][col]``: a single-channel filter, or with
        ``in_channels=C`` the same kernel on each of C channels (depthwise).
    weights : 4-D array of int, optional
        Compile-time layer weights ``(Cout, Cin/groups, KH, KW)``. Not with ``kernel``.
    kernel_shape : (int, int), optional
        ``(KH, KW)`` of runtime-loadable weights. Implied by ``kernel``/``weights``.
    in_channels, out_channels : int, optional
        Channel counts. Implied by ``weights``; for runtime weights ``in_channels`` defaults to
        1 and ``out_channels`` to ``in_channels``.
    groups : int
        Divides both channel counts; ``groups == Cin == Cout`` is depthwise.
    bias : sequence of int, optional
        Added to each output channel's accumulator.
    relu : bool
        ``max(v, 0)`` after the bias, before requantization.
    stride, dilation : int or (int, int)
        Per axis ``(y, x)``, each ``>= 1``.
    padding : int, (int, int), ((int, int), (int, int)) or "same"
        Padding per axis, ``((top, bottom), (left, right))``, or ``"same"`` (stride 1 only): ``D*(K-1)`` in total per axis, the
        odd cell at the bottom/right.
    border : "constant", "replicate", "reflect" or "reflect-101"
        What the padding holds (OpenCV's border modes, :mod:`convhw.border`): ``border_value``
        (default), the nearest edge pixel, the mirror image with or without the edge pixel.
    border_value : int
        The pixel value of a ``constant`` border (default 0), within the pixel range.
    in_bits : int
        Pixel width per channel, 1 to 32. ``in_signed`` selects two's complement.
    coeff_bits : int, optional
        Signed coefficient width. Defaults to the smallest width holding the weights (8 for
        runtime coefficients).
    flip : bool
        ``True`` for mathematical convolution (kernel rotated 180 degrees), ``False`` for CNN
        cross-correlation.
    shift, scale : int or sequence of int, optional
        Requantize: multiply by ``scale``, round by ``shift`` bits (per channel or for all).
    rounding : "half-up" or "half-even"
        Rounding of ties (``half-up`` unless given).
    out_bits : int, optional
        Saturate to signed ``out_bits``.
    clamp : (int, int), optional
        Saturate into ``[lo, hi]`` too (a quantized activation range).
    max_dsps : int, optional
        At most this many runtime-coefficient multipliers use ``*`` (and so DSP blocks); the rest
        are built from logic. ``None`` puts no limit.
    pe, simd : int, optional
        Folding: output channels in parallel, and products per output channel per cycle.
    window_scales : dict, optional
        ``{cells: (scale, shift)}``: requantize the output of a window holding ``cells``
        pixels inside the frame (the others are padding) by ``scale * 2**-shift`` (rounding as
        ``rounding`` says), instead of ``scale``/``shift``: an average pool that divides by the
        in-frame cells. Every window size that occurs must be given. Unfolded constant layers
        only; no ``bias`` or ``relu``.
    operation : "conv" or "max-pool"
        ``"max-pool"``: the maximum of each ``kernel_shape`` window of each of ``in_channels``
        channels (padding cells never win), then ``relu``/``out_bits``/``clamp`` saturation;
        no weights, bias, scaling or folding.
    pixels_per_clock : int
        1, 2, 4 or 8 pixels per stream beat (N lanes, see :attr:`beat_width`). N > 1 needs
        stride 1, an unfolded layer and a width that is a multiple of N.
    separable : bool, optional
        ``None`` (automatic): a constant kernel that is an outer product of two integer vectors
        is built as a vertical then a horizontal 1-D pass when that takes fewer adder-tree
        inputs (:mod:`convhw.separable`). ``True`` requires that form (and with runtime
        coefficients loads the two vectors), ``False`` builds the 2-D form.
    accumulate_positions : bool, optional
        ``None`` (automatic): a folded dense layer (the kernel covers the frame, no padding or
        dilation) multiplies and accumulates each pixel as it streams in, with no line buffer
        or window (:attr:`accumulates_positions`). ``True`` requires that form, ``False``
        builds the windowed one.
    pool_form : "running" or "window", optional
        A max pool's form (:attr:`pool_form`). ``None`` (automatic) takes ``"running"`` for
        windows that tile the frame (stride equal to the kernel, no padding, no dilation),
        else ``"window"``.

    Raises
    ------
    TypeError, ValueError
        With a sentence naming the parameter, its value and what is allowed.
    """

    def __init__(self, *, width, height, kernel=None, kernel_shape=None, weights=None,
                 in_channels=None, out_channels=None, groups=1, bias=None, relu=False,
                 stride=1, padding=0, dilation=1, in_bits=8, in_signed=False, coeff_bits=None,
                 flip=False, shift=None, scale=None, rounding="half-up", out_bits=None,
                 clamp=None, max_dsps=None, pe=None, simd=None, border="constant",
                 border_value=0, operation="conv", pixels_per_clock=1, separable=None,
                 window_scales=None, accumulate_positions=None, pool_form=None):
        self._args = dict(width=width, height=height, kernel=kernel, kernel_shape=kernel_shape,
                          weights=weights, in_channels=in_channels, out_channels=out_channels,
                          groups=groups, bias=bias, relu=relu, stride=stride, padding=padding,
                          dilation=dilation, in_bits=in_bits, in_signed=in_signed,
                          coeff_bits=coeff_bits, flip=flip, shift=shift, scale=scale,
                          rounding=rounding, out_bits=out_bits, clamp=clamp, max_dsps=max_dsps,
                          pe=pe, simd=simd, border=border, border_value=border_value,
                          operation=operation, pixels_per_clock=pixels_per_clock,
                          separable=separable, window_scales=window_scales,
                          accumulate_positions=accumulate_positions,
                          pool_form=pool_form)
        if operation not in OPERATIONS:
            raise ValueError(f"'operation' must be one of {', '.join(map(repr, OPERATIONS))}, "
                             f"not {operation!r}")
        self._operation = operation
        if operation == "max-pool":
            weights, kernel_shape, groups, in_channels = self._pool_weights(
                kernel, weights, kernel_shape, in_channels, out_channels, bias, scale, shift,
                pe, simd, border, border_value)
        self._width = validate_int("width", width)
        self._height = validate_int("height", height)
        self._layer = (weights is not None or in_channels is not None
                       or out_channels is not None)
        self._resolve_weights(kernel, weights, kernel_shape, in_channels, out_channels, groups)

        self._stride = pair("stride", stride)
        self._dilation = pair("dilation", dilation)
        if not isinstance(flip, bool):
            raise TypeError(f"'flip' must be a bool, not {flip!r}")
        self._flip = flip

        self._in_bits = validate_int("in_bits", in_bits, maximum=32)
        if not isinstance(in_signed, bool):
            raise TypeError(f"'in_signed' must be a bool, not {in_signed!r}")
        self._in_signed = in_signed

        flat = self._flat_weights()
        needed = signed_bits(min(flat), max(flat)) if flat is not None else 1
        if coeff_bits is None:
            coeff_bits = min(needed, 32) if flat is not None else 8
        self._coeff_bits = validate_int("coeff_bits", coeff_bits, maximum=32)
        if flat is not None and needed > self._coeff_bits:
            lo, hi = -(1 << (self._coeff_bits - 1)), (1 << (self._coeff_bits - 1)) - 1
            bad = next(c for c in flat if not lo <= c <= hi)
            raise ValueError(f"kernel coefficient {bad} does not fit 'coeff_bits'={self._coeff_bits} "
                             f"(signed range {lo}..{hi})")

        self._padding = self._resolve_padding(padding)
        self._border, self._border_value = validate_border(border, border_value,
                                                           self.pixel_range)
        self._max_dsps = None if max_dsps is None else \
            validate_int("max_dsps", max_dsps, minimum=0)

        out_h, out_w = self.out_shape
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"frame {self._width}x{self._height} (width x height) is too small for the "
                f"effective kernel {self.span[1]}x{self.span[0]} with padding "
                f"{self._padding}: the output would be {out_w}x{out_h}")
        for size, pads, span, sides, frame in (
                (self._height, self._padding[0], self.span[0], ("top", "bottom"), "frame height"),
                (self._width, self._padding[1], self.span[1], ("left", "right"), "frame width")):
            check_border_padding(self._border, pads, size, span, sides, frame)

        inputs = self.inputs_per_output
        self._pe = self._out_channels if pe is None else _fold_factor(
            "pe", pe, self._out_channels, "the output channels")
        self._simd = inputs if simd is None else _fold_factor(
            "simd", simd, inputs, "the inputs of one output, KH*KW*Cin/groups")
        if self.folded and self._max_dsps is not None and self._max_dsps < self.multipliers:
            raise ValueError(f"'max_dsps' {self._max_dsps} is below the {self.multipliers} "
                             f"multipliers of the folded layer (pe {self._pe} x simd "
                             f"{self._simd}), which all use DSP blocks: lower 'pe' or 'simd'")

        self._ppc = self._resolve_pixels_per_clock(pixels_per_clock)
        if self._operation == "max-pool" and self._ppc > 1:
            raise ValueError(f"'pixels_per_clock' {self._ppc} does not apply to "
                             f"'operation'='max-pool', which takes 1")

        self._pool_form = self._resolve_pool_form(pool_form)
        self._separable = self._resolve_separable(separable)
        if self._separable == "runtime" and self.positions_per_frame <= self.vertical_stages:
            # The horizontal coefficients wait in one pending copy for the frame's first
            # position to reach the horizontal pass: no second frame may start before.
            raise ValueError(f"'separable' True with runtime coefficients needs frames of more "
                             f"than {self.vertical_stages} positions (the vertical pass's "
                             f"cycles), not {self.positions_per_frame}")
        self._acc_ranges = self._accumulator_ranges()
        self._accumulate = self._resolve_accumulate(accumulate_positions)
        self._window_scales = None
        if window_scales is not None:
            scale, shift = self._resolve_window_scales(window_scales, scale, shift, bias, relu)
        self._requantize = (shift is not None or out_bits is not None or scale is not None
                            or clamp is not None)
        self._stage = OutputStage(self._acc_ranges, bias=bias, relu=relu, scale=scale,
                                  shift=shift, rounding=rounding, out_bits=out_bits, clamp=clamp)

    # --- construction ---------------------------------------------------------------------------

    def window_counts(self):
        """``(rows, cols)``: per output row the kernel rows inside the frame, per output column
        the kernel columns inside it (a window holds ``rows[oy] * cols[ox]`` pixels)."""
        counts = []
        for size, (lo, _), k, s, d, outputs in zip(
                self.frame_shape, self._padding, self._kernel_shape, self._stride,
                self._dilation, self.out_shape):
            counts.append(tuple(sum(1 for i in range(k) if 0 <= o * s - lo + i * d < size)
                                for o in range(outputs)))
        return tuple(counts)

    def _resolve_window_scales(self, window_scales, scale, shift, bias, relu):
        """Validate ``window_scales``; the ``(scale, shift)`` that size the output stage: the
        scales aligned to the largest shift, the largest of them."""
        for name, value in (("scale", scale), ("shift", shift), ("bias", bias)):
            if value is not None:
                raise ValueError(f"'{name}' does not go with 'window_scales' (which give the "
                                 f"scale and shift of each window), not {value!r}")
        if relu:
            raise ValueError("'relu' does not go with 'window_scales'")
        if self._weights is None or self.folded or self._ppc > 1 or self._operation != "conv" \
                or self._border != "constant" or self._border_value or self.separable:
            raise ValueError("'window_scales' needs compile-time weights, an unfolded layer, 1 "
                             "pixel per clock and a zero 'constant' border")
        if not isinstance(window_scales, dict) or not window_scales:
            raise TypeError(f"'window_scales' must be a dict {{cells: (scale, shift)}}, not "
                            f"{window_scales!r}")
        resolved = {}
        for cells, pair_ in window_scales.items():
            cells = validate_int("window_scales", cells)
            try:
                value, rshift = pair_
            except (TypeError, ValueError):
                raise TypeError(f"'window_scales'[{cells}] must be (scale, shift), not "
                                f"{pair_!r}") from None
            resolved[cells] = (validate_int("window_scales", value),
                               validate_int("window_scales", rshift, minimum=0, maximum=64))
        rows, cols = self.window_counts()
        needed = sorted({r * c for r in rows for c in cols})
        missing = [n for n in needed if n not in resolved]
        if missing:
            raise ValueError(f"'window_scales' must give windows of {', '.join(map(str, needed))} "
                             f"cells; missing {', '.join(map(str, missing))}")
        self._window_scales = {n: resolved[n] for n in needed}
        self._window_common_shift = max(rshift for _, rshift in self._window_scales.values())
        return max(self.aligned_window_scales.values()), self._window_common_shift

    @property
    def window_scales(self):
        """``{cells: (scale, shift)}``: the output at a window of ``cells`` pixels inside the
        frame is ``round(acc * scale * 2**-shift)``; ``None`` for one scale everywhere."""
        return None if self._window_scales is None else dict(self._window_scales)

    @property
    def aligned_window_scales(self):
        """``{cells: scale << (common - shift)}``: the window scales over the largest shift."""
        common = self._window_common_shift
        return {n: v << (common - rshift) for n, (v, rshift) in self._window_scales.items()}

    @staticmethod
    def _pool_weights(kernel, weights, kernel_shape, in_channels, out_channels, bias, scale,
                      shift, pe, simd, border, border_value):
        """A max pool's arguments as a depthwise layer of all-ones weights (which only size
        the window; the datapath takes the maximum)."""
        if kernel is not None or weights is not None:
            raise ValueError("'operation'='max-pool' takes 'kernel_shape', not 'kernel' or "
                             "'weights'")
        if kernel_shape is None:
            raise ValueError("'operation'='max-pool' needs 'kernel_shape' (KH, KW)")
        for name, value in (("bias", bias), ("scale", scale), ("shift", shift), ("pe", pe),
                            ("simd", simd)):
            if value is not None:
                raise ValueError(f"'{name}' does not apply to 'operation'='max-pool' (a max "
                                 f"pool only saturates), not {value!r}")
        if border != "constant" or border_value:
            raise ValueError(f"'operation'='max-pool' takes no 'border' (padding never wins), "
                             f"not {border!r} with value {border_value!r}")
        channels = 1 if in_channels is None else validate_int("in_channels", in_channels)
        if out_channels is not None and out_channels != channels:
            raise ValueError(f"'out_channels' {out_channels!r} must equal 'in_channels' "
                             f"{channels} for 'operation'='max-pool'")
        kh, kw = pair("kernel_shape", kernel_shape)
        ones = [[[[1] * kw for _ in range(kh)]] for _ in range(channels)]
        return ones, (kh, kw), channels, channels

    def _resolve_weights(self, kernel, weights, kernel_shape, in_channels, out_channels, groups):
        if in_channels is not None:
            in_channels = validate_int("in_channels", in_channels)
        if out_channels is not None:
            out_channels = validate_int("out_channels", out_channels)
        groups = validate_int("groups", groups)
        given = None if kernel_shape is None else pair("kernel_shape", kernel_shape)
        self._kernel = None
        if kernel is not None and weights is not None:
            raise ValueError("give either 'kernel' (one 2-D kernel) or 'weights' "
                             "(Cout, Cin/groups, KH, KW), not both")
        if weights is not None:
            nested = _tuples(_integer_array("weights", weights, 4,
                                            "4-D array (Cout, Cin/groups, KH, KW)"))
            cout, per_group = len(nested), len(nested[0])
            cin = per_group * groups
            if in_channels is not None and in_channels != cin:
                raise ValueError(f"'in_channels' {in_channels} does not match the weights: "
                                 f"shape {_shape(nested)} with 'groups' {groups} means "
                                 f"{cin} input channels")
            if out_channels is not None and out_channels != cout:
                raise ValueError(f"'out_channels' {out_channels} does not match the weights' "
                                 f"{cout} output channels (shape {_shape(nested)})")
            if cout % groups:
                raise ValueError(f"'groups' {groups} must divide the output channels {cout} "
                                 f"(weights shape {_shape(nested)})")
            shape = (len(nested[0][0]), len(nested[0][0][0]))
        elif kernel is not None:
            plain = _tuples(_integer_array("kernel", kernel, 2, "2-D array"))
            shape = (len(plain), len(plain[0]))
            cin = 1 if in_channels is None else in_channels
            if out_channels is not None and out_channels != cin:
                raise ValueError(f"'out_channels' {out_channels} must equal 'in_channels' {cin} "
                                 f"for one 'kernel' on each channel (use 'weights' for a full "
                                 f"layer)")
            if groups not in (1, cin):
                raise ValueError(f"'groups' {groups} must be 1 or 'in_channels' {cin} for one "
                                 f"'kernel' on each channel")
            cout, groups = cin, cin
            self._kernel = plain
            nested = tuple((plain,) for _ in range(cin))
        else:
            if given is None:
                raise ValueError("either 'kernel'/'weights' (coefficients) or 'kernel_shape' "
                                 "(runtime coefficients) must be given")
            cin = 1 if in_channels is None else in_channels
            cout = cin if out_channels is None else out_channels
            nested, shape = None, given
        if given is not None and given != shape:
            raise ValueError(f"'kernel_shape' {given!r} does not match the kernel's "
                             f"shape {shape!r}")
        for name, count in (("in_channels", cin), ("out_channels", cout)):
            if count % groups:
                raise ValueError(f"'groups' {groups} must divide '{name}' {count}")
        self._weights, self._kernel_shape = nested, shape
        self._in_channels, self._out_channels, self._groups = cin, cout, groups
        if self._kernel is None and nested is not None and cin == cout == 1:
            self._kernel = nested[0][0]

    def _flat_weights(self):
        if self._weights is None:
            return None
        return [c for per_out in self._weights for per_in in per_out for row in per_in
                for c in row]

    def _resolve_padding(self, padding):
        if isinstance(padding, str):
            if padding != "same":
                raise ValueError(f"'padding' must be an integer, a pair of integers or 'same', "
                                 f"not {padding!r}")
            if self._stride != (1, 1):
                raise ValueError(f"'padding'='same' needs 'stride' 1, not {self._stride!r}")
            spans = self.span
            return tuple(((s - 1) // 2, (s - 1) - (s - 1) // 2) for s in spans)
        if (isinstance(padding, (tuple, list)) and len(padding) == 2
                and all(isinstance(p, (tuple, list)) for p in padding)):
            if not all(len(p) == 2 for p in padding):
                raise ValueError(f"'padding' must be P, (PY, PX) or ((top, bottom), "
                                 f"(left, right)), not {padding!r}")
            pads = tuple(tuple(validate_int("padding", v, minimum=0) for v in p)
                         for p in padding)
        else:
            py, px = pair("padding", padding, minimum=0)
            pads = ((py, py), (px, px))
        for axis, sides, p2, s in (("y", ("top", "bottom"), pads[0], self.span[0]),
                                   ("x", ("left", "right"), pads[1], self.span[1])):
            for side, p in zip(sides, p2):
                if p >= s:
                    where = (f"axis {axis}" if p2[0] == p2[1] else
                             f"the {side} (axis {axis})")
                    raise ValueError(f"'padding' {p} on {where} must be smaller than the "
                                     f"effective kernel size {s} (dilation*(K-1)+1)")
        return pads

    def _resolve_pixels_per_clock(self, value):
        if value not in PIXELS_PER_CLOCK or not _is_int(value):
            raise ValueError(f"'pixels_per_clock' must be one of "
                             f"{', '.join(map(str, PIXELS_PER_CLOCK))}, not {value!r}")
        value = int(value)
        if value == 1:
            return value
        if self._width % value:
            raise ValueError(f"'width' {self._width} must be a multiple of 'pixels_per_clock' "
                             f"{value} (a beat carries {value} pixels of one row; widths are "
                             f"never truncated)")
        if self._stride != (1, 1):
            sy, sx = self._stride
            raise ValueError(f"'pixels_per_clock' {value} needs 'stride' 1, not "
                             f"{sy if sy == sx else self._stride!r} "
                             f"(only 1 pixel per clock allows a larger stride)")
        if self.folded:
            raise ValueError(f"'pixels_per_clock' {value} needs an unfolded layer ('pe' "
                             f"{self._out_channels} and 'simd' {self.inputs_per_output}), not "
                             f"'pe' {self._pe} and 'simd' {self._simd}")
        return value

    def _resolve_separable(self, separable):
        """The separable form's vertical and horizontal vectors per output channel (tap order),
        ``"runtime"`` (loaded at run time), or ``None`` for the 2-D form."""
        if separable is not None and not isinstance(separable, bool):
            raise TypeError(f"'separable' must be None (automatic), True or False, "
                            f"not {separable!r}")
        if separable is False:
            return None
        # The N-pixels-per-clock core and the max pool are built in the 2-D form only.
        ppc = self._ppc
        reason, factors = None, None
        if self._operation != "conv":
            reason = f"'operation' {self._operation!r} has no kernel to separate"
        elif self.folded:
            reason = (f"a folded layer ('pe' {self._pe}, 'simd' {self._simd}) is built in the "
                      f"2-D form")
        elif ppc > 1:
            reason = f"'pixels_per_clock' {ppc} is built in the 2-D form"
        elif self.group_in_channels != 1 or self._out_channels != self._in_channels:
            reason = (f"it needs one kernel per channel (single channel or depthwise), not "
                      f"{self._in_channels}->{self._out_channels} channels with 'groups' "
                      f"{self._groups}")
        elif self._weights is None:
            if not separable:
                return None   # runtime coefficients: only when asked for
            factors = "runtime"
        else:
            kernels = [self.hw_weights(co) for co in range(self._out_channels)]
            factors = tuple(best_factors(k) for k in kernels)
            bad = next((k for k, f in zip(kernels, factors) if f is None), None)
            if bad is not None:
                if self._flip:
                    bad = tuple(row[::-1] for row in bad[::-1])
                reason = (f"kernel {[list(r) for r in bad]} is not an outer product of two "
                          f"integer vectors")
            elif separable is None:
                if 1 in self._kernel_shape:
                    return None   # one row or column: nothing to separate
                flat = sum(len(tap_terms(c, self._coeff_bits, use_dsp=False))
                           for k in kernels for row in k for c in row)
                split = sum(digits(u) + digits(v) for u, v in factors)
                if split >= flat:
                    return None
        if reason is not None:
            if separable:
                raise ValueError(f"'separable' True: {reason} (use 'separable' False or None)")
            return None
        return factors

    def _resolve_accumulate(self, request):
        """``request`` (``accumulate_positions``) checked: ``None``, ``True`` or ``False``."""
        if request is not None and not isinstance(request, bool):
            raise TypeError(f"'accumulate_positions' must be None (automatic), True or False, "
                            f"not {request!r}")
        reason = self._accumulate_obstacle()
        if request and reason is not None:
            raise ValueError(f"'accumulate_positions' True: {reason} (use "
                             f"'accumulate_positions' False or None)")
        return request

    def _accumulate_obstacle(self):
        """Why this layer cannot be built in the accumulating form, or ``None``."""
        kh, kw = self._kernel_shape
        if self._operation != "conv":
            return f"'operation' {self._operation!r} does not multiply"
        if not self.folded:
            return f"an unfolded layer ('pe' {self._pe}, 'simd' {self._simd}) is built whole"
        if (kh, kw) != (self._height, self._width) or self._dilation != (1, 1) \
                or any(any(p) for p in self._padding):
            return (f"the kernel {kh}x{kw} must cover the {self._height}x{self._width} frame "
                    f"with no padding or dilation (a dense layer)")
        if self._groups != 1:
            return f"'groups' {self._groups} must be 1"
        if self._simd > self._in_channels:
            return (f"'simd' {self._simd} is more than the {self._in_channels} channels of a "
                    f"pixel")
        if self._weights is None:
            return "runtime weights are not supported in this form ('weights' must be given)"
        return None

    @property
    def accumulates_positions(self):
        """Whether the core multiplies and accumulates each pixel as it arrives: a folded
        dense layer (kernel == frame, no padding or dilation, groups 1, ``simd`` at most the
        channels, compile-time weights), unless ``accumulate_positions`` is ``False``.

        Every position then takes :attr:`fold_per_position` cycles: ``ceil(C/simd)`` chunks of
        its pixel's channels for each of ``ceil(Cout/pe)`` channel groups, with weights from
        block RAM by (position, group, chunk) and ``Cout`` accumulators kept across the
        frame's positions; no line buffer, window or rotator (:mod:`convhw.gateware.dense`).
        """
        if self._accumulate is False:
            return False
        return self._accumulate_obstacle() is None

    @property
    def position_chunks(self):
        """``ceil(Cin / simd)``: chunks of one pixel's channels (the accumulating form)."""
        return -(-self._in_channels // self._simd)

    @property
    def fold_per_position(self):
        """Cycles each position takes in the accumulating form: ``ceil(Cout/pe) *
        ceil(Cin/simd)``."""
        return self.pe_folds * self.position_chunks
    def _resolve_pool_form(self, pool_form):
        """A max pool's form, ``"running"`` or ``"window"``; ``None`` for a convolution."""
        if pool_form not in (None, "running", "window"):
            raise ValueError(f"'pool_form' must be None (automatic), 'running' or 'window', "
                             f"not {pool_form!r}")
        if self._operation != "max-pool":
            if pool_form is not None:
                raise ValueError(f"'pool_form' {pool_form!r} applies to "
                                 f"'operation'='max-pool' only")
            return None
        tiles = (self._stride == self._kernel_shape and self._dilation == (1, 1)
                 and self._padding == ((0, 0), (0, 0)))
        if pool_form == "running" and not tiles:
            raise ValueError(f"'pool_form' 'running' needs windows that tile the frame: "
                             f"'stride' equal to 'kernel_shape' {self._kernel_shape}, no "
                             f"'padding' and no 'dilation', not stride {self._stride}, "
                             f"padding {self._padding}, dilation {self._dilation}")
        if pool_form is None:
            return "running" if tiles else "window"
        return pool_form

    def hw_weights(self, co):
        """The kernel of output channel ``co`` (its one input channel) in tap order."""
        kh, kw = self._kernel_shape
        return tuple(tuple(self.hw_weight(co, 0, row, col) for col in range(kw))
                     for row in range(kh))

    def _accumulator_ranges(self):
        if self._operation == "max-pool":
            return (self.pixel_range,) * self._out_channels
        # A tap holds a pixel, 0 or the border value, all in the pixel range (which holds 0).
        xlo, xhi = self.pixel_range
        cb = self._coeff_bits
        ranges = []
        for co in range(self._out_channels):
            if self._separable == "runtime":
                # A tap's coefficient is a product of two runtime coefficients.
                clo, chi = -(1 << (cb - 1)), (1 << (cb - 1)) - 1
                coeffs = [(clo * chi, clo * clo)] * self.taps
            elif self._weights is not None:
                coeffs = [(c, c) for per_in in self._weights[co] for row in per_in for c in row]
            else:
                coeffs = [(-(1 << (cb - 1)), (1 << (cb - 1)) - 1)] * self.inputs_per_output
            lo = hi = 0
            for clo, chi in coeffs:
                corners = [clo * xlo, clo * xhi, chi * xlo, chi * xhi]
                lo += min(corners)
                hi += max(corners)
            ranges.append((lo, hi))
        return tuple(ranges)

    # --- what the user gave -------------------------------------------------------------------

    width = property(lambda self: self._width)
    height = property(lambda self: self._height)
    kernel = property(lambda self: self._kernel,
                      doc="The one 2-D kernel of a filter (every channel's, when depthwise with "
                          "a shared kernel), else ``None`` (runtime or per-channel weights).")
    weights = property(lambda self: self._weights,
                       doc="``(Cout, Cin/groups, KH, KW)`` nested tuples, ``None`` at runtime.")
    kernel_shape = property(lambda self: self._kernel_shape, doc="``(KH, KW)``.")
    in_channels = property(lambda self: self._in_channels)
    out_channels = property(lambda self: self._out_channels)
    groups = property(lambda self: self._groups)
    stride = property(lambda self: self._stride, doc="``(sy, sx)``.")
    dilation = property(lambda self: self._dilation, doc="``(dy, dx)``.")
    padding = property(lambda self: self._padding,
                       doc="``((top, bottom), (left, right))`` padding.")
    border = property(lambda self: self._border,
                      doc="Border mode: 'constant', 'replicate', 'reflect' or 'reflect-101'.")
    border_value = property(lambda self: self._border_value,
                            doc="The value of a 'constant' border.")
    in_bits = property(lambda self: self._in_bits)
    in_signed = property(lambda self: self._in_signed)
    coeff_bits = property(lambda self: self._coeff_bits)
    flip = property(lambda self: self._flip)
    requantize = property(lambda self: self._requantize)
    max_dsps = property(lambda self: self._max_dsps)
    pe = property(lambda self: self._pe, doc="Output channels computed in parallel.")
    simd = property(lambda self: self._simd, doc="Products per output channel per cycle.")
    output_stage = property(lambda self: self._stage,
                            doc="The :class:`~convhw.requant.OutputStage` (bias ... saturation).")
    bias = property(lambda self: self._stage.bias)
    relu = property(lambda self: self._stage.relu)
    scale = property(lambda self: self._stage.scale)
    rounding = property(lambda self: self._stage.rounding)
    out_bits = property(lambda self: self._stage.out_bits, doc="Signed output width.")
    clamp = property(lambda self: self._stage.clamp)

    @property
    def shift(self):
        """The rounding shift: one integer when every channel shares it, else a tuple."""
        shifts = self._stage.shift
        return shifts[0] if len(set(shifts)) == 1 else shifts

    @property
    def is_layer(self):
        """Whether frames carry a channel axis: ``(C, H, W)`` in, ``(Cout, OH, OW)`` out."""
        return self._layer

    @property
    def runtime_coeffs(self):
        return self._weights is None

    @property
    def frame_shape(self):
        """``(height, width)`` of an input frame, NumPy order (the spatial part)."""
        return (self._height, self._width)

    @property
    def input_shape(self):
        """Shape of one input frame: ``(Cin, H, W)`` for a layer, else ``(H, W)``."""
        return ((self._in_channels,) if self._layer else ()) + self.frame_shape

    @property
    def output_shape(self):
        """Shape of one output frame: ``(Cout, OH, OW)`` for a layer, else ``(OH, OW)``."""
        return ((self._out_channels,) if self._layer else ()) + self.out_shape

    # --- derived ------------------------------------------------------------------------------

    @property
    def taps(self):
        return self._kernel_shape[0] * self._kernel_shape[1]

    @property
    def group_in_channels(self):
        """Input channels each output channel sees, ``Cin/groups``."""
        return self._in_channels // self._groups

    @property
    def inputs_per_output(self):
        """``KH*KW*Cin/groups``: the products of one output value."""
        return self.taps * self.group_in_channels

    def input_channel(self, co, ci):
        """The input channel that weight ``[co][ci]`` (``ci < Cin/groups``) multiplies."""
        return co // (self._out_channels // self._groups) * self.group_in_channels + ci

    @property
    def span(self):
        """Effective kernel size ``(D*(KH-1)+1, D*(KW-1)+1)``."""
        (kh, kw), (dy, dx) = self._kernel_shape, self._dilation
        return (dy * (kh - 1) + 1, dx * (kw - 1) + 1)

    @property
    def out_shape(self):
        """``(out_height, out_width)``: ``floor((N + 2P - D*(K-1) - 1) / S) + 1`` per axis."""
        return tuple(
            (n + sum(p) - span) // s + 1 if n + sum(p) >= span else 0
            for n, p, span, s in zip(self.frame_shape, self._padding, self.span, self._stride))

    @property
    def pixel_range(self):
        if self._in_signed:
            return (-(1 << (self._in_bits - 1)), (1 << (self._in_bits - 1)) - 1)
        return (0, (1 << self._in_bits) - 1)

    @property
    def acc_ranges(self):
        """Per output channel: exact ``(min, max)`` of the accumulator, bias not included."""
        return self._acc_ranges

    @property
    def acc_range(self):
        """Exact ``(min, max)`` of every channel's accumulator, bias not included."""
        return (min(lo for lo, _ in self._acc_ranges), max(hi for _, hi in self._acc_ranges))

    @property
    def acc_bits(self):
        return signed_bits(*self.acc_range)

    @property
    def rounded_range(self):
        """Range after bias, scaling and rounding, before ReLU and saturation (all channels)."""
        ranges = self._stage.rounded_ranges
        return (min(lo for lo, _ in ranges), max(hi for _, hi in ranges))

    @property
    def out_range(self):
        ranges = self._stage.out_ranges
        return (min(lo for lo, _ in ranges), max(hi for _, hi in ranges))

    @property
    def saturates(self):
        """Whether some value is clamped: outside signed ``out_bits``, or below 0 with ReLU."""
        return self._stage.saturates

    @property
    def hw_kernel(self):
        """The one kernel in tap order (rotated when ``flip``), or ``None``."""
        if self._kernel is None:
            return None
        k = np.array(self._kernel, dtype=object)
        if self._flip:
            k = k[::-1, ::-1]
        return tuple(tuple(int(v) for v in row) for row in k)

    def hw_weight(self, co, ci, row, col):
        """Weight ``[co][ci]`` at tap ``(row, col)`` in tap order (rotated when ``flip``)."""
        kh, kw = self._kernel_shape
        if self._flip:
            row, col = kh - 1 - row, kw - 1 - col
        return self._weights[co][ci][row][col]

    def tap_index(self, addr):
        """The ``(row, col)`` tap that runtime coefficient ``addr`` (row-major) drives."""
        kh, kw = self._kernel_shape
        row, col = divmod(addr, kw)
        return (kh - 1 - row, kw - 1 - col) if self._flip else (row, col)

    def coefficient_index(self, addr):
        """``(co, ci, row, col)`` in tap order of unfolded runtime coefficient ``addr``: the
        PyTorch flat index of ``(Cout, Cin/groups, KH, KW)`` weights."""
        co, rest = divmod(addr, self.inputs_per_output)
        ci, tap = divmod(rest, self.taps)
        return (co, ci, *self.tap_index(tap))

    @property
    def coefficient_count(self):
        """Runtime coefficients: ``Cout * Cin/groups * KH * KW`` (separable: ``Cout * (KH +
        KW)``, see :meth:`separable_address`)."""
        if self._separable == "runtime":
            return self._out_channels * sum(self._kernel_shape)
        return self._out_channels * self.inputs_per_output

    @property
    def coefficient_addresses(self):
        """Size of the coefficient port's address space (see :meth:`coefficient_address`)."""
        if self.folded:
            return self.fold << self.lane_bits
        return self.coefficient_count

    @property
    def lane_bits(self):
        """Low address bits that pick a lane (``pe*simd`` of them) in a folded weight word."""
        return max(0, (self.multipliers - 1).bit_length())

    def coefficient_address(self, co, ci, kh, kw):
        """Where runtime weight ``[co][ci][kh][kw]`` (as the user wrote it) is written.

        Unfolded: the PyTorch flat index ``((co*Cin/groups + ci)*KH + kh)*KW + kw`` (the
        row-major kernel index for one kernel). Folded: ``word << lane_bits | lane``, where the
        weight is input ``n = (ci*KH + row)*KW + col`` of its channel (``row, col`` the tap,
        rotated when ``flip``), ``word = (co // pe) * ceil(N/simd) + n // simd`` and
        ``lane = (co % pe) * simd + n % simd``.
        """
        if not self.folded:
            return ((co * self.group_in_channels + ci) * self.taps
                    + kh * self._kernel_shape[1] + kw)
        row, col = self.tap_index(kh * self._kernel_shape[1] + kw)
        n = (ci * self._kernel_shape[0] + row) * self._kernel_shape[1] + col
        word = (co // self._pe) * self.simd_folds + n // self._simd
        lane = (co % self._pe) * self._simd + n % self._simd
        return (word << self.lane_bits) | lane

    @property
    def dsp_taps(self):
        """How many runtime-coefficient products multiply with ``*`` (DSP blocks)."""
        if self._weights is not None:
            return 0
        products = self.multipliers
        # ``max_dsps`` bounds the whole core: each of the lanes gets an equal share.
        return products if self._max_dsps is None else min(
            products, self._max_dsps // self.pixels_per_clock)

    def channel_terms(self, co):
        """Adder-tree inputs of output channel ``co`` (unfolded specs):
        ``(tap_row, tap_col, in_channel, kind, shift, negative)`` each."""
        kh, kw = self._kernel_shape
        result = []
        first_product = co * self.inputs_per_output
        for ci in range(self.group_in_channels):
            channel = self.input_channel(co, ci)
            for index in range(kh * kw):
                row, col = divmod(index, kw)
                coeff = None if self._weights is None else self.hw_weight(co, ci, row, col)
                product = first_product + ci * self.taps + index
                for kind, shift, negative in tap_terms(coeff, self._coeff_bits,
                                                       use_dsp=product < self.dsp_taps):
                    result.append((row, col, channel, kind, shift, negative))
        return result

    @property
    def terms(self):
        """Adder-tree inputs of output channel 0, ``(tap_row, tap_col, kind, shift,
        negative)`` each (a single-channel filter's whole tree)."""
        return [(row, col, kind, shift, negative)
                for row, col, _, kind, shift, negative in self.channel_terms(0)]

    # --- separable form -------------------------------------------------------------------

    @property
    def separable(self):
        """Whether the core is built as a vertical then a horizontal 1-D pass."""
        return self._separable is not None

    @property
    def form(self):
        """``"separable"``, ``"accumulating"`` (:attr:`accumulates_positions`) or ``"2-d"``:
        the form the core is built in."""
        if self.accumulates_positions:
            return "accumulating"
        return "separable" if self._separable is not None else "2-d"

    @property
    def separable_factors(self):
        """Per output channel ``(u, v)`` in tap order, ``kernel == outer(u, v)`` (``u``
        vertical); ``None`` for the 2-D form or runtime coefficients."""
        return None if self._separable in (None, "runtime") else self._separable

    def _pass_terms(self, co, axis):
        """Adder-tree inputs ``(row, col, channel, kind, shift, negative)`` of one pass of
        output channel ``co``: ``axis`` 0 is the vertical pass (``(i, 0)`` taps), 1 the
        horizontal one (``(0, j)`` taps). Runtime DSP products go to the horizontal pass
        first, whose operands (vertical sums) are the wider."""
        kh, kw = self._kernel_shape
        size = (kh, kw)[axis]
        first = (co * kw) if axis else (self._out_channels * kw + co * kh)
        result = []
        low = 0
        if axis and self._separable == "runtime":
            low = max(0, signed_bits(*self.vertical_range(co)) - DSP_OPERAND_BITS)
        for index in range(size):
            coeff = None if self._separable == "runtime" else self._separable[co][axis][index]
            tap = (0, index) if axis else (index, 0)
            for kind, shift, negative in tap_terms(coeff, self._coeff_bits,
                                                   use_dsp=first + index < self.dsp_taps):
                if kind == PRODUCT and low:
                    # The sum's high part in the DSP block (shifted), its low bits gate the
                    # coefficient (see convhw.separable.DSP_OPERAND_BITS).
                    result.append((*tap, co, kind, low, False))
                    result += [(*tap, co, LOW_BIT, bit, False) for bit in range(low)]
                    continue
                result.append((*tap, co, kind, shift, negative))
        return result

    def vertical_terms(self, co):
        """Adder-tree inputs of channel ``co``'s vertical pass (separable form)."""
        return self._pass_terms(co, 0)

    def horizontal_terms(self, co):
        """Adder-tree inputs of channel ``co``'s horizontal pass (separable form)."""
        return self._pass_terms(co, 1)

    @property
    def vertical_product_stages(self):
        """1 when some vertical products use DSP blocks (a stage more), else 0."""
        return int(self.separable and self.dsp_taps > self._out_channels * self._kernel_shape[1])

    @property
    def vertical_tree_depth(self):
        return max(tree_depth(len(self.vertical_terms(co))) for co in range(self._out_channels))

    @property
    def vertical_stages(self):
        """Cycles the separable form's vertical pass adds (masked rows, products, tree): 0 for
        the 2-D form."""
        if not self.separable:
            return 0
        return 1 + self.vertical_product_stages + self.vertical_tree_depth

    def vertical_range(self, co):
        """Exact ``(min, max)`` of channel ``co``'s vertical sums (separable form)."""
        xlo, xhi = self.pixel_range
        if self._separable == "runtime":
            clo, chi = -(1 << (self._coeff_bits - 1)), (1 << (self._coeff_bits - 1)) - 1
            corners = [c * x for c in (clo, chi) for x in (xlo, xhi)]
            return (self._kernel_shape[0] * min(corners), self._kernel_shape[0] * max(corners))
        u = self._separable[co][0]
        return (sum(min(c * xlo, c * xhi) for c in u), sum(max(c * xlo, c * xhi) for c in u))

    def separable_address(self, co, axis, index):
        """Runtime separable coefficients: where coefficient ``index`` of channel ``co``'s
        vertical (``axis`` 0) or horizontal (1) vector, as the user wrote it, is written:
        ``co*(KH+KW) + index`` vertical, ``co*(KH+KW) + KH + index`` horizontal."""
        kh, kw = self._kernel_shape
        return co * (kh + kw) + (kh if axis else 0) + index

    @property
    def adder_terms(self):
        """Adder-tree inputs built for one position, every channel and pass together."""
        if self.folded:
            return self.multipliers
        channels = range(self._out_channels)
        if self.separable:
            return sum(len(self.vertical_terms(co)) + len(self.horizontal_terms(co))
                       for co in channels)
        return sum(len(self.channel_terms(co)) for co in channels)

    @property
    def multipliers_built(self):
        """Multiplications built: runtime products, or constant coefficients other than 0 (each
        a shift-add); ``pe * simd`` when folded."""
        if self.folded or self._weights is None or self._operation != "conv":
            return self.multipliers
        if self.separable:
            return sum(sum(1 for c in u + v if c) for u, v in self._separable)
        return sum(1 for c in self._flat_weights() if c)

    # --- folding --------------------------------------------------------------------------------

    @property
    def pe_folds(self):
        """``ceil(Cout / pe)``: groups of output channels, one after the other."""
        return -(-self._out_channels // self._pe)

    @property
    def simd_folds(self):
        """``ceil(KH*KW*Cin/groups / simd)``: chunks of one output value's products."""
        return -(-self.inputs_per_output // self._simd)

    @property
    def fold(self):
        """Cycles a position that completes an output takes (1 when unfolded)."""
        return self.pe_folds * self.simd_folds

    @property
    def folded(self):
        return self.fold > 1

    @property
    def folded_operands(self):
        """Where a folded layer's multipliers take each chunk's operands from: ``"window"``, a
        selector per multiplier over the window's taps, which hold from the load to the last
        chunk (constant border: no position issues in between, and the padding masks are held);
        ``"rotator"``, registers loaded with all the position's inputs that turn by ``simd``
        (border sources: the tap selects follow the scheduler; or more than
        :attr:`WINDOW_OPERAND_CHUNKS` chunks: the selector is two registered levels of at
        most 8 chunks each, and beyond 8x8 a third level would be needed; a 72-way selector in
        one level took the 8x1 layer on the UP5K from 62 to 28 MHz); ``"pixel"``, a selector
        per multiplier over the held input pixel's channels (the accumulating form,
        :attr:`accumulates_positions`). The window costs a selector's LUTs, the rotator a
        register per input: the digits' conv2 (54 chunks) keeps 1,000 flip-flops fewer from
        the window, at 64.6 MHz alone on the UP5K. ``None`` when not folded."""
        if not self.folded:
            return None
        if self.accumulates_positions:
            return "pixel"
        if self.border_sources or self.simd_folds > self.WINDOW_OPERAND_CHUNKS:
            return "rotator"
        return "window"

    #: Folded layers with at most this many chunks per output select operands from the window.
    WINDOW_OPERAND_CHUNKS = 64

    @property
    def multipliers(self):
        """Products computed per cycle: ``pe * simd`` (shift-adds for unfolded constants); 0
        for a max pool; ``(KH + KW)`` per channel in the separable form."""
        if self._operation == "max-pool":
            return 0
        if getattr(self, "_separable", None) is not None:
            return self._out_channels * sum(self._kernel_shape)
        return self._pe * self._simd

    @property
    def operation(self):
        """``"conv"``, or ``"max-pool"``: the maximum of each window, padding excluded."""
        return self._operation

    @property
    def pool_form(self):
        """How a max pool is built (``None`` for a convolution).

        ``"window"``: a line buffer of ``KH - 1`` rows, a window of column maxima and a
        comparison tree (:meth:`convhw.gateware.conv2d.Conv2d._max_datapath`), for any
        geometry. ``"running"``: windows that tile the frame (stride equal to the kernel, no
        padding, no dilation) keep one partial maximum per output column, updated by each pixel
        of the window (:mod:`convhw.gateware.pool`): no line buffer, window or tree."""
        return self._pool_form

    #: A running max pool keeps its partial maxima in registers up to this many output columns.
    RUNNING_POOL_REGISTER_COLUMNS = 4

    @property
    def pool_partials(self):
        """A running max pool's partial maxima of the window rows above: ``"registers"`` (one
        per output column, or one in all for one-row windows), ``"memory"`` (more than
        :attr:`RUNNING_POOL_REGISTER_COLUMNS` output columns, plus a running register), or
        ``None`` (other cores)."""
        if self._pool_form != "running":
            return None
        if self._kernel_shape[0] > 1 and self.out_shape[1] > self.RUNNING_POOL_REGISTER_COLUMNS:
            return "memory"
        return "registers"

    # --- border -------------------------------------------------------------------------------

    @property
    def border_sources(self):
        """Whether border pixels are taken from the frame (every mode but 'constant')."""
        return self._border != "constant"

    @property
    def row_border(self):
        """The :class:`~convhw.border.AxisBorder` of the rows (outputs ``oy``)."""
        (kh, _), (sy, _), (dy, _) = self._kernel_shape, self._stride, self._dilation
        return AxisBorder(self._border, size=self._height, pad_lo=self._padding[0][0],
                          taps=kh, dilation=dy, stride=sy, outputs=self.out_shape[0])

    @property
    def col_border(self):
        """The :class:`~convhw.border.AxisBorder` of the columns (outputs ``ox``)."""
        (_, kw), (_, sx), (_, dx) = self._kernel_shape, self._stride, self._dilation
        return AxisBorder(self._border, size=self._width, pad_lo=self._padding[1][0],
                          taps=kw, dilation=dx, stride=sx, outputs=self.out_shape[1])

    # --- schedule -------------------------------------------------------------------------------

    @property
    def row_offset(self):
        """Stream row (relative to ``oy*sy``) at which output row ``oy`` is computed."""
        return self.span[0] - 1 - self._padding[0][0]

    @property
    def col_offset(self):
        """Stream column (relative to ``ox*sx``) at which output column ``ox`` is computed."""
        return self.span[1] - 1 - self._padding[1][0]

    @property
    def stream_width(self):
        """Positions per stream row: ``width``, longer only when an output row needs more (and
        then rounded up to whole beats)."""
        out_w, lanes = self.out_shape[1], self.pixels_per_clock
        return -(-max(self._width, (out_w - 1) * self._stride[1] + 1) // lanes) * lanes

    @property
    def positions_per_frame(self):
        """Positions per frame: every input pixel's, then on to the last output's."""
        out_h, out_w = self.out_shape
        return max(self._height * self.stream_width, self.output_position(out_h - 1, out_w - 1) + 1)

    # With ``pixels_per_clock`` N, the scheduler walks *beats*: N consecutive positions of a
    # stream row, one beat per clock. Output beat ``c`` of row ``oy`` holds outputs
    # ``c*N ... c*N + N - 1`` and is computed at the first beat that holds all their positions.
    # With N = 1 a beat is a position and these equal the position figures.

    @property
    def pixels_per_clock(self):
        """Pixels per input beat and outputs per output beat (lanes)."""
        return self._ppc

    @property
    def beat_width(self):
        """Beats per stream row: ``stream_width / pixels_per_clock``."""
        return self.stream_width // self._ppc

    @property
    def beat_col_offset(self):
        """Beat (relative to ``c``) at which output beat ``c`` is computed:
        ``ceil(col_offset / pixels_per_clock)``."""
        return -(-self.col_offset // self._ppc)

    @property
    def out_beats(self):
        """Output beats per output row, ``ceil(out_width / pixels_per_clock)``: the last one
        is partial when the output width is not a multiple of the lanes (its unused lanes
        hold 0)."""
        return -(-self.out_shape[1] // self._ppc)

    def output_beat(self, oy, c):
        """Stream beat at which output beat ``c`` of row ``oy`` is computed."""
        return ((oy * self._stride[0] + self.row_offset) * self.beat_width
                + c * self._stride[1] + self.beat_col_offset)

    @property
    def beats_per_frame(self):
        """Beats (clocks without stalls) per frame: every input beat's, then on to the last
        output beat's."""
        out_h = self.out_shape[0]
        return max(self._height * self.beat_width,
                   self.output_beat(out_h - 1, self.out_beats - 1) + 1)

    def output_position(self, oy, ox):
        """Stream position at which output ``(oy, ox)`` is computed."""
        return ((oy * self._stride[0] + self.row_offset) * self.stream_width
                + ox * self._stride[1] + self.col_offset)

    # --- pipeline -------------------------------------------------------------------------------

    #: Position issue -> line-buffer read -> window -> masked taps / products.
    FRONT_STAGES = 3
    #: Output FIFO: cycles from its write to the data being valid on the output stream.
    FIFO_LATENCY = 2
    #: Folded engine, from the window to the first accumulation: load the operand rotators,
    #: multiplier input registers, product register (then the SIMD adder tree), accumulator,
    #: and the output collector.
    FOLD_STAGES = 5
    #: Accumulating form, from the issue to the accumulators: the pixel capture, operand
    #: registers, multiplier input registers, product register (then the SIMD adder tree), the
    #: group's sum and the accumulator ring.
    ACCUMULATE_STAGES = 6

    @property
    def tree_depth(self):
        """Registered levels of the adder trees (of the SIMD tree when folded; of the
        comparison tree across the kernel's columns of a max pool, whose rows are compared as
        a column enters the window; its first level reads the window, and a single column is
        registered once)."""
        if self._operation == "max-pool":
            return max(1, tree_depth(self._kernel_shape[1]))
        if self.folded:
            return tree_depth(self._simd)
        if self.separable:
            return max(tree_depth(len(self.horizontal_terms(co)))
                       for co in range(self._out_channels))
        return max(tree_depth(len(self.channel_terms(co))) for co in range(self._out_channels))

    @property
    def back_stages(self):
        """Output stage: scaling (when needed), rounding, and saturation when it can happen
        (a serial output stage adds its operand and digit-row stages, its adder-tree levels
        and its digits; window scales take a scaling, a rounding and a saturation stage)."""
        if self._window_scales is not None:
            return 3
        if self.serial_output_stage is None:
            return self._stage.stages
        if not self.serial_stage_shared:
            return self.serial_stage_cycles
        # The lanes' totals are captured, then start one after the other from the next cycle,
        # ``digits + 1`` cycles apart; the last group may have fewer lanes.
        last_lanes = self._out_channels - (self.pe_folds - 1) * self._pe
        return 1 + (last_lanes - 1) * (self.serial_output_stage[1] + 1) + self.serial_stage_cycles

    @property
    def serial_stage_cycles(self):
        """Cycles from a serial output stage's start to its result (its operand and digit-row
        stages, its adder-tree levels, its digits, then rounding and saturation); 0 without
        one."""
        serial = self.serial_output_stage
        if serial is None:
            return 0
        return self._stage.stages + 2 + self.serial_tree_levels + serial[1]

    #: Scale bits a serial output stage may take per cycle.
    SERIAL_RADIX_BITS = (1, 2, 3, 4, 5, 6, 7, 8)

    @property
    def serial_output_stage(self):
        """``(radix_bits, digits)`` when a folded layer's lanes scale serially, else ``None``.

        A folded lane completes one output value every ``simd_folds`` cycles at most, so
        instead of an output stage with a constant multiplier per channel (or per lane), each
        lane multiplies ``acc + bias`` by its channel's scale ``radix_bits`` scale bits per
        cycle, over ``digits`` cycles, with shift-adds in logic: no DSP block, and one stage
        per lane whatever the channels' scales. With more than one bit per cycle the scale is
        Booth recoded (digits -2 .. 2 on bit pairs), so it takes one bit more than its width:
        ``digits = ceil((bits + 1) / radix_bits)`` (``bits`` with one bit per cycle). Used for
        folded convolutions whose channels scale (some ``scale != 1``, all positive) when
        ``digits + 1 <= simd_folds`` (accumulating form: ``position_chunks``) for the smallest
        radix of :data:`SERIAL_RADIX_BITS` that allows it; the scales are aligned to the largest
        shift (:attr:`serial_scales`). When one stage can serve every lane in turn
        (:attr:`serial_stage_shared`), the smallest radix that lets it.
        """
        choice = self._serial_choice()
        return None if choice is None else choice[:2]

    @property
    def serial_stage_shared(self):
        """Whether a folded layer's lanes take turns in ONE serial output stage
        (:attr:`serial_output_stage`) instead of one each: their totals, complete in the same
        cycle every ``simd_folds`` cycles, are captured and scaled one after the other, so
        ``pe * (digits + 1) <= simd_folds``. Chosen (when :data:`SHARED_SERIAL_STAGE`) for
        the smallest radix that allows it, as long as that stage's Booth rows (one per two
        bits a cycle) are at most ``pe``: a stage of more rows costs about as much as ``pe``
        stages of one row. Not in the accumulating form."""
        choice = self._serial_choice()
        return choice is not None and choice[2]

    #: Whether a folded layer's lanes share one serial output stage where it keeps up.
    SHARED_SERIAL_STAGE = True

    def _serial_choice(self):
        """``(radix_bits, digits, shared)`` of the serial output stage, or ``None``."""
        if self._operation != "conv" or not self.folded:
            return None
        scales = self._stage.scale
        if all(v == 1 for v in scales) or any(v <= 0 for v in scales):
            return None
        bits = max(v.bit_length() for v in self.serial_scales[0])
        # Cycles between two outputs of a lane: a value's chunks (a pixel's, accumulating).
        interval = self.position_chunks if self.accumulates_positions else self.simd_folds

        def digits(radix_bits):
            return -(-(bits + (radix_bits > 1)) // radix_bits)

        if self.SHARED_SERIAL_STAGE and self._pe > 1 and not self.accumulates_positions:
            for radix_bits in self.SERIAL_RADIX_BITS:
                if (radix_bits + 1) // 2 > self._pe:
                    break
                if self._pe * (digits(radix_bits) + 1) <= interval:
                    return radix_bits, digits(radix_bits), True
        for radix_bits in self.SERIAL_RADIX_BITS:
            if digits(radix_bits) + 1 <= interval:
                return radix_bits, digits(radix_bits), False
        return None

    @property
    def serial_tree_levels(self):
        """Registered adder levels summing a serial output stage's digit rows (one row per
        Booth digit, ``ceil(radix_bits / 2)`` per cycle); 0 without a serial stage."""
        serial = self.serial_output_stage
        return 0 if serial is None else tree_depth((serial[0] + 1) // 2)

    @property
    def serial_scales(self):
        """``(scales, shift)``: every channel's scale aligned to the largest shift, so that
        ``scales[c] * 2**-shift == scale[c] * 2**-shift[c]``."""
        shifts = self._stage.shift
        top = max(shifts)
        return tuple(v << (top - s) for v, s in zip(self._stage.scale, shifts)), top

    @property
    def product_stages(self):
        """1 when DSP products take a stage more (multiplier input registers), else 0."""
        return int(self.dsp_taps > 0 and not self.folded)   # (separable: the horizontal pass)

    @property
    def pipeline_depth(self):
        """Cycles from a position's issue to its result entering the output FIFO."""
        if self._pool_form == "running":
            # The pixel meets the partial maximum in S1; the result takes a register, then the
            # result stage.
            return self.FRONT_STAGES
        if self._operation == "max-pool":
            # No masked-tap registers: the comparison tree reads the window.
            return self.FRONT_STAGES - 1 + self.tree_depth + self.back_stages
        if self.accumulates_positions:
            # The last position's last chunk, then the output stage.
            return (self.ACCUMULATE_STAGES + self.fold_per_position - 1 + self.tree_depth
                    + self.back_stages)
        if self.folded:
            return (self.FRONT_STAGES - 1 + self.FOLD_STAGES + self.fold - 1 + self.tree_depth
                    + self.back_stages)
        return (self.FRONT_STAGES + self.vertical_stages + self.product_stages + self.tree_depth
                + self.back_stages)

    @property
    def latency(self):
        """Cycles from the issue of an output's position to that output being valid.

        The position is issued in the cycle its input pixel is accepted (or, for positions
        without input, as soon as the previous one has gone).
        """
        return self.pipeline_depth + self.FIFO_LATENCY

    @property
    def output_queue_depth(self):
        """Results the output FIFO holds: every result that can be in flight (a
        result is in flight from its issue to its pop, ``latency + 1`` cycles at the least;
        positions that complete outputs issue ``fold`` cycles apart at the most often).

        In the accumulating form a frame's one output issues with its last position, and the
        next frame's positions, which need a credit too, follow ``fold_per_position`` cycles
        later: a credit must be free for them while earlier outputs are in flight.

        A running max pool fills its queue's memory, whose rows are a power of two: the same
        memory, and results of its next frame held while the layer after it waits (in a chain
        the layer before it, which may be the bottleneck, then waits less)."""
        if self.accumulates_positions:
            fold = self.fold_per_position
            return -(-(self.latency + 1 - fold) // self.frame_interval) + 1
        if self._pool_form == "running":
            return 1 << max(1, self.latency.bit_length())
        return -(-(self.latency + 1) // self.fold)

    @property
    def cycles_per_frame(self):
        """Cycles from a frame's first input to its last output, without stalls."""
        if self.accumulates_positions:
            return (self.positions_per_frame - 1) * self.fold_per_position + self.latency
        out_h, out_w = self.out_shape
        return (self.output_beat(out_h - 1, self.out_beats - 1)
                + (self.fold - 1) * (out_h * out_w - 1) + self.latency)

    @property
    def cycles_per_output(self):
        """Cycles a position that completes an output takes: :attr:`fold` (the accumulating
        form: the frame's, one output per frame)."""
        if self.accumulates_positions:
            return self.frame_interval
        return self.fold

    @property
    def frame_interval(self):
        """Cycles between the first inputs of consecutive frames streamed back to back without
        stalls: every position (beat) once, ``fold`` cycles for each that completes an output
        (accumulating form: :attr:`fold_per_position` for every position)."""
        if self.accumulates_positions:
            return self.positions_per_frame * self.fold_per_position
        out_h, out_w = self.out_shape
        return self.beats_per_frame + (self.fold - 1) * out_h * out_w

    @property
    def window_in_line_buffer(self):
        """Whether the taps are read from the line buffer's shift register, with no window
        registers: a folded layer with operands from the held window
        (:attr:`folded_operands`), a register line buffer (:attr:`line_buffer_registers`) that
        keeps all ``KH`` kernel rows, every position of a stream row in a column (``stream_width
        == width``) and no dilation. Every position then writes its column back, so the last
        ``KW`` words written are the window's columns."""
        return (self.folded_operands == "window" and self.line_buffer_registers
                and not self.accumulates_positions
                and self.stream_width == self._width and self._dilation == (1, 1)
                and self._ppc == 1 and not getattr(self, "_separable", None))

    #: Line buffers of at most this many columns (beats) are shift registers, not memories.
    REGISTER_LINE_BUFFER_COLUMNS = 4

    @property
    def line_buffer_registers(self):
        """Whether the line buffer is a shift register of flip-flops rather than a memory: rows
        of at most :attr:`REGISTER_LINE_BUFFER_COLUMNS` beats, which Yosys would build from
        flip-flops anyway (plus an address decoder and read registers)."""
        return self.span[0] > 1 and self._width // self._ppc <= self.REGISTER_LINE_BUFFER_COLUMNS

    @property
    def line_buffer_bits(self):
        """Bits of the line buffer: ``span_h - 1`` rows of every input channel (a running max
        pool: its partial maxima of the window rows above, one per output column; none in the
        accumulating form)."""
        if self.accumulates_positions:
            return 0
        if self._pool_form == "running":
            kh = self._kernel_shape[0]
            return int(kh > 1) * self.out_shape[1] * self._in_bits * self._in_channels
        return (self.span[0] - 1) * self._width * self._in_bits * self._in_channels

    @property
    def weight_bits(self):
        """Bits of the weights: ``Cout * Cin/groups * KH * KW`` coefficients."""
        return self.coefficient_count * self._coeff_bits

    def with_folding(self, pe, simd):
        """This spec folded as ``pe`` x ``simd``: :meth:`replace` without checking the weights
        again (cheap, for searching foldings)."""
        pe = _fold_factor("pe", pe, self._out_channels, "the output channels")
        simd = _fold_factor("simd", simd, self.inputs_per_output,
                            "the inputs of one output, KH*KW*Cin/groups")
        folded = copy.copy(self)
        folded._pe, folded._simd = pe, simd
        folded._args = {**self._args, "pe": pe, "simd": simd}
        if folded.folded and (self._ppc > 1 or self._max_dsps is not None
                              and self._max_dsps < folded.multipliers) \
                or self._accumulate and folded._accumulate_obstacle() is not None:
            return self.replace(pe=pe, simd=simd)   # (raises the constructor's error)
        return folded

    def replace(self, **changes):
        """A new spec with some constructor arguments changed (validated again)."""
        args = dict(self._args)
        if "weights" in changes or "kernel" in changes:
            args.pop("kernel_shape")
        return type(self)(**{**args, **changes})

    def __eq__(self, other):
        return isinstance(other, ConvSpec) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def _key(self):
        return (self._width, self._height, self._kernel, self._weights, self._kernel_shape,
                self._in_channels, self._out_channels, self._groups, self._layer, self._stride,
                self._padding, self._dilation, self._in_bits, self._in_signed, self._coeff_bits,
                self._flip, self._requantize, self._max_dsps, self._pe, self._simd,
                self._stage._key(), self._border, self._border_value, self._operation,
                self._ppc, self.separable, self.accumulates_positions, self._pool_form,
                None if self._window_scales is None
                else tuple(sorted(self._window_scales.items())))

    def to_dict(self):
        """Plain values describing the spec and its derived numbers (for headers and JSON)."""
        facts = {
            "width": self._width, "height": self._height,
            "kernel": None if self._kernel is None else [list(r) for r in self._kernel],
            "kernel_shape": list(self._kernel_shape), "stride": list(self._stride),
            "padding": [list(p) for p in self._padding], "dilation": list(self._dilation),
            "in_bits": self._in_bits, "in_signed": self._in_signed,
            "coeff_bits": self._coeff_bits, "flip": self._flip,
            "shift": (list(self.shift) if isinstance(self.shift, tuple) else self.shift)
            if self._requantize else None,
            "out_bits": self.out_bits, "acc_bits": self.acc_bits,
            "out_shape": list(self.out_shape), "latency": self.latency,
            "cycles_per_frame": self.cycles_per_frame,
        }
        if self._operation != "conv":
            facts["operation"] = self._operation
            facts["pool_form"] = self._pool_form
        if self._window_scales is not None:
            facts["window_scales"] = {str(n): list(v) for n, v in self._window_scales.items()}
        if self._border != "constant" or self._border_value:   # (default: headers unchanged)
            facts.update(border=self._border, border_value=self._border_value)
        if self._ppc > 1:   # (default: headers unchanged)
            facts.update(pixels_per_clock=self._ppc)
        if self.separable:   # (the 2-D form: headers unchanged)
            facts["form"] = "separable"
            if self.separable_factors is not None:
                step = -1 if self._flip else 1   # as the user wrote the kernel
                facts["separable_vectors"] = [[list(u[::step]), list(v[::step])]
                                              for u, v in self.separable_factors]
        if self.accumulates_positions:
            facts["form"] = "accumulating"
        if self._layer:
            facts.update({
                "in_channels": self._in_channels, "out_channels": self._out_channels,
                "groups": self._groups, "relu": self.relu,
                "bias": list(self.bias) if any(self.bias) else None,
                "scale": list(self.scale) if any(s != 1 for s in self.scale) else None,
                "rounding": self.rounding, "clamp": self.clamp, "pe": self._pe, "simd": self._simd,
                "cycles_per_output": self.fold, "multipliers": self.multipliers,
                "weights": None if self._weights is None or self._kernel is not None
                else "(per channel)",
            })
        return facts

    def __repr__(self):
        if self._weights is not None and self._kernel is None:
            kernel = f"weights shape {_shape(self._weights)}"
        elif self._kernel is not None:
            kernel = f"kernel={[list(r) for r in self._kernel]}"
        else:
            kernel = f"kernel_shape={self._kernel_shape}"
        channels = (f", {self._in_channels}->{self._out_channels} channels, groups={self._groups}"
                    if self._layer else "")
        if self._operation != "conv":
            kernel = f"operation={self._operation!r}, kernel_shape={self._kernel_shape}"
        return (f"ConvSpec({self._width}x{self._height}, {kernel}{channels}, "
                f"stride={self._stride}, padding={self._padding}, dilation={self._dilation}, "
                f"in_bits={self._in_bits}{', signed' if self._in_signed else ''}, "
                f"coeff_bits={self._coeff_bits}, flip={self._flip}, out_bits={self.out_bits}"
                f"{self._border_repr()}"
                f"{f', pixels_per_clock={self._ppc}' if self._ppc > 1 else ''}"
                f"{', separable' if self.separable else ''})")

    def _border_repr(self):
        if self._border == "constant" and not self._border_value:
            return ""
        value = f", border_value={self._border_value}" if self._border_value else ""
        return f", border={self._border!r}{value}"


def _shape(nested):
    shape = []
    while isinstance(nested, tuple):
        shape.append(len(nested))
        nested = nested[0]
    return tuple(shape)
