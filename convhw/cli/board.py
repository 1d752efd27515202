"""``convhw board run``: send a frame to a board, check the result against the golden model.

The spec options must describe the spec the board was built with (``python -m boards.<board>
build`` takes the same options and fills the same defaults); the board rejects any other, and
the message shows both fingerprints. ``--port sim`` runs the board design in the Amaranth
simulator instead of a serial port (small frames only: about 5 000 clock cycles per second).

Exit status: 0 when the result is bit-exact and the trailer is good, 1 when not (or the board
did not answer), 2 for bad options or files.
"""

import json
import sys

import numpy as np

from ..board import protocol
from ..board.accelerator import DEFAULT_TIMEOUT, UARTAccelerator
from ..board.defaults import (BOARD_BAUDS, BOARD_DSPS, add_board_model_arguments,
                              add_board_spec_arguments, board_kernel, board_model_from_args,
                              board_spec_from_args)
from ..board.host import BoardClient, BoardError
from ..board.transport import SimulatedSerial, open_serial
from ..golden import run_spec
from ..images import load_frame, save_frame
from ..errors import CliError

__all__ = ["add_parser", "run", "SIM_PORT"]

#: ``--port`` value that simulates the board; its clock and line rate (4 clocks per bit).
SIM_PORT = "sim"
SIM_CLOCK, SIM_BAUD, SIM_TIMEOUT = 1e6, 250_000, 400e-6


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "board", help="run frames on an FPGA board over its serial port",
        description="Talk to a board built with python -m boards.<board> build.")
    commands = parser.add_subparsers(dest="board_command", metavar="COMMAND", required=True)
    run_parser = commands.add_parser(
        "run", help="send a frame, receive the result, compare with the golden model",
        description="Send one frame to the board, receive the result and compare it bit for bit "
                    "with the golden model. Exit status 0 when bit-exact.")
    run_parser.add_argument("--port", required=True, metavar="PORT",
                            help=f"serial port (/dev/ttyUSB1, COM3, ...), or '{SIM_PORT}' to "
                                 f"simulate the board")
    run_parser.add_argument("--input", required=True, metavar="FILE",
                            help="the frame: a 2-D .npy of integers or a grayscale image, or a "
                                 "(C, H, W) .npy or colour image for a layer; its size gives "
                                 "--width/--height")
    run_parser.add_argument("--output", metavar="FILE",
                            help="write the board's result (.npy exact, (Cout, OH, OW) for a layer; "
                                 ".png a picture)")
    run_parser.add_argument("--board", choices=sorted(BOARD_BAUDS), default="icebreaker",
                            help="which board's default --baud to use (default icebreaker)")
    run_parser.add_argument("--baud", type=int, metavar="B",
                            help="line rate; must be the build's (default: the board's, "
                                 + ", ".join(f"{name} {baud}" for name, baud in
                                             sorted(BOARD_BAUDS.items())) + ")")
    run_parser.add_argument("--timeout", type=float, metavar="SECONDS",
                            help=f"the board's silence timeout, for resynchronizing (default "
                                 f"{DEFAULT_TIMEOUT}; simulated: {SIM_TIMEOUT})")
    run_parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_board_spec_arguments(run_parser)
    add_board_model_arguments(run_parser)
    return parser


def _open(args, spec):
    if args.port == SIM_PORT:
        dut = UARTAccelerator(spec, clk_freq=SIM_CLOCK, baud=SIM_BAUD, timeout=args.timeout)
        return SimulatedSerial(dut, clk_freq=SIM_CLOCK, baud=SIM_BAUD, timeout=0.05)
    baud = args.baud or BOARD_BAUDS[args.board]
    # A read may wait for a whole frame's worth of results at the slowest.
    read_timeout = max(1.0, 4 * args.timeout)
    try:
        return open_serial(args.port, baud, timeout=read_timeout)
    except RuntimeError as error:
        raise CliError(str(error)) from None


def run(args):
    if args.timeout is None:
        args.timeout = SIM_TIMEOUT if args.port == SIM_PORT else DEFAULT_TIMEOUT
    if args.timeout <= 0:
        raise CliError(f"--timeout: must be a positive number of seconds, not {args.timeout}")
    if args.model is not None:
        return run_model(args)
    for option in ("max_multipliers", "folding"):
        if getattr(args, option) is not None:
            raise CliError(f"--{option.replace('_', '-')}: goes with --model")
    try:
        frame = load_frame(args.input)
    except (ValueError, OSError) as error:
        raise CliError(f"--input: {error}")
    if frame.ndim not in (2, 3):
        raise CliError(f"--input: the boards take 2-D frames or (C, H, W) feature maps, not a "
                       f"{frame.ndim}-D array")
    spec = board_spec_from_args(args, frame.shape)
    if spec.is_layer and frame.ndim == 2:
        if spec.in_channels != 1:
            raise CliError(f"--in-channels: {spec.in_channels}, but --input is one channel (a "
                           f"2-D frame of shape {frame.shape})")
        frame = frame[np.newaxis]    # a 2-D array is one channel
    kernel = board_kernel(args, spec)
    lo, hi = spec.pixel_range
    if frame.min() < lo or frame.max() > hi:
        raise CliError(f"--input: pixel values must lie in {lo}..{hi} for --in-bits "
                       f"{spec.in_bits}{' --signed' if spec.in_signed else ''}")
    port = _open(args, spec)
    try:
        client = BoardClient(port, spec, timeout=args.timeout)
        client.resync()
        result = client.run_frame(frame, kernel)
    except BoardError as error:
        print(f"convhw: board error: {error}", file=sys.stderr)
        return 1
    finally:
        port.close()
    expected = run_spec(spec, frame, kernel)
    match = bool(np.array_equal(result.output, expected))
    if args.output:
        try:
            save_frame(args.output, result.output)
        except (OSError, ValueError) as error:
            raise CliError(f"--output: {error}")
    report = {
        "match": match, "status": result.status.name, "in_crc_ok": result.in_crc_ok,
        "out_crc_ok": result.out_crc_ok, "out_shape": list(spec.output_shape),
        "seconds": result.seconds, "pixels_per_second": result.pixels_per_second,
        "bytes_sent": result.bytes_sent, "bytes_received": result.bytes_received,
        "mismatches": int(np.count_nonzero(result.output != expected)),
        "spec_id": f"{protocol.spec_id(spec):08x}",
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"board: {'MATCH' if match else 'MISMATCH'} with the golden model "
              f"({report['mismatches']} of {result.output.size} results differ)")
        print(f"  status {result.status.name}: {result.status.meaning}")
        print(f"  CRC of pixels received: {'ok' if result.in_crc_ok else 'BAD'}, of results "
              f"sent: {'ok' if result.out_crc_ok else 'BAD'}")
        print(f"  {result.seconds:.3f} s, {result.pixels_per_second:,.0f} results/s, "
              f"{result.bytes_sent} bytes sent, {result.bytes_received} received")
    return 0 if match and result.ok else 1


def model_input(network, path):
    """The network's input codes ``(C, H, W)`` for one inference from ``--input``.

    A ``.npy`` holds the model's own input, ``(C, H, W)``, ``(1, C, H, W)`` or, for one
    channel, ``(H, W)``: floats are quantized as the model's QuantizeLinear does, integers are
    codes already. A picture's 8-bit values span the input's codes, ``qmin`` to ``qmax``:
    value ``p`` is code ``qmin + p`` (for ``digits.onnx``, input ``p * 16 / 255``).
    """
    from ..onnx import input_codes

    shape = tuple(network.input_shape)
    if str(path).lower().endswith(".npy"):
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise CliError(f"--input: cannot read {path!r} as a .npy array ({error})")
        if x.ndim == 2 and shape[0] == 1:
            x = x[np.newaxis]
        if x.ndim == 4 and len(x) == 1:
            x = x[0]
        if x.shape != shape:
            raise CliError(f"--input: {path} has shape {x.shape}; the model takes one input "
                           f"of shape {shape} (or (1, {', '.join(map(str, shape))}))")
        try:
            return input_codes(network, x)[0]
        except (TypeError, ValueError) as error:
            raise CliError(f"--input: {error}")
    try:
        picture = load_frame(path)
    except (ValueError, OSError) as error:
        raise CliError(f"--input: {error}")
    if picture.ndim == 2:
        picture = picture[np.newaxis]
    if picture.shape != shape:
        raise CliError(f"--input: the picture is {picture.shape[0]} channel(s) of "
                       f"{picture.shape[2]}x{picture.shape[1]} pixels; the model takes "
                       f"{shape[0]} channel(s) of {shape[2]}x{shape[1]}")
    if picture.min() < 0 or picture.max() > 255:
        raise CliError(f"--input: picture values must be 8-bit (0..255), not "
                       f"{picture.min()}..{picture.max()}")
    return picture + network.input.qmin


def run_model(args):
    """``board run --model``: one inference on the board; the class and the scores."""
    from ..onnx import output_values, run_network

    board_name = getattr(args, "board", "icebreaker")
    network, folding, chain = board_model_from_args(args, board_name, BOARD_DSPS[board_name])
    codes = model_input(network, args.input)
    frame = codes - network.input.zero_point
    if args.port == SIM_PORT:
        dut = UARTAccelerator(chain, clk_freq=SIM_CLOCK, baud=SIM_BAUD, timeout=args.timeout)
        port = SimulatedSerial(dut, clk_freq=SIM_CLOCK, baud=SIM_BAUD, timeout=0.05)
    else:
        port = _open(args, chain)
    try:
        client = BoardClient(port, chain, timeout=args.timeout)
        client.resync()
        result = client.run_frame(frame)
    except BoardError as error:
        print(f"convhw: board error: {error}", file=sys.stderr)
        return 1
    finally:
        port.close()
    got = result.output.reshape(1, -1)
    expected = run_network(network, codes[np.newaxis], codes=True).reshape(1, -1) \
        - network.output.zero_point
    match = bool(np.array_equal(got, expected))
    scores = output_values(network, got)[0].reshape(-1)
    label = int(np.argmax(scores))
    if args.output:
        try:
            np.save(args.output, output_values(network, got)[0])
        except OSError as error:
            raise CliError(f"--output: cannot write {args.output!r}: {error.strerror or error}")
    report = {
        "class": label, "scores": [float(v) for v in scores], "match": match,
        "status": result.status.name, "in_crc_ok": result.in_crc_ok,
        "out_crc_ok": result.out_crc_ok, "seconds": result.seconds,
        "bytes_sent": result.bytes_sent, "bytes_received": result.bytes_received,
        "spec_id": f"{protocol.spec_id(chain):08x}",
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"class {label}")
        print("scores: " + "  ".join(f"{k}: {v:.4g}" for k, v in enumerate(scores)))
        print(f"board: {'MATCH' if match else 'MISMATCH'} with the exact integer reference; "
              f"status {result.status.name}: {result.status.meaning}")
        print(f"  CRC of pixels received: {'ok' if result.in_crc_ok else 'BAD'}, of results "
              f"sent: {'ok' if result.out_crc_ok else 'BAD'}; {result.seconds:.4f} s")
    return 0 if match and result.ok else 1
