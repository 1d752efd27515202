"""One validated, immutable description of a 2-D convolution accelerator.

:class:`ConvSpec` is the single source of truth for every derived number: the output shape, the
accumulator and output widths, the streaming schedule and the pipeline latency. The golden model,
the gateware, the exporters and the CLI all read these values from the spec.

Arithmetic
----------
The accumulator range is exact. For a tap with coefficient ``c`` and pixels in ``[xlo, xhi]`` the
product lies in ``[min(c*xlo, c*xhi), max(c*xlo, c*xhi)]`` (this interval always contains 0, which
is what a padding tap contributes); the accumulator range is the sum of those intervals over all
taps, and ``acc_bits`` is the smallest two's-complement width that holds it. With runtime
coefficients every tap may hold any ``coeff_bits`` value, so each interval spans the four corner
products ``{clo, chi} x {xlo, xhi}``.

Requantization (``shift`` and/or ``out_bits``) computes ``(acc + 2**(shift-1)) >> shift`` with an
arithmetic shift (round half up), then saturates to a signed ``out_bits``. Without ``out_bits``
the output is exactly as wide as the rounded range, so nothing saturates.

Schedule
--------
The hardware walks a stream of *positions*, one per clock when nothing stalls, in rows of
``stream_width``; a frame is ``positions_per_frame`` of them. A position with row ``< height`` and
column ``< width`` consumes one input pixel; the others (bottom padding rows, and the right end
of rows when padding makes output rows longer than input rows) consume nothing.
Output ``(oy, ox)`` is computed at position
``(oy*sy + row_offset) * stream_width + ox*sx + col_offset`` and leaves the core ``latency``
cycles later. Left and right padding overlaps the neighbouring rows, so it costs no cycles.
"""

import math
import numbers

import numpy as np

from .terms import tap_terms, tree_depth

__all__ = ["ConvSpec", "signed_bits", "pair", "validate_positive_int"]


def signed_bits(lo, hi):
    """Smallest two's-complement width holding every integer in ``[lo, hi]``."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def validate_positive_int(name, value, *, minimum=1, maximum=None):
    if not _is_int(value):
        raise TypeError(f"'{name}' must be an integer, not {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ValueError(f"'{name}' must be {allowed}, not {value!r}")
    return int(value)


def pair(name, value, *, minimum=1):
    """Normalise ``n`` or ``(ny, nx)`` to a validated pair of integers."""
    if _is_int(value):
        value = (value, value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise TypeError(f"'{name}' must be an integer or a pair of integers, not {value!r}")
    return tuple(validate_positive_int(name, v, minimum=minimum) for v in value)


def _kernel_array(kernel):
    try:
        array = np.asarray(kernel)
    except ValueError:
        raise ValueError(f"'kernel' must be a rectangular 2-D array of integers, not {kernel!r}")
    huge_ints = array.dtype == object and all(_is_int(v) for v in array.flat)
    if (array.dtype == object and not huge_ints) or array.ndim != 2:
        raise ValueError(f"'kernel' must be a rectangular 2-D array of integers, not {kernel!r}")
    if array.size == 0:
        raise ValueError(f"'kernel' must have at least one row and one column, "
                         f"not shape {array.shape}")
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu" and not huge_ints:
        raise TypeError(f"'kernel' must hold integers, not {array.dtype} values")
    return tuple(tuple(int(v) for v in row) for row in array)


class ConvSpec:
    """A 2-D convolution accelerator: kernel, geometry, number formats and derived values.

    Parameters
    ----------
    width, height : int
        Frame size in pixels.
    kernel : 2-D array of int, optional
        Compile-time coefficients, ``kernel[row][col]``. Leave it out for runtime coefficients.
    kernel_shape : (int, int), optional
        ``(KH, KW)`` of a runtime-loadable kernel. Implied by ``kernel`` when that is given.
    stride, dilation : int or (int, int)
        Per axis ``(y, x)``, each ``>= 1``.
    padding : int, (int, int) or "same"
        Zero padding per axis, or ``"same"`` (stride 1 only): ``D*(K-1)`` in total per axis, the
        odd cell at the bottom/right.
    in_bits : int
        Pixel width, 1 to 32. ``in_signed`` selects two's complement.
    coeff_bits : int, optional
        Signed coefficient width. Defaults to the smallest width holding ``kernel`` (8 for
        runtime coefficients).
    flip : bool
        ``True`` for mathematical convolution (kernel rotated 180 degrees), ``False`` for CNN
        cross-correlation.
    shift, out_bits : int, optional
        Requantize: round half up by ``shift`` bits, then saturate to signed ``out_bits``.
    max_dsps : int, optional
        At most this many runtime-coefficient multipliers use ``*`` (and so DSP blocks); the rest
        are built from logic. ``None`` puts no limit.
    """

    def __init__(self, *, width, height, kernel=None, kernel_shape=None, stride=1, padding=0,
                 dilation=1, in_bits=8, in_signed=False, coeff_bits=None, flip=False, shift=None,
                 out_bits=None, max_dsps=None):
        self._args = dict(width=width, height=height, kernel=kernel, kernel_shape=kernel_shape,
                          stride=stride, padding=padding, dilation=dilation, in_bits=in_bits,
                          in_signed=in_signed, coeff_bits=coeff_bits, flip=flip, shift=shift,
                          out_bits=out_bits, max_dsps=max_dsps)
        self._width = validate_positive_int("width", width)
        self._height = validate_positive_int("height", height)

        if kernel is None:
            if kernel_shape is None:
                raise ValueError("either 'kernel' (coefficients) or 'kernel_shape' "
                                 "(runtime coefficients) must be given")
            self._kernel = None
            self._kernel_shape = pair("kernel_shape", kernel_shape)
        else:
            self._kernel = _kernel_array(kernel)
            shape = (len(self._kernel), len(self._kernel[0]))
            given = None if kernel_shape is None else pair("kernel_shape", kernel_shape)
            if given is not None and given != shape:
                raise ValueError(f"'kernel_shape' {given!r} does not match the "
                                 f"kernel's shape {shape!r}")
            self._kernel_shape = shape

        self._stride = pair("stride", stride)
        self._dilation = pair("dilation", dilation)
        if not isinstance(flip, bool):
            raise TypeError(f"'flip' must be a bool, not {flip!r}")
        self._flip = flip

        self._in_bits = validate_positive_int("in_bits", in_bits, maximum=32)
        if not isinstance(in_signed, bool):
            raise TypeError(f"'in_signed' must be a bool, not {in_signed!r}")
        self._in_signed = in_signed

        if self._kernel is not None:
            flat = [c for row in self._kernel for c in row]
            needed = signed_bits(min(flat), max(flat))
        else:
            needed = 1
        if coeff_bits is None:
            coeff_bits = min(needed, 32) if self._kernel is not None else 8
        self._coeff_bits = validate_positive_int("coeff_bits", coeff_bits, maximum=32)
        if self._kernel is not None and needed > self._coeff_bits:
            lo, hi = -(1 << (self._coeff_bits - 1)), (1 << (self._coeff_bits - 1)) - 1
            bad = next(c for c in flat if not lo <= c <= hi)
            raise ValueError(f"kernel coefficient {bad} does not fit 'coeff_bits'={self._coeff_bits} "
                             f"(signed range {lo}..{hi})")

        self._padding = self._resolve_padding(padding)
        self._max_dsps = None if max_dsps is None else \
            validate_positive_int("max_dsps", max_dsps, minimum=0)

        out_h, out_w = self.out_shape
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"frame {self._width}x{self._height} (width x height) is too small for the "
                f"effective kernel {self.span[1]}x{self.span[0]} with padding "
                f"{self._padding}: the output would be {out_w}x{out_h}")

        self._acc_range = self._accumulator_range()
        if shift is not None:
            shift = validate_positive_int("shift", shift, minimum=0, maximum=64)
        self._shift = shift or 0
        self._requantize = shift is not None or out_bits is not None
        lo, hi = self.rounded_range
        natural = signed_bits(lo, hi)
        if out_bits is None:
            out_bits = natural
        else:
            out_bits = validate_positive_int("out_bits", out_bits, maximum=64)
        self._out_bits = out_bits

    def _resolve_padding(self, padding):
        if isinstance(padding, str):
            if padding != "same":
                raise ValueError(f"'padding' must be an integer, a pair of integers or 'same', "
                                 f"not {padding!r}")
            if self._stride != (1, 1):
                raise ValueError(f"'padding'='same' needs 'stride' 1, not {self._stride!r}")
            spans = self.span
            return tuple(((s - 1) // 2, (s - 1) - (s - 1) // 2) for s in spans)
        py, px = pair("padding", padding, minimum=0)
        for axis, p, s in (("y", py, self.span[0]), ("x", px, self.span[1])):
            if p >= s:
                raise ValueError(f"'padding' {p} on axis {axis} must be smaller than the "
                                 f"effective kernel size {s} (dilation*(K-1)+1)")
        return ((py, py), (px, px))

    def _accumulator_range(self):
        xlo, xhi = self.pixel_range
        if self._kernel is not None:
            coeffs = [(c, c) for row in self._kernel for c in row]
        else:
            cb = self._coeff_bits
            coeffs = [(-(1 << (cb - 1)), (1 << (cb - 1)) - 1)] * self.taps
        lo = hi = 0
        for clo, chi in coeffs:
            corners = [clo * xlo, clo * xhi, chi * xlo, chi * xhi]
            lo += min(corners)
            hi += max(corners)
        return lo, hi

    # --- what the user gave -------------------------------------------------------------------

    width = property(lambda self: self._width)
    height = property(lambda self: self._height)
    kernel = property(lambda self: self._kernel, doc="Coefficients, or ``None`` at runtime.")
    kernel_shape = property(lambda self: self._kernel_shape, doc="``(KH, KW)``.")
    stride = property(lambda self: self._stride, doc="``(sy, sx)``.")
    dilation = property(lambda self: self._dilation, doc="``(dy, dx)``.")
    padding = property(lambda self: self._padding,
                       doc="``((top, bottom), (left, right))`` zero padding.")
    in_bits = property(lambda self: self._in_bits)
    in_signed = property(lambda self: self._in_signed)
    coeff_bits = property(lambda self: self._coeff_bits)
    flip = property(lambda self: self._flip)
    shift = property(lambda self: self._shift)
    requantize = property(lambda self: self._requantize)
    out_bits = property(lambda self: self._out_bits, doc="Signed output width.")
    max_dsps = property(lambda self: self._max_dsps)

    @property
    def runtime_coeffs(self):
        return self._kernel is None

    @property
    def frame_shape(self):
        """``(height, width)`` of an input frame, NumPy order."""
        return (self._height, self._width)

    # --- derived ------------------------------------------------------------------------------

    @property
    def taps(self):
        return self._kernel_shape[0] * self._kernel_shape[1]

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
    def acc_range(self):
        """Exact ``(min, max)`` of the full-precision accumulator."""
        return self._acc_range

    @property
    def acc_bits(self):
        return signed_bits(*self._acc_range)

    @property
    def rounded_range(self):
        """Accumulator range after rounding by ``shift``, before saturation."""
        lo, hi = self._acc_range
        half = (1 << self._shift) >> 1
        return ((lo + half) >> self._shift, (hi + half) >> self._shift)

    @property
    def out_range(self):
        lo, hi = -(1 << (self._out_bits - 1)), (1 << (self._out_bits - 1)) - 1
        rlo, rhi = self.rounded_range
        return (max(lo, rlo), min(hi, rhi))

    @property
    def saturates(self):
        """Whether some accumulator value falls outside the signed ``out_bits`` range."""
        return self.out_range != self.rounded_range

    @property
    def hw_kernel(self):
        """Coefficients in tap order (rotated when ``flip``), or ``None`` at runtime."""
        if self._kernel is None:
            return None
        k = np.array(self._kernel, dtype=object)
        if self._flip:
            k = k[::-1, ::-1]
        return tuple(tuple(int(v) for v in row) for row in k)

    def tap_index(self, addr):
        """The ``(row, col)`` tap that runtime coefficient ``addr`` (row-major) drives."""
        kh, kw = self._kernel_shape
        row, col = divmod(addr, kw)
        return (kh - 1 - row, kw - 1 - col) if self._flip else (row, col)

    @property
    def dsp_taps(self):
        """How many runtime-coefficient taps multiply with ``*`` (DSP blocks)."""
        if self._kernel is not None:
            return 0
        return self.taps if self._max_dsps is None else min(self.taps, self._max_dsps)

    @property
    def terms(self):
        """Adder-tree inputs, ``(tap_row, tap_col, kind, shift, negative)`` each."""
        kh, kw = self._kernel_shape
        result = []
        for index in range(kh * kw):
            row, col = divmod(index, kw)
            coeff = None if self._kernel is None else self.hw_kernel[row][col]
            for kind, shift, negative in tap_terms(coeff, self._coeff_bits,
                                                   use_dsp=index < self.dsp_taps):
                result.append((row, col, kind, shift, negative))
        return result

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
        """Positions per stream row: ``width``, longer only when an output row needs more."""
        out_w = self.out_shape[1]
        return max(self._width, (out_w - 1) * self._stride[1] + 1)

    @property
    def positions_per_frame(self):
        """Positions per frame: every input pixel's, then on to the last output's."""
        out_h, out_w = self.out_shape
        return max(self._height * self.stream_width, self.output_position(out_h - 1, out_w - 1) + 1)

    def output_position(self, oy, ox):
        """Stream position at which output ``(oy, ox)`` is computed."""
        return ((oy * self._stride[0] + self.row_offset) * self.stream_width
                + ox * self._stride[1] + self.col_offset)

    # --- pipeline -------------------------------------------------------------------------------

    #: Position issue -> line-buffer read -> window -> masked taps / products.
    FRONT_STAGES = 3
    #: Output FIFO: cycles from its write to the data being valid on the output stream.
    FIFO_LATENCY = 2

    @property
    def tree_depth(self):
        return tree_depth(len(self.terms))

    @property
    def back_stages(self):
        """Rounding stage, plus a saturation stage when saturation can happen."""
        return 1 + int(self.saturates)

    @property
    def product_stages(self):
        """1 when DSP products take a stage more (multiplier input registers), else 0."""
        return int(self.dsp_taps > 0)

    @property
    def pipeline_depth(self):
        """Cycles from a position's issue to its result entering the output FIFO."""
        return self.FRONT_STAGES + self.product_stages + self.tree_depth + self.back_stages

    @property
    def latency(self):
        """Cycles from the issue of an output's position to that output being valid.

        The position is issued in the cycle its input pixel is accepted (or, for positions
        without input, as soon as the previous one has gone).
        """
        return self.pipeline_depth + self.FIFO_LATENCY

    @property
    def cycles_per_frame(self):
        """Cycles from a frame's first input to its last output, without stalls."""
        out_h, out_w = self.out_shape
        return self.output_position(out_h - 1, out_w - 1) + self.latency

    def replace(self, **changes):
        """A new spec with some constructor arguments changed (validated again)."""
        return type(self)(**{**self._args, **changes})

    def __eq__(self, other):
        return isinstance(other, ConvSpec) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def _key(self):
        return (self._width, self._height, self._kernel, self._kernel_shape, self._stride,
                self._padding, self._dilation, self._in_bits, self._in_signed, self._coeff_bits,
                self._flip, self._shift, self._requantize, self._out_bits, self._max_dsps)

    def to_dict(self):
        """Plain values describing the spec and its derived numbers (for headers and JSON)."""
        return {
            "width": self._width, "height": self._height,
            "kernel": None if self._kernel is None else [list(r) for r in self._kernel],
            "kernel_shape": list(self._kernel_shape), "stride": list(self._stride),
            "padding": [list(p) for p in self._padding], "dilation": list(self._dilation),
            "in_bits": self._in_bits, "in_signed": self._in_signed,
            "coeff_bits": self._coeff_bits, "flip": self._flip,
            "shift": self._shift if self._requantize else None,
            "out_bits": self._out_bits, "acc_bits": self.acc_bits,
            "out_shape": list(self.out_shape), "latency": self.latency,
            "cycles_per_frame": self.cycles_per_frame,
        }

    def __repr__(self):
        kernel = (f"kernel={[list(r) for r in self._kernel]}" if self._kernel is not None
                  else f"kernel_shape={self._kernel_shape}")
        return (f"ConvSpec({self._width}x{self._height}, {kernel}, stride={self._stride}, "
                f"padding={self._padding}, dilation={self._dilation}, in_bits={self._in_bits}"
                f"{', signed' if self._in_signed else ''}, coeff_bits={self._coeff_bits}, "
                f"flip={self._flip}, out_bits={self._out_bits})")
