"""Border modes: what the pixels outside a frame hold (OpenCV's border types).

===============  =====================  ===================  =========================
convhw           OpenCV                 ``np.pad`` mode      padded ``...|abcd|...``
===============  =====================  ===================  =========================
``constant``     ``BORDER_CONSTANT``    ``constant``         ``VV|abcd|VV``
``replicate``    ``BORDER_REPLICATE``   ``edge``             ``aa|abcd|dd``
``reflect``      ``BORDER_REFLECT``     ``symmetric``        ``ba|abcd|dc``
``reflect-101``  ``BORDER_REFLECT_101`` ``reflect``          ``cb|abcd|cb``
===============  =====================  ===================  =========================

The hardware takes a border pixel from the pixels it already holds for the output being
computed: the line buffer's rows and the window's columns, i.e. the kernel's span, ending at the
output's rightmost tap. So a mode allows the padding (per side) for which every mirrored pixel
lies in that span and is reached by a single reflection: :func:`largest_padding`.
:class:`AxisBorder` lists, for the outputs that touch the border on one axis, which span index
each tap reads.
"""

import numbers

__all__ = ["MODES", "NUMPY_MODES", "validate_border", "source_index", "largest_padding",
           "check_border_padding", "AxisBorder"]

MODES = ("constant", "replicate", "reflect", "reflect-101")
#: ``np.pad`` mode of each border mode but ``constant`` (which pads with ``border_value``).
NUMPY_MODES = {"replicate": "edge", "reflect": "symmetric", "reflect-101": "reflect"}


def validate_border(border, border_value, pixel_range):
    """``(border, border_value)`` checked: a known mode, and an integer value that is a pixel
    (so the spec's accumulator range, which covers every pixel, covers the border too)."""
    if not isinstance(border, str):
        raise TypeError(f"'border' must be one of {', '.join(map(repr, MODES))}, "
                        f"not {border!r}")
    if border not in MODES:
        raise ValueError(f"'border' must be one of {', '.join(map(repr, MODES))}, "
                         f"not {border!r}")
    if not isinstance(border_value, numbers.Integral) or isinstance(border_value, bool):
        raise TypeError(f"'border_value' must be an integer, not {border_value!r}")
    border_value = int(border_value)
    lo, hi = pixel_range
    if not lo <= border_value <= hi:
        raise ValueError(f"'border_value' {border_value} must be a pixel value, "
                         f"{lo}..{hi} ('in_bits' and 'in_signed')")
    if border_value and border != "constant":
        raise ValueError(f"'border_value' {border_value} is for 'border' 'constant', "
                         f"not {border!r}")
    return border, border_value


def source_index(border, c, size):
    """The pixel index that padded index ``c`` reads (one reflection at most); ``None`` for a
    ``constant`` border."""
    if 0 <= c < size:
        return c
    if border == "constant":
        return None
    if border == "replicate":
        return 0 if c < 0 else size - 1
    if border == "reflect":
        return -c - 1 if c < 0 else 2 * size - 1 - c
    return -c if c < 0 else 2 * size - 2 - c


def largest_padding(border, size, span, frame="frame size"):
    """``(limit, reason)``: the largest padding on one side of an axis of ``size`` pixels and
    effective kernel size ``span`` that ``border`` allows, and what sets it."""
    window = {"constant": span - 1, "replicate": span - 1, "reflect": span // 2,
              "reflect-101": (span - 1) // 2}[border]
    limit_frame = {"reflect": size, "reflect-101": size - 1}.get(border, window)
    if limit_frame < window:
        return limit_frame, f"a single reflection must stay inside the {frame} of {size}"
    return window, (f"the pixels it repeats must lie within the effective kernel size {span}, "
                    f"which the core holds")


def check_border_padding(border, pads, size, span, sides, frame="frame size"):
    """Raise a one-line ``ValueError`` when a side's padding is more than ``border`` allows."""
    if border == "constant":
        return
    limit, reason = largest_padding(border, size, span, frame)
    for side, p in zip(sides, pads):
        if p > limit:
            raise ValueError(f"'border' {border!r} allows 'padding' at most {limit} on the "
                             f"{side} ({reason}), not {p}")


class AxisBorder:
    """Where each tap reads on one axis, for the outputs whose taps touch the border.

    Output ``o`` covers padded indices ``o*stride + j*dilation`` (tap ``j``), that is pixels
    ``start + j*dilation`` with ``start = o*stride - pad_lo``; the hardware holds pixels
    ``start ... start + span - 1`` (span indices ``0 ... span - 1``) when it computes ``o``.

    Attributes
    ----------
    zone : dict
        ``{o: sources}`` for every output with a tap outside the frame; ``sources[j]`` is the
        span index tap ``j`` reads, ``None`` for a constant border.
    """

    def __init__(self, border, *, size, pad_lo, taps, dilation, stride, outputs):
        self.taps, self.dilation = taps, dilation
        span = dilation * (taps - 1) + 1
        self.zone = {}
        for o in range(outputs):
            start = o * stride - pad_lo
            if start >= 0 and start + span <= size:
                continue
            sources = []
            for j in range(taps):
                c = start + j * dilation
                s = source_index(border, c, size)
                k = None if s is None else s - start
                assert k is None or 0 <= k < span, (border, size, pad_lo, o, j)
                sources.append(k)
            if any(k != j * dilation for j, k in enumerate(sources)):
                self.zone[o] = tuple(sources)

    def choices(self, j):
        """Where tap ``j`` may read: its own span index first, then the others (``None``, a
        constant border, last)."""
        own = j * self.dilation
        others = {sources[j] for sources in self.zone.values()} - {own}
        return [own] + sorted(others, key=lambda k: (k is None, k or 0))

    def uses(self, j, choice):
        """The zone outputs at which tap ``j`` reads ``choice``."""
        return [o for o, sources in self.zone.items() if sources[j] == choice]
