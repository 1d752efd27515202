"""One validated, immutable description of a 1-D convolution accelerator (sequences, FIR filters).

:class:`Conv1dSpec` mirrors :class:`~convhw.spec.ConvSpec` for sequences. Its arithmetic (the
exact accumulator range, rounding, saturation, the adder-tree terms and their depth) is the
arithmetic of one output of a one-row :class:`~convhw.spec.ConvSpec` with kernel ``[kernel]``,
kept as :attr:`Conv1dSpec.row_spec`, so those numbers are derived in one place. The geometry
(``(left, right)`` padding, unbounded sequences) and the schedule are 1-D and live here.

Sequences
---------
A sequence of ``length`` samples is padded with ``left`` and ``right`` border samples (zeros
unless ``border`` says otherwise, :mod:`convhw.border`); output ``ox``
covers padded samples ``ox*stride + j*dilation`` for ``j`` in ``range(K)``. ``length=None`` is an
unbounded stream (FIR filtering): no padding, and output ``ox`` covers samples
``ox*stride + j*dilation`` of the stream for ever.

Schedule
--------
The hardware walks *positions*, one per clock when nothing stalls. Position ``t < length`` takes
sample ``t``; a bounded sequence then runs on without input until its last output (right
padding): ``positions_per_frame`` positions in all. Output ``ox`` is computed at the position of
its rightmost tap, ``output_position(ox) = ox*stride + span - 1 - left``, and is valid
``latency`` cycles later. Left padding overlaps the previous sequence, so it costs no cycles.
"""

import numbers

import numpy as np

from .border import AxisBorder, check_border_padding
from .spec import ConvSpec, validate_positive_int

__all__ = ["Conv1dSpec"]


def _kernel_vector(kernel):
    try:
        array = np.asarray(kernel)
    except ValueError:
        array = None
    if array is None or array.dtype == object or array.ndim != 1:
        raise ValueError(f"'kernel' must be a 1-D array of integers, not {kernel!r}")
    if array.size == 0:
        raise ValueError("'kernel' must have at least one coefficient, not an empty array")
    return array


def _from_row(name, doc=None):
    """A property read from the one-row arithmetic spec."""
    return property(lambda self: getattr(self._row, name),
                    doc=doc or getattr(ConvSpec, name).__doc__)


class Conv1dSpec:
    """A 1-D convolution accelerator: kernel, geometry, number formats and derived values.

    Parameters
    ----------
    length : int or None
        Samples per sequence, or ``None`` for an unbounded stream (no padding allowed).
    kernel : 1-D array of int, optional
        Compile-time coefficients. Leave it out for runtime coefficients.
    kernel_size : int, optional
        ``K`` of a runtime-loadable kernel. Implied by ``kernel`` when that is given.
    stride, dilation : int
        Each ``>= 1``.
    padding : int, (int, int) or "same"
        Zeros at both ends, ``(left, right)``, or ``"same"`` (stride 1 only):
        ``dilation*(K-1)`` in total, the odd one on the right. Each end must be smaller than the
        effective kernel size ``dilation*(K-1)+1``.
    border : "constant", "replicate", "reflect" or "reflect-101"
        What the padding holds (OpenCV's border modes); an unbounded stream has no padding.
    border_value : int
        The sample value of a ``constant`` border (default 0).
    in_bits : int
        Sample width, 1 to 32. ``in_signed`` selects two's complement.
    coeff_bits : int, optional
        Signed coefficient width. Defaults to the smallest width holding ``kernel`` (8 for
        runtime coefficients).
    flip : bool
        ``True`` for mathematical convolution (``numpy.convolve``), ``False`` for
        cross-correlation (``numpy.correlate``, what CNNs call convolution).
    shift, out_bits : int, optional
        Requantize: round half up by ``shift`` bits, then saturate to signed ``out_bits``.
    max_dsps : int, optional
        At most this many runtime-coefficient multipliers use DSP blocks.

    Raises
    ------
    TypeError, ValueError
        With a sentence naming the parameter, its value and what is allowed.
    """

    #: Position issue -> tap line -> masked taps / products. One stage less than 2-D: no line
    #: buffer read.
    FRONT_STAGES = 2
    #: Output FIFO: the same as the 2-D core's.
    FIFO_LATENCY = ConvSpec.FIFO_LATENCY

    def __init__(self, *, length, kernel=None, kernel_size=None, stride=1, padding=0,
                 dilation=1, in_bits=8, in_signed=False, coeff_bits=None, flip=False, shift=None,
                 out_bits=None, max_dsps=None, border="constant", border_value=0):
        self._args = dict(length=length, kernel=kernel, kernel_size=kernel_size, stride=stride,
                          padding=padding, dilation=dilation, in_bits=in_bits,
                          in_signed=in_signed, coeff_bits=coeff_bits, flip=flip, shift=shift,
                          out_bits=out_bits, max_dsps=max_dsps, border=border,
                          border_value=border_value)
        self._length = None if length is None else validate_positive_int("length", length)

        if kernel is None:
            if kernel_size is None:
                raise ValueError("either 'kernel' (coefficients) or 'kernel_size' "
                                 "(runtime coefficients) must be given")
            size = validate_positive_int("kernel_size", kernel_size)
            row_kernel = None
        else:
            row_kernel = [_kernel_vector(kernel)]
            size = len(row_kernel[0])
            if kernel_size is not None and validate_positive_int("kernel_size",
                                                                 kernel_size) != size:
                raise ValueError(f"'kernel_size' {kernel_size!r} does not match the kernel's "
                                 f"length {size}")

        self._stride = validate_positive_int("stride", stride)
        self._dilation = validate_positive_int("dilation", dilation)
        self._span = self._dilation * (size - 1) + 1
        self._padding = self._resolve_padding(padding)

        # One output of a one-row 2-D convolution: only its arithmetic is used.
        self._row = ConvSpec(width=self._span, height=1, kernel=row_kernel,
                             kernel_shape=(1, size), stride=(1, self._stride),
                             dilation=(1, self._dilation), in_bits=in_bits, in_signed=in_signed,
                             coeff_bits=coeff_bits, flip=flip, shift=shift, out_bits=out_bits,
                             max_dsps=max_dsps, border=border, border_value=border_value)

        if self._length is not None and self._length + sum(self._padding) < self._span:
            raise ValueError(
                f"'length' {self._length} is too short for the effective kernel size "
                f"{self._span} (dilation*(K-1)+1) with padding {self._padding}: "
                f"the output would be empty")
        if self._length is not None:
            check_border_padding(self.border, self._padding, self._length, self._span,
                                 ("left", "right"), "sequence length")

    def _resolve_padding(self, padding):
        unbounded = self._length is None
        if isinstance(padding, str):
            if padding != "same":
                raise ValueError(f"'padding' must be an integer, a pair of integers "
                                 f"(left, right) or 'same', not {padding!r}")
            if self._stride != 1:
                raise ValueError(f"'padding'='same' needs 'stride' 1, not {self._stride!r}")
            total = 0 if unbounded else self._span - 1
            pads = (total // 2, total - total // 2)
        elif isinstance(padding, (tuple, list)) and len(padding) == 2:
            pads = tuple(validate_positive_int("padding", p, minimum=0) for p in padding)
        elif isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
            pads = (validate_positive_int("padding", padding, minimum=0),) * 2
        else:
            raise TypeError(f"'padding' must be an integer, a pair of integers "
                            f"(left, right) or 'same', not {padding!r}")
        if unbounded and (pads != (0, 0) or isinstance(padding, str)):
            raise ValueError(f"'padding' must be 0 for an unbounded sequence ('length'=None), "
                             f"not {padding!r}")
        for end, p in zip(("left", "right"), pads):
            if p >= self._span:
                raise ValueError(f"'padding' {p} on the {end} must be smaller than the "
                                 f"effective kernel size {self._span} (dilation*(K-1)+1)")
        return pads

    # --- what the user gave -------------------------------------------------------------------

    length = property(lambda self: self._length, doc="Samples per sequence, ``None`` unbounded.")
    stride = property(lambda self: self._stride)
    dilation = property(lambda self: self._dilation)
    padding = property(lambda self: self._padding, doc="``(left, right)`` padding.")

    @property
    def kernel(self):
        """Coefficients as a tuple, or ``None`` at runtime."""
        return None if self._row.kernel is None else self._row.kernel[0]

    @property
    def kernel_size(self):
        return self._row.kernel_shape[1]

    @property
    def kernel_shape(self):
        """``(K,)``: the shape of the 1-D kernels users pass (also at runtime)."""
        return (self.kernel_size,)

    @property
    def row_spec(self):
        """The one-row :class:`~convhw.spec.ConvSpec` that holds this spec's arithmetic.

        Its geometry (width ``span``, no padding) describes a single output only; use it for
        ``terms``, ``tap_index`` and the coefficient bank, not for shapes or schedules.
        """
        return self._row

    border = _from_row("border", "Border mode (what the padding holds).")
    border_value = _from_row("border_value", "The value of a 'constant' border.")
    border_sources = _from_row("border_sources")
    in_bits = _from_row("in_bits", "Sample width.")
    in_signed = _from_row("in_signed", "Whether samples are two's complement.")
    coeff_bits = _from_row("coeff_bits", "Signed coefficient width.")
    flip = _from_row("flip", "Mathematical convolution (kernel reversed) when ``True``.")
    shift = _from_row("shift", "Rounding shift (0 without requantization).")
    requantize = _from_row("requantize", "Whether ``shift`` or ``out_bits`` was given.")
    out_bits = _from_row("out_bits", "Signed output width.")
    runtime_coeffs = _from_row("runtime_coeffs", "Whether coefficients are loaded at runtime.")
    taps = _from_row("taps", "Kernel taps, ``K``.")
    pixel_range = _from_row("pixel_range", "``(min, max)`` of a sample.")
    acc_range = _from_row("acc_range")
    acc_bits = _from_row("acc_bits", "Two's-complement width of the exact accumulator.")
    rounded_range = _from_row("rounded_range")
    out_range = _from_row("out_range", "``(min, max)`` of an output after saturation.")
    saturates = _from_row("saturates")
    max_dsps = _from_row("max_dsps", "DSP-block budget for runtime coefficients.")
    dsp_taps = _from_row("dsp_taps")
    terms = _from_row("terms")
    tree_depth = _from_row("tree_depth", "Registered levels of the adder tree.")
    back_stages = _from_row("back_stages")
    product_stages = _from_row("product_stages", "1 when DSP products take a stage more.")

    @property
    def border_axis(self):
        """The :class:`~convhw.border.AxisBorder` of a bounded sequence (``None`` unbounded)."""
        if self._length is None:
            return None
        return AxisBorder(self.border, size=self._length, pad_lo=self._padding[0],
                          taps=self.kernel_size, dilation=self._dilation, stride=self._stride,
                          outputs=self.out_length)

    # --- derived geometry -----------------------------------------------------------------------

    @property
    def span(self):
        """Effective kernel size ``dilation*(K-1)+1``."""
        return self._span

    @property
    def frame_shape(self):
        """``(length,)`` of an input sequence (``(None,)`` when unbounded)."""
        return (self._length,)

    @property
    def out_length(self):
        """``floor((length + left + right - span) / stride) + 1``, ``None`` when unbounded."""
        if self._length is None:
            return None
        return (self._length + sum(self._padding) - self._span) // self._stride + 1

    @property
    def out_shape(self):
        """``(out_length,)`` of an output sequence."""
        return (self.out_length,)

    def output_position(self, ox):
        """Stream position (sample index) at which output ``ox`` is computed."""
        return ox * self._stride + self._span - 1 - self._padding[0]

    @property
    def positions_per_frame(self):
        """Positions per sequence: every sample's, then on to the last output's (``None``
        when unbounded)."""
        if self._length is None:
            return None
        return max(self._length, self.output_position(self.out_length - 1) + 1)

    # --- pipeline -------------------------------------------------------------------------------

    @property
    def pipeline_depth(self):
        """Cycles from a position's issue to its result entering the output FIFO."""
        return self.FRONT_STAGES + self.product_stages + self.tree_depth + self.back_stages

    @property
    def latency(self):
        """Cycles from the issue of an output's position to that output being valid."""
        return self.pipeline_depth + self.FIFO_LATENCY

    @property
    def cycles_per_frame(self):
        """Cycles from a sequence's first input to its last output without stalls (``None``
        when unbounded)."""
        if self._length is None:
            return None
        return self.output_position(self.out_length - 1) + self.latency

    def replace(self, **changes):
        """A new spec with some constructor arguments changed (validated again)."""
        return type(self)(**{**self._args, **changes})

    def _key(self):
        return (self._length, self._padding, self._row)

    def __eq__(self, other):
        return isinstance(other, Conv1dSpec) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def to_dict(self):
        """Plain values describing the spec and its derived numbers (for headers and JSON)."""
        row = self._row.to_dict()
        return {
            "length": self._length,
            "kernel": None if self.kernel is None else list(self.kernel),
            "kernel_shape": list(self.kernel_shape), "stride": self._stride,
            "padding": list(self._padding), "dilation": self._dilation,
            **{key: row[key] for key in ("in_bits", "in_signed", "coeff_bits", "flip", "shift",
                                         "out_bits", "acc_bits")},
            "out_shape": list(self.out_shape), "latency": self.latency,
            "cycles_per_frame": self.cycles_per_frame,
            **{key: row[key] for key in ("border", "border_value") if key in row},
        }

    def __repr__(self):
        # The constructor call that builds this spec again (padding and coeff_bits resolved).
        kernel = ({"kernel": list(self.kernel)} if self.kernel is not None
                  else {"kernel_size": self.kernel_size})
        args = {"length": self._length, **kernel, "stride": self._stride,
                "padding": self._padding, "dilation": self._dilation, "in_bits": self.in_bits,
                "in_signed": self.in_signed, "coeff_bits": self.coeff_bits, "flip": self.flip}
        if self.requantize:
            args.update(shift=self.shift, out_bits=self.out_bits)
        if self.max_dsps is not None:
            args.update(max_dsps=self.max_dsps)
        if self.border != "constant" or self.border_value:
            args.update(border=self.border, border_value=self.border_value)
        return f"Conv1dSpec({', '.join(f'{key}={value!r}' for key, value in args.items())})"
