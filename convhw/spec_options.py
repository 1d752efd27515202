"""The spec options shared by every command that builds a core and by the board builds.

It sits below both :mod:`convhw.cli` and :mod:`convhw.board`, which import it.

:func:`add_spec_arguments` adds them to a parser; :func:`spec_from_args` turns the parsed values
into a :class:`~convhw.spec.ConvSpec` or :class:`~convhw.spec1d.Conv1dSpec`, and every problem
into a :class:`~convhw.errors.CliError` that names the option.
"""

import argparse
import re

import numpy as np

from .border import MODES as BORDER_MODES
from .kernels import kernel_names, parse_kernel
from .spec import ConvSpec
from .spec1d import Conv1dSpec
from .errors import CliError

__all__ = ["add_spec_arguments", "spec_from_args", "runtime_kernel"]

#: Spec parameter (as named in ConvSpec/Conv1dSpec errors) -> the option that sets it.
OPTION_OF = {
    "width": "--width", "height": "--height", "length": "--length", "kernel": "--kernel",
    "kernel_shape": "--kernel-size", "kernel_size": "--kernel-size", "stride": "--stride",
    "padding": "--padding", "dilation": "--dilation", "in_bits": "--in-bits",
    "in_signed": "--signed", "coeff_bits": "--coeff-bits", "flip": "--flip", "shift": "--shift",
    "out_bits": "--out-bits", "max_dsps": "--max-dsps", "weights": "--weights",
    "groups": "--groups", "bias": "--bias", "relu": "--relu", "in_channels": "--in-channels",
    "out_channels": "--out-channels", "pe": "--pe", "simd": "--simd", "border": "--border",
    "border_value": "--border-value", "pixels_per_clock": "--pixels-per-clock",
    "separable": "--separable",
}


def add_spec_arguments(parser):
    """Add the spec options (issue #3's table, plus ``--dims``, ``--length``, ``--max-dsps``)."""
    group = parser.add_argument_group("convolution spec")
    group.add_argument("--width", type=int, metavar="W",
                       help="frame width (simulate: taken from the input when omitted)")
    group.add_argument("--height", type=int, metavar="H",
                       help="frame height (simulate: taken from the input when omitted)")
    group.add_argument("--dims", type=int, choices=(1, 2), default=None,
                       help="2 for frames (default), 1 for sequences; a 1-D .npy input implies 1")
    group.add_argument("--length", type=int, metavar="N",
                       help="1-D sequence length; omitted with --dims 1: an unbounded stream")
    group.add_argument("--kernel", metavar="K",
                       help=f"coefficients: a name ({kernel_names()}), a .npy or text file, or "
                            f"inline rows '1,2,1;0,0,0;-1,-2,-1'")
    group.add_argument("--runtime-coeffs", action="store_true",
                       help="load coefficients at run time through the coef port")
    group.add_argument("--kernel-size", metavar="KHxKW",
                       help="kernel shape for --runtime-coeffs, e.g. 3x3 (1-D: K)")
    group.add_argument("--stride", default="1", metavar="S|SY,SX", help="stride (default 1)")
    group.add_argument("--padding", default="0", metavar="P|PY,PX|same",
                       help="zero padding (default 0); 1-D: P, LEFT,RIGHT or same")
    group.add_argument("--dilation", default="1", metavar="D|DY,DX", help="dilation (default 1)")
    group.add_argument("--border", choices=BORDER_MODES, default="constant",
                       help="what the padding holds, as OpenCV's border modes (default constant)")
    group.add_argument("--border-value", type=int, default=0, metavar="V",
                       help="the pixel value of a constant border (default 0)")
    group.add_argument("--separable", action=argparse.BooleanOptionalAction, default=None,
                       help="build a kernel that is an outer product of two integer vectors as "
                            "a vertical then a horizontal 1-D pass (default: automatic for "
                            "constant kernels; --separable requires it, and with "
                            "--runtime-coeffs loads the two vectors)")
    group.add_argument("--in-bits", type=int, default=8, metavar="N",
                       help="input pixel width (default 8)")
    group.add_argument("--signed", action="store_true", help="two's-complement input pixels")
    group.add_argument("--coeff-bits", type=int, metavar="N",
                       help="coefficient width (default: the smallest that holds the kernel; "
                            "8 for --runtime-coeffs)")
    group.add_argument("--flip", action="store_true",
                       help="mathematical convolution (default: CNN cross-correlation)")
    group.add_argument("--shift", type=int, metavar="N",
                       help="requantize: round half up by N bits")
    group.add_argument("--out-bits", type=int, metavar="N",
                       help="requantize: saturate to signed N bits (default: full precision)")
    group.add_argument("--max-dsps", type=int, metavar="N",
                       help="runtime coefficients: at most N multipliers in DSP blocks, the rest "
                            "in logic")
    group.add_argument("--pixels-per-clock", type=int, default=1, metavar="N",
                       help="pixels per input beat and outputs per output beat: 1, 2, 4 or 8 "
                            "(default 1; N > 1 needs stride 1 and a width multiple of N)")
    layer = parser.add_argument_group("CNN layer (multi-channel)")
    layer.add_argument("--weights", metavar="FILE.npy",
                       help="layer weights (Cout, Cin/groups, KH, KW) integers; not with --kernel "
                            "(with --runtime-coeffs: the values to load)")
    layer.add_argument("--groups", type=int, default=1, metavar="G",
                       help="grouped convolution (default 1; groups = Cin = Cout: depthwise)")
    layer.add_argument("--bias", metavar="FILE.npy", help="(Cout,) integers added to each "
                                                           "output channel")
    layer.add_argument("--relu", action="store_true",
                       help="ReLU after the bias, before requantization")
    layer.add_argument("--in-channels", type=int, metavar="C",
                       help="input channels (with --kernel: the kernel on each channel; with "
                            "--runtime-coeffs: a layer with runtime weights)")
    layer.add_argument("--out-channels", type=int, metavar="C",
                       help="output channels of a runtime-weight layer (default: --in-channels)")
    layer.add_argument("--pe", type=int, metavar="N",
                       help="folding: output channels computed in parallel (default all)")
    layer.add_argument("--simd", type=int, metavar="N",
                       help="folding: products per output channel per cycle (default all "
                            "KH*KW*Cin/groups)")
    return group


def _integer_file(option, path, ndim, what):
    """An integer array of ``ndim`` dimensions from a ``.npy`` file, or a CliError."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise CliError(f"{option}: cannot read {path!r} as a .npy array ({error})")
    if array.ndim != ndim:
        raise CliError(f"{option}: {path} must hold {what}, not a {array.ndim}-D array of "
                       f"shape {array.shape}")
    if array.dtype.kind not in "iu":
        if array.dtype.kind == "f" and np.all(np.isfinite(array)) \
                and np.all(array == np.round(array)):
            return array.astype(np.int64)
        raise CliError(f"{option}: {path} must hold integers, not {array.dtype} values "
                       f"(shape {array.shape})")
    return array.astype(np.int64)


def _layer_arguments(args, frame_channels, runtime):
    """The layer arguments of ConvSpec (weights or channel counts, groups, bias, ReLU, folding)
    from the options and the input's channel count (``None`` without an input)."""
    weights_path = getattr(args, "weights", None)
    layer = {}
    if weights_path is not None:
        if getattr(args, "kernel", None) is not None:
            raise CliError("--weights: not with --kernel (--kernel is one 2-D kernel; --weights "
                           "a layer's (Cout, Cin/groups, KH, KW) weights)")
        weights = _integer_file("--weights", weights_path, 4,
                                "(Cout, Cin/groups, KH, KW) weights")
        groups = getattr(args, "groups", 1)
        cin = weights.shape[1] * groups
        for option, given, actual in (("--in-channels", getattr(args, "in_channels", None), cin),
                                      ("--out-channels", getattr(args, "out_channels", None),
                                       weights.shape[0])):
            if given is not None and given != actual:
                raise CliError(f"{option}: {given} does not match --weights of shape "
                               f"{weights.shape} with --groups {groups} ({actual})")
        if frame_channels is not None and frame_channels != cin:
            raise CliError(f"--input: has {frame_channels} channel(s) but --weights of shape "
                           f"{weights.shape} with --groups {groups} take {cin}")
        if runtime:
            layer.update(kernel_shape=weights.shape[2:], in_channels=cin,
                         out_channels=weights.shape[0])
        else:
            layer["weights"] = weights
    else:
        cin = getattr(args, "in_channels", None)
        if frame_channels is not None:
            if cin is not None and cin != frame_channels:
                raise CliError(f"--in-channels: {cin} does not match the input's "
                               f"{frame_channels} channels")
            cin = frame_channels
        if cin is not None:
            layer["in_channels"] = cin
        if getattr(args, "out_channels", None) is not None:
            if not runtime:
                raise CliError("--out-channels: takes --runtime-coeffs (or use --weights); "
                               "--kernel filters each input channel")
            layer["out_channels"] = args.out_channels
    if getattr(args, "groups", 1) != 1:
        layer["groups"] = args.groups
    if getattr(args, "bias", None) is not None:
        layer["bias"] = _integer_file("--bias", args.bias, 1, "(Cout,) integers").tolist()
    for name in ("relu",):
        if getattr(args, name, False):
            layer[name] = True
    for name in ("pe", "simd"):
        if getattr(args, name, None) is not None:
            layer[name] = getattr(args, name)
    return layer


def _ints(option, text, *, count):
    """``"3"`` or ``"3,4"`` as a tuple of 1 or ``count`` integers."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) not in {1, count}:
        allowed = "an integer" if count == 1 else "an integer or two separated by a comma"
        raise CliError(f"{option}: expected {allowed}, not {text!r}")
    return values


def _axis_pair(option, text):
    values = _ints(option, text, count=2)
    return values[0] if len(values) == 1 else values


def _kernel_size(text, dims):
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", str(text))
    if not match:
        raise CliError(f"--kernel-size: expected KHxKW such as 3x3 (or K), not {text!r}")
    kh, kw = int(match[1]), int(match[2] or match[1])
    if dims == 1:
        if match[2] is not None and kh != 1:
            raise CliError(f"--kernel-size: a 1-D kernel has one row (K or 1xK), not {text!r}")
        return int(match[2] or match[1])
    return (kh, kw)


def _parse_kernel(args, dims):
    try:
        kernel = parse_kernel(args.kernel)
    except (ValueError, TypeError) as error:
        raise CliError(f"--kernel: {error}")
    if dims == 1:
        if kernel.shape[0] != 1:
            raise CliError(f"--kernel: a 1-D kernel needs a single row such as '1,2,1', not "
                           f"shape {kernel.shape[0]}x{kernel.shape[1]}")
        return kernel[0]
    return kernel


def _spec_error(error):
    """A CliError naming the option behind a ConvSpec/Conv1dSpec error."""
    message = str(error)
    if message.startswith("frame ") and "too small" in message:
        return CliError(f"--width/--height: {message}")
    for name in re.findall(r"'(\w+)'", message):
        if name in OPTION_OF:
            return CliError(f"{OPTION_OF[name]}: {message}")
    return CliError(f"invalid spec: {message}")


def _geometry(args, dims, frame_shape):
    """``{"width":..., "height":...}`` or ``{"length":...}`` from the options and the input."""
    width, height, length = (getattr(args, name, None) for name in ("width", "height", "length"))
    if dims == 1:
        if width is not None or height is not None:
            raise CliError("--width/--height: describe 2-D frames; with --dims 1 use --length")
        if frame_shape is not None:
            if length is not None and length != frame_shape[0]:
                raise CliError(f"--length: {length} does not match the input's length "
                               f"{frame_shape[0]}")
            length = frame_shape[0]
        return {"length": length}
    if length is not None:
        raise CliError("--length: describes 1-D sequences; pass --dims 1 (or use --width/--height)")
    if frame_shape is not None:
        for option, given, actual in (("--width", width, frame_shape[1]),
                                      ("--height", height, frame_shape[0])):
            if given is not None and given != actual:
                raise CliError(f"{option}: {given} does not match the input's {option[2:]} "
                               f"{actual}")
        height, width = frame_shape
    if width is None or height is None:
        raise CliError("--width and --height are required" +
                       (" (simulate takes them from --input)" if frame_shape is None else ""))
    return {"width": width, "height": height}


def spec_from_args(args, frame_shape=None):
    """A ``ConvSpec`` (or ``Conv1dSpec``) from parsed spec options.

    ``frame_shape`` is the shape of an input frame, when there is one: its size fills in missing
    ``--width``/``--height``/``--length``, and a 1-D shape selects the 1-D core.

    Raises
    ------
    CliError
        Naming the option at fault.
    """
    dims = getattr(args, "dims", None)
    if frame_shape is not None:
        if len(frame_shape) == 3 and dims in (None, 2):
            dims = 2
        elif dims is not None and dims != len(frame_shape):
            raise CliError(f"--dims {dims}: the input is {len(frame_shape)}-D "
                           f"(shape {tuple(frame_shape)})")
        else:
            dims = len(frame_shape)
    dims = dims or 2
    frame_channels = None
    if frame_shape is not None and len(frame_shape) == 3:
        frame_channels, frame_shape = frame_shape[0], tuple(frame_shape[1:])
    geometry = _geometry(args, dims, frame_shape)

    runtime = getattr(args, "runtime_coeffs", False)
    layer = _layer_arguments(args, frame_channels, runtime)
    if dims == 1 and layer:
        raise CliError(f"--{next(iter(layer)).replace('_', '-')}: layer options describe "
                       f"2-D feature maps, not --dims 1 sequences")
    kernel = _parse_kernel(args, dims) if getattr(args, "kernel", None) is not None else None
    size_text = getattr(args, "kernel_size", None)
    size = _kernel_size(size_text, dims) if size_text is not None else None
    shape_of_kernel = None if kernel is None else (len(kernel) if dims == 1 else kernel.shape)
    if size is not None and shape_of_kernel is not None and tuple(np.atleast_1d(size)) != \
            tuple(np.atleast_1d(shape_of_kernel)):
        raise CliError(f"--kernel-size: {size_text} does not match the --kernel's shape "
                       f"{'x'.join(map(str, np.atleast_1d(shape_of_kernel)))}")
    if "kernel_shape" in layer:   # runtime weights from --weights
        kernel_args = {}
    elif runtime:
        size = size if size is not None else shape_of_kernel
        if size is None:
            raise CliError("--runtime-coeffs: needs --kernel-size KHxKW (or a --kernel to take "
                           "the shape from)")
        kernel_args = ({"kernel_size": size} if dims == 1
                       else {"kernel_shape": tuple(size)})
        if kernel is not None and layer.get("in_channels", 1) > 1 and \
                "out_channels" not in layer and "groups" not in layer:
            # --kernel values for every channel: one kernel per channel, depthwise.
            layer["groups"] = layer["in_channels"]
    elif "weights" in layer:
        kernel_args = {}
    else:
        if kernel is None:
            raise CliError(f"--kernel: required (a name such as sobel-x, a file, or inline rows "
                           f"'1,2,1;0,0,0;-1,-2,-1'), or use --runtime-coeffs --kernel-size KHxKW")
        kernel_args = {"kernel": kernel}

    padding = str(getattr(args, "padding", "0")).strip()
    common = dict(
        stride=_axis_pair("--stride", getattr(args, "stride", "1")),
        padding="same" if padding.lower() == "same" else _axis_pair("--padding", padding),
        dilation=_axis_pair("--dilation", getattr(args, "dilation", "1")),
        in_bits=getattr(args, "in_bits", 8), in_signed=bool(getattr(args, "signed", False)),
        coeff_bits=getattr(args, "coeff_bits", None), flip=bool(getattr(args, "flip", False)),
        shift=getattr(args, "shift", None), out_bits=getattr(args, "out_bits", None),
        max_dsps=getattr(args, "max_dsps", None),
        border=getattr(args, "border", "constant"), border_value=getattr(args, "border_value", 0),
    )
    separable = getattr(args, "separable", None)
    if separable is not None:
        if dims == 1:
            raise CliError(f"--{'' if separable else 'no-'}separable: a 1-D core has one row; "
                           f"the option is for 2-D kernels")
        common["separable"] = separable
    lanes = getattr(args, "pixels_per_clock", 1)
    try:
        if dims == 1:
            for option in ("stride", "dilation"):
                if isinstance(common[option], tuple):
                    raise CliError(f"--{option}: a 1-D core takes one integer, not "
                                   f"{getattr(args, option)!r}")
            if lanes != 1:
                raise CliError(f"--pixels-per-clock: a 1-D core takes 1 sample per clock, "
                               f"not {lanes}")
            return Conv1dSpec(**geometry, **kernel_args, **common)
        return ConvSpec(**geometry, **kernel_args, **layer, **common, pixels_per_clock=lanes)
    except (ValueError, TypeError) as error:
        raise _spec_error(error) from None


def runtime_kernel(args, spec):
    """The coefficients to load into a runtime-coefficient ``spec`` (``--kernel``, or a layer's
    ``--weights``), checked against the spec and ``--coeff-bits``; ``None`` for a
    constant-coefficient spec."""
    if not spec.runtime_coeffs:
        return None
    layer = getattr(spec, "is_layer", False)
    if getattr(args, "weights", None) is not None:
        kernel = _integer_file("--weights", args.weights, 4, "(Cout, Cin/groups, KH, KW) weights")
        option = "--weights"
    elif getattr(args, "kernel", None) is None:
        raise CliError("--kernel: required with --runtime-coeffs here: it gives the coefficient "
                       "values to load" + (" (or --weights for a layer)" if layer else ""))
    else:
        kernel, option = _parse_kernel(args, len(spec.frame_shape)), "--kernel"
        if layer:
            expected = (spec.out_channels, spec.group_in_channels)
            if expected != (spec.in_channels, 1):
                raise CliError(f"--kernel: one 2-D kernel loads a depthwise layer only; this "
                               f"layer takes (Cout, Cin/groups, KH, KW) = "
                               f"{(*expected, *spec.kernel_shape)} weights: use --weights")
            kernel = np.broadcast_to(kernel, (*expected, *kernel.shape)).copy()
    if getattr(spec, "separable", False):
        from .stimulus import separable_writes
        try:
            separable_writes(spec, kernel)
        except ValueError as error:
            raise CliError(f"{option}: {error} (--separable --runtime-coeffs)") from None
        return kernel
    lo, hi = -(1 << (spec.coeff_bits - 1)), (1 << (spec.coeff_bits - 1)) - 1
    bad = [int(v) for v in np.ravel(kernel) if not lo <= v <= hi]
    if bad:
        raise CliError(f"{option}: coefficient {bad[0]} does not fit --coeff-bits "
                       f"{spec.coeff_bits} (signed range {lo}..{hi})")
    return kernel

