"""The spec a board gets when the options leave it open, shared by the build and the host.

Building and running must describe the same spec (the header carries its fingerprint), so both
sides fill the gaps the same way: without ``--kernel`` or ``--runtime-coeffs`` the board takes
runtime-loaded 3x3 coefficients, so one bitstream serves every 3x3 kernel; padding defaults to
``same``; a build without ``--width``/``--height`` is for 128x128 frames (the host takes the
size from its image). ``--weights`` alone gives a layer with those constant weights
(``--runtime-coeffs --weights`` a layer whose weights the host loads with each frame).
"""

from ..errors import CliError
from ..model_options import add_folding_arguments, folding_from_args, load_network
from ..spec_options import add_spec_arguments, runtime_kernel, spec_from_args

__all__ = ["BOARD_BAUDS", "BOARD_CLOCKS", "BOARD_DSPS", "line_cycles", "DEFAULT_FRAME", "DEFAULT_KERNEL_SIZE",
           "DEFAULT_RUNTIME_KERNEL", "add_board_spec_arguments", "board_spec_from_args",
           "board_kernel", "add_board_model_arguments", "board_model_from_args"]

DEFAULT_FRAME = (128, 128)              # (width, height) of a build without --width/--height
DEFAULT_KERNEL_SIZE = "3x3"
DEFAULT_RUNTIME_KERNEL = "sobel-x"      # what the host loads into a runtime board by default
#: Default line rate per board: what its USB-serial chip makes exactly, >= 4 clocks per bit.
BOARD_BAUDS = {"icebreaker": 2_000_000, "ulx3s": 3_000_000}
#: DSP blocks per board: the multiplier budget of a network built for it (``--model``).
BOARD_DSPS = {"icebreaker": 8, "ulx3s": 156}
#: Each board's default clock in Hz (its amaranth-boards platform's ``default_clk``).
BOARD_CLOCKS = {"icebreaker": 12e6, "ulx3s": 25e6}


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


#: Spec options a model replaces, with their defaults (``--padding`` defaults to ``same`` here).
_SPEC_OPTIONS = (
    ("width", None), ("height", None), ("dims", None), ("length", None), ("kernel", None),
    ("runtime_coeffs", False), ("kernel_size", None), ("stride", "1"), ("padding", "same"),
    ("dilation", "1"), ("border", "constant"), ("border_value", 0), ("in_bits", 8),
    ("signed", False), ("coeff_bits", None), ("flip", False), ("shift", None),
    ("out_bits", None), ("max_dsps", None), ("weights", None), ("groups", 1), ("bias", None),
    ("relu", False), ("in_channels", None), ("out_channels", None), ("pe", None),
    ("simd", None),
)


def add_board_model_arguments(parser):
    """``--model M.onnx`` (a network instead of the spec options) and its folding options."""
    parser.add_argument("--model", metavar="M.onnx",
                        help="a quantized ONNX model: the whole network behind the UART, one "
                             "frame per inference (instead of the spec options)")
    return add_folding_arguments(parser)


def line_cycles(network, board, baud=None):
    """Clock cycles of ``board`` that one inference's input takes on the line at ``baud``
    (default :data:`BOARD_BAUDS`): 10 bits per byte, ``ceil(C*in_bits/8)`` bytes per pixel."""
    from .protocol import pixel_bytes

    chain = network.chain()
    frame_bytes = chain.width * chain.height * pixel_bytes(chain)
    return int(frame_bytes * 10 * BOARD_CLOCKS[board] // (baud or BOARD_BAUDS[board]))


def board_model_from_args(args, board, dsps=None):
    """``(network, folding, chain)`` for ``--model`` on ``board`` (its name).

    Without ``--max-multipliers`` the network is folded for the fewest multipliers that still
    keep up with the UART (:func:`line_cycles` at ``--baud``), within ``dsps`` (default:
    :data:`BOARD_DSPS`): a faster pipeline would wait for the line in logic cells it costs.
    The links between layers get no register stages and small output queues of wide results
    go into block RAM: a board's clock (12 or 25 MHz) is far below the chain's Fmax, and the
    iCEBreaker cannot spare the cells.
    """
    for name, default in _SPEC_OPTIONS:
        if getattr(args, name, default) != default:
            raise CliError(f"--{name.replace('_', '-')}: not with --model (the model gives "
                           f"every layer)")
    network = load_network(args.model)
    dsps = BOARD_DSPS.get(board) if dsps is None else dsps
    max_cycles = None
    if getattr(args, "max_multipliers", None) is None and board in BOARD_CLOCKS:
        max_cycles = line_cycles(network, board, getattr(args, "baud", None))
    folding = folding_from_args(args, network, default_budget=dsps,
                                default_source=f"the DSP blocks of the {board}",
                                max_cycles=max_cycles)
    try:
        chain = network.chain(folding.foldings, link_registers=False,
                              small_queues_in_block_ram=True)
    except (TypeError, ValueError) as error:
        raise CliError(f"--model: {error}") from None
    return network, folding, chain
