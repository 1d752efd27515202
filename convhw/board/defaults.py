"""The spec a board gets when the options leave it open, shared by the build and the host.

Building and running must describe the same spec (the header carries its fingerprint), so both
sides fill the gaps the same way: without ``--kernel`` or ``--runtime-coeffs`` the board takes
runtime-loaded 3x3 coefficients, so one bitstream serves every 3x3 kernel; padding defaults to
``same``; a build without ``--width``/``--height`` is for 128x128 frames (the host takes the
size from its image). ``--weights`` alone gives a layer with those constant weights
(``--runtime-coeffs --weights`` a layer whose weights the host loads with each frame).
"""

from ..errors import CliError
from ..spec_options import add_spec_arguments, runtime_kernel, spec_from_args

__all__ = ["BOARD_BAUDS", "DEFAULT_FRAME", "DEFAULT_KERNEL_SIZE", "DEFAULT_RUNTIME_KERNEL",
           "add_board_spec_arguments", "board_spec_from_args", "board_kernel"]

DEFAULT_FRAME = (128, 128)              # (width, height) of a build without --width/--height
DEFAULT_KERNEL_SIZE = "3x3"
DEFAULT_RUNTIME_KERNEL = "sobel-x"      # what the host loads into a runtime board by default
#: Default line rate per board: what its USB-serial chip makes exactly, >= 4 clocks per bit.
BOARD_BAUDS = {"icebreaker": 2_000_000, "ulx3s": 3_000_000}


def add_board_spec_arguments(parser):
    """The spec options, with ``--padding`` defaulting to ``same``."""
    group = add_spec_arguments(parser)
    parser.set_defaults(padding="same")
    for action in group._group_actions:
        if action.dest == "padding":
            action.help = "zero padding: P, PY,PX or same (default for boards: same)"
    return group


def _fill_kernel(args):
    if getattr(args, "kernel", None) is None and not getattr(args, "runtime_coeffs", False) \
            and getattr(args, "weights", None) is None:
        args.runtime_coeffs = True
        if getattr(args, "kernel_size", None) is None:
            args.kernel_size = DEFAULT_KERNEL_SIZE


def board_spec_from_args(args, frame_shape=None):
    """The board's spec from parsed options (a build passes no ``frame_shape``)."""
    _fill_kernel(args)
    if frame_shape is None:
        if getattr(args, "width", None) is None:
            args.width = DEFAULT_FRAME[0]
        if getattr(args, "height", None) is None:
            args.height = DEFAULT_FRAME[1]
    spec = spec_from_args(args, frame_shape)
    if len(spec.frame_shape) != 2:
        raise CliError("--dims: the boards run the 2-D core; use --dims 2")
    if getattr(spec, "pixels_per_clock", 1) != 1:
        raise CliError(f"--pixels-per-clock: the boards' UART link carries 1 pixel per clock, "
                       f"not {spec.pixels_per_clock}")
    return spec


def board_kernel(args, spec):
    """The coefficients the host loads into a runtime board (``--kernel``, else sobel-x)."""
    if spec.runtime_coeffs and getattr(args, "kernel", None) is None:
        args.kernel = DEFAULT_RUNTIME_KERNEL
    return runtime_kernel(args, spec)
