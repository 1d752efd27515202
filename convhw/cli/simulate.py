"""``convhw simulate``: run frames through the cycle-accurate core and compare with the golden model.

Frames: with ``--frames N`` the core gets N frames back to back. Frame 0 is the input; frame
``k`` is the input shifted cyclically by ``k`` rows and ``3*k`` columns (a sequence: by ``3*k``
samples), so consecutive frames differ whenever the input is not uniform. Every output frame is
checked against :func:`convhw.golden.run_spec`, and the frame markers against the output shape.

Pictures: a grayscale picture is one 2-D frame; a colour one (RGB, alpha dropped) is a
``(3, H, W)`` frame that ``--kernel K`` filters channel by channel (the depthwise layer, as
``cv2.filter2D`` does a colour image). ``--output x.png`` writes what
:func:`picture_levels` picks: a filter whose every output channel has a DC gain of exactly 1
(its weights sum to ``2**shift / scale``: identity, a normalised blur, sharpen) writes its
pixels as they are, clipped to the input's range (``0..255`` for 8 bits); any other filter
(edge filters, unnormalised kernels) ``|v|`` stretched from its minimum..maximum to ``0..255``,
one stretch over all three colour channels.

Exit status: 0 when every output is bit-exact (and the streams behaved), 1 when not, 2 for bad
options or files.
"""

import json
import os
import sys

import numpy as np

from ..golden import run_spec
from ..harness import describe_mismatch, simulate
from ..images import IMAGE_SUFFIXES, load_frame, save_frame
from ..errors import CliError, tool_failure
from ..model_options import add_model_arguments, chain_from_args
from .synth import TARGET_NAMES
from ..spec_options import add_spec_arguments, runtime_kernel, spec_from_args

__all__ = ["add_parser", "run", "frame_sequence", "run_and_compare", "picture_levels"]

#: Cycles above which a pysim run earns a hint about the fast backend (about half a minute).
PYSIM_PATIENCE = 300_000


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "simulate", help="simulate a core on an input and compare with the golden model",
        description="Cycle-accurate simulation of the core, compared bit for bit with the golden "
                    "model. Exit status 0 when bit-exact, 1 when not.")
    parser.add_argument("--input", required=True, metavar="FILE",
                        help="2-D .npy integer frame, 3-D (C, H, W) .npy feature map (a layer), "
                             "1-D .npy sequence, or a picture (.png .pgm .ppm .bmp .tif .jpg): "
                             "grayscale is one frame, colour (RGB; alpha dropped) 3 channels "
                             "that --kernel filters each")
    parser.add_argument("--output", metavar="FILE",
                        help=".npy: exact integers (N frames: an N x ... stack); .png etc.: a "
                             "grayscale or (3 channels) colour picture: pixels clipped to the "
                             "input's range when the filter's gain is 1 (normalised blur, "
                             "sharpen), else |v| stretched to 0..255; N frames: FILE-k.png "
                             "for k > 0")
    parser.add_argument("--frames", type=int, default=1, metavar="N",
                        help="frames back to back (frame k: the input shifted by k rows, 3k "
                             "columns); default 1")
    parser.add_argument("--stall", type=float, default=0.0, metavar="P",
                        help="stall probability on both streams, 0 <= P < 1 (default 0)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="stall seed (default 0)")
    parser.add_argument("--vcd", metavar="FILE", help="write a waveform (VCD)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--backend", choices=("pysim", "fast"), default="pysim",
                        help="pysim (default) or fast: a compiled model (Verilator)")
    parser.add_argument("--clock-mhz", type=float, metavar="F",
                        help="--model: report inferences per second at this clock")
    parser.add_argument("--target", choices=TARGET_NAMES,
                        help="--model: synthesize for this part (as convhw synth) and report "
                             "inferences per second at its Fmax; its DSP blocks are the "
                             "multiplier budget")
    add_spec_arguments(parser)
    add_model_arguments(parser)
    return parser


def frame_sequence(frame, count):
    """``count`` frames: ``frame`` shifted cyclically by ``k`` rows and ``3*k`` columns."""
    if frame.ndim == 1:
        return [np.roll(frame, 3 * k) for k in range(count)]
    return [np.roll(frame, (k, 3 * k), axis=(-2, -1)) for k in range(count)]


def _check_range(spec, frame):
    lo, hi = spec.pixel_range
    if frame.min() < lo or frame.max() > hi:
        kind = "signed" if spec.in_signed else "unsigned"
        raise CliError(f"--input: values {frame.min()}..{frame.max()} do not fit --in-bits "
                       f"{spec.in_bits} {kind} ({lo}..{hi}); raise --in-bits"
                       + ("" if spec.in_signed or frame.min() >= 0 else " or pass --signed"))


def run_and_compare(spec, frames, kernel=None, *, stall=0.0, seed=0, vcd=None,
                    backend="pysim"):
    """Simulate ``frames`` and compare with the golden model: ``(result, expected, report)``."""
    from ..gateware import Chain, Conv1d, Conv2d
    if hasattr(spec, "specs"):
        core = Chain(spec)
    else:
        core = Conv1d(spec) if len(spec.frame_shape) == 1 else Conv2d(spec)
    coefficients = None if kernel is None else [kernel]
    if backend == "fast":
        try:
            import convhw.fastsim  # noqa: F401
        except ModuleNotFoundError as error:
            if error.name and error.name.startswith("convhw"):
                raise CliError("--backend fast: the compiled engine (convhw.fastsim) is not part "
                               "of this install")
            raise
    expected = [run_spec(spec, frame, kernel) for frame in frames]
    try:
        result = simulate(core, frames, coefficients=coefficients, in_stall=stall,
                          out_stall=stall, seed=seed, vcd=vcd, backend=backend)
        hung = None
    except TimeoutError as error:
        result, hung = None, str(error)
    except RuntimeError as error:  # the compiled engine failed to build or run
        if type(error) is not RuntimeError:
            raise
        raise tool_failure(error) from None
    mismatches = []
    if result is not None:
        for index, (got, want) in enumerate(zip(result.frames, expected)):
            difference = describe_mismatch(got, want)
            if difference:
                mismatches.append(f"frame {index}: {difference}")
    errors = ([hung] if hung else []) + (list(result.errors) if result else []) + mismatches
    pixels = sum(int(np.prod(frame.shape[-2:])) for frame in frames)
    cycles = result.cycles if result else None
    report = {
        "match": not errors,
        "cycles": cycles,
        "total_cycles": result.total_cycles if result else None,
        "cycles_per_frame": spec.cycles_per_frame,
        "out_shape": list(getattr(spec, "output_shape", spec.out_shape)),
        "in_shape": list(frames[0].shape),
        "frames": len(frames),
        "pixels_per_cycle": round(pixels / cycles, 4) if cycles else None,
        "latency": spec.latency,
        "engine": getattr(result, "engine", backend) if result else backend,
        "stall": stall,
        "seed": seed,
        "errors": errors[:20],
        "spec": spec.to_dict(),
    }
    if getattr(spec, "is_layer", False) and not hasattr(spec, "specs"):
        report.update(in_channels=spec.in_channels, out_channels=spec.out_channels,
                      pe=spec.pe, simd=spec.simd, cycles_per_output=spec.cycles_per_output,
                      multipliers=spec.multipliers)
    return result, expected, report


def picture_levels(spec, kernel=None):
    """``(lo, hi)`` to clip a picture of ``spec``'s output to, or ``None`` to stretch ``|v|``.

    ``spec.pixel_range`` when every output channel has a DC gain of exactly 1: its weights
    (``kernel``, the values loaded into a runtime-coefficient ``spec``) sum to
    ``2**shift / scale``. Such a filter keeps the input's range, so its picture is the filtered
    picture as it is; a bias or ReLU does not change that. Edge filters (gain 0) and other
    gains get the stretch. See :func:`convhw.images.save_frame`.
    """
    weights = kernel if spec.runtime_coeffs else getattr(spec, "weights", None)
    if weights is None:
        weights = spec.kernel
    if weights is None:                     # runtime coefficients whose values are not given
        return None
    stage = getattr(spec, "output_stage", None)
    if stage is None:                       # a 1-D core: one channel, no scale
        shifts, scales = [spec.shift or 0], [1]
    else:
        shifts, scales = stage.shift, stage.scale
    sums = np.asarray(weights, dtype=object).reshape(len(shifts), -1).sum(axis=1)
    if all(total * scale == 1 << shift for total, scale, shift in zip(sums, scales, shifts)):
        return tuple(spec.pixel_range)
    return None


def _write_output(path, frames, levels=None):
    stem, suffix = os.path.splitext(path)
    if suffix.lower() == ".npy":
        save_frame(path, frames[0] if len(frames) == 1 else np.stack(frames))
        return [path]
    written = []
    for index, frame in enumerate(frames):
        target = path if index == 0 else f"{stem}-{index}{suffix}"
        save_frame(target, frame, levels=levels)
        written.append(target)
    return written


def _print_summary(report, spec, written):
    frames, cycles = report["frames"], report["cycles"]
    shape = "x".join(map(str, reversed(report["in_shape"])))
    out = "x".join(map(str, reversed(report["out_shape"])))
    print(f"{frames} frame(s) {shape} -> {out}, engine {report['engine']}, "
          f"stall {report['stall']}")
    if cycles is not None:
        print(f"cycles: {cycles} ({cycles / frames:.1f} per frame; no-stall figure "
              f"{spec.cycles_per_frame} per frame), latency {spec.latency}")
        print(f"pixels per cycle: {report['pixels_per_cycle']}")
    print(f"match: {'yes, bit-exact' if report['match'] else 'NO'}")
    for error in report["errors"]:
        print(f"  {error}", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")


def run(args):
    if getattr(args, "model", None) is not None:
        return run_model(args)
    for option in ("clock_mhz", "target", "max_multipliers", "folding"):
        if getattr(args, option, None) is not None:
            raise CliError(f"--{option.replace('_', '-')}: goes with --model")
    if args.frames < 1:
        raise CliError(f"--frames: must be >= 1, not {args.frames}")
    if not 0 <= args.stall < 1:
        raise CliError(f"--stall: must be a probability from 0 up to (not including) 1, "
                       f"not {args.stall}")
    if args.output:
        suffix = os.path.splitext(args.output)[1].lower()
        if suffix not in (".npy",) + IMAGE_SUFFIXES:
            raise CliError(f"--output: unknown format {suffix or '(no suffix)'!r}; use .npy or "
                           f"an image ({', '.join(IMAGE_SUFFIXES)})")
    try:
        frame = load_frame(args.input)
    except (ValueError, OSError) as error:
        raise CliError(f"--input: {error}")
    spec = spec_from_args(args, frame_shape=frame.shape)
    if getattr(spec, "is_layer", False) and frame.ndim == 2:
        if spec.in_channels != 1:
            raise CliError(f"--in-channels: {spec.in_channels}, but --input is one channel (a "
                           f"2-D frame of shape {frame.shape})")
        frame = frame[np.newaxis]    # a 2-D array is one channel
    if args.output and os.path.splitext(args.output)[1].lower() != ".npy" and \
            getattr(spec, "out_channels", 1) not in (1, 3):
        raise CliError(f"--output: a picture holds one channel (grayscale) or three (RGB), and "
                       f"this layer gives {spec.out_channels}: write .npy")
    _check_range(spec, frame)
    kernel = runtime_kernel(args, spec)
    frames = frame_sequence(frame, args.frames)
    cycles = args.frames * spec.cycles_per_frame if spec.cycles_per_frame else 0
    if args.backend == "pysim" and cycles > PYSIM_PATIENCE:
        print(f"convhw: note: pysim simulates about 10k cycles/s and this needs {cycles} or "
              f"more; --backend fast uses a compiled model", file=sys.stderr, flush=True)
    result, expected, report = run_and_compare(spec, frames, kernel, stall=args.stall,
                                               seed=args.seed, vcd=args.vcd,
                                               backend=args.backend)
    try:
        written = (_write_output(args.output, result.frames, picture_levels(spec, kernel))
                   if args.output and result else [])
    except (OSError, ValueError) as error:
        raise CliError(f"--output: {error}")
    if args.json:
        report["written"] = written
        print(json.dumps(report))
    else:
        _print_summary(report, spec, written)
    return 0 if report["match"] else 1


def _model_input(network, path):
    """``(codes, batched)``: the network's input codes ``(N, C, H, W)`` from ``--input``."""
    from ..onnx import input_codes

    if os.path.splitext(path)[1].lower() != ".npy":
        raise CliError(f"--input: with --model, a .npy array of the model's input (N, C, H, W) "
                       f"or (C, H, W), not {path!r}")
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise CliError(f"--input: cannot read {path!r} as a .npy array ({error})")
    try:
        return input_codes(network, x), x.ndim == 4
    except (ValueError, TypeError) as error:
        raise CliError(f"--input: {error}")


def _clock(args, chain):
    """``(MHz, source)`` to rate inferences at, or ``(None, None)``."""
    if args.clock_mhz is not None:
        if not args.clock_mhz > 0:
            raise CliError(f"--clock-mhz: must be a positive number of MHz, not {args.clock_mhz}")
        return args.clock_mhz, "given"
    if args.target is None:
        return None, None
    from .synth import synthesize_spec
    report = synthesize_spec(chain, args.target).to_dict()
    return report["fmax_mhz"], f"Fmax on {args.target}"


def run_model(args):
    """``simulate --model``: N inferences through the network's chain, back to back."""
    from ..onnx import output_values

    if args.frames != 1:
        raise CliError("--frames: not with --model (the inferences are the input's batch N)")
    if not 0 <= args.stall < 1:
        raise CliError(f"--stall: must be a probability from 0 up to (not including) 1, "
                       f"not {args.stall}")
    if args.output and os.path.splitext(args.output)[1].lower() != ".npy":
        raise CliError(f"--output: with --model, a .npy file (the model's output), not "
                       f"{args.output!r}")
    network, folding, chain = chain_from_args(args)
    codes, batched = _model_input(network, args.input)
    if not len(codes):
        raise CliError("--input: holds no inference (N = 0)")
    frames = list(codes - network.input.zero_point)
    count = len(frames)
    if args.backend == "pysim" and count * chain.cycles_per_frame > PYSIM_PATIENCE:
        print(f"convhw: note: pysim simulates about 10k cycles/s and this needs "
              f"{count * chain.cycles_per_frame} or more; --backend fast uses a compiled model",
              file=sys.stderr, flush=True)
    clock, clock_source = _clock(args, chain)
    result, expected, report = run_and_compare(chain, frames, stall=args.stall, seed=args.seed,
                                               vcd=args.vcd, backend=args.backend)
    written = []
    if result is not None:
        y = output_values(network, np.stack(result.frames))
        if not batched:
            y = y[0]
        if args.output:
            try:
                np.save(args.output, y)
            except OSError as error:
                raise CliError(f"--output: cannot write {args.output!r}: "
                               f"{error.strerror or error}")
            written.append(args.output)
    cycles = report["cycles"]
    per_inference = cycles / count if cycles else None
    report.pop("pixels_per_cycle", None)
    report.update(
        model=args.model, inferences=count, cycles_per_inference=per_inference,
        bottleneck_cycles_per_inference=chain.cycles_per_frame,
        bottleneck_layer=chain.names[chain.bottleneck], multipliers=folding.multipliers,
        folding=folding.to_dict(),
        clock_mhz=clock, clock_source=clock_source,
        inferences_per_second=(round(clock * 1e6 / per_inference, 1)
                               if clock and per_inference else None),
        written=written)
    if args.json:
        print(json.dumps(report))
        return 0 if report["match"] else 1
    print(f"{count} inference(s) {tuple(network.input_shape)} -> "
          f"{tuple(network.output_shape)}, {len(chain)} layers, engine {report['engine']}, "
          f"stall {report['stall']}")
    print("folding: " + ", ".join(
        f"{layer.name} pe={layer.pe} simd={layer.simd}" for layer in folding.layers
        if layer.folding is not None)
        + f" ({folding.multipliers} multipliers, budget {folding.max_multipliers})")
    if cycles is not None:
        print(f"cycles: {cycles} ({per_inference:.1f} per inference back to back; no-stall "
              f"bottleneck {chain.cycles_per_frame} in {chain.names[chain.bottleneck]!r}), "
              f"latency {chain.latency}")
        if clock:
            print(f"inferences per second: {report['inferences_per_second']:.1f} at "
                  f"{clock:g} MHz ({clock_source})")
    print(f"match: {'yes, bit-exact' if report['match'] else 'NO'}")
    for error in report["errors"]:
        print(f"  {error}", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    return 0 if report["match"] else 1
