"""The ``--model`` options shared by the commands and board builds that take an ONNX model.

It sits below both :mod:`convhw.cli` and :mod:`convhw.board`, like
:mod:`convhw.spec_options`. :func:`add_folding_arguments` adds ``--max-multipliers`` and
``--folding``; :func:`load_network` reads ``--model``; :func:`folding_from_args` balances the
network's folding (:mod:`convhw.folding`) within the budget: ``--max-multipliers``, else the
DSP blocks of ``--target``, else of :data:`DEFAULT_TARGET`. Every problem is a
:class:`~convhw.errors.CliError` that names the option.

:func:`add_model_arguments` adds ``--model`` and the folding options to ``generate``,
``simulate`` and ``synth``; :func:`chain_from_args` gives the network's
:class:`~convhw.chain.ChainSpec` with the balanced folding.
"""

from .errors import CliError

__all__ = ["DEFAULT_TARGET", "add_folding_arguments", "load_network", "folding_from_args",
           "budget_from_args", "add_model_arguments", "chain_from_args", "fold_to_place",
           "given_folding"]

#: The part whose DSP blocks are the multiplier budget when neither ``--max-multipliers`` nor
#: ``--target`` is given.
DEFAULT_TARGET = "ice40-up5k"


def add_folding_arguments(parser):
    """Add ``--max-multipliers N`` and ``--folding FILE.json``."""
    group = parser.add_argument_group("ONNX model folding")
    group.add_argument("--max-multipliers", type=int, metavar="N",
                       help=f"multiplier budget (pe x simd over all layers; default: the "
                            f"target's DSP blocks, {DEFAULT_TARGET}'s without --target)")
    group.add_argument("--folding", metavar="FILE.json",
                       help='per-layer pe/simd overrides by ONNX node name, e.g. '
                            '{"conv2": {"pe": 4, "simd": 2}}')
    return group


def load_network(path, option="--model"):
    """The :class:`~convhw.onnx.Network` of the quantized ONNX model at ``path``."""
    try:
        from .onnx import read_model
    except ImportError as error:
        raise CliError(f"{option}: reading ONNX models needs the onnx package ({error}); "
                       f"pip install 'convhw[onnx]'") from None
    from google.protobuf.message import DecodeError

    try:
        return read_model(path)
    except OSError as error:
        raise CliError(f"{option}: cannot read {path!r}: {error.strerror or error}") from None
    except DecodeError:
        raise CliError(f"{option}: {path} is not an ONNX model (it does not parse as one)") \
            from None
    except ValueError as error:   # UnsupportedModelError
        raise CliError(f"{option}: {path}: {error}") from None


def budget_from_args(args, default_budget=None, default_source=None):
    """``(max_multipliers, where it comes from)`` from ``--max-multipliers``, else
    ``default_budget`` (a board's DSP blocks), else the target's DSP blocks."""
    from .folding import default_budget as target_budget

    given = getattr(args, "max_multipliers", None)
    if given is not None:
        if given < 1:
            raise CliError(f"--max-multipliers: must be a positive integer, not {given}")
        return given, "--max-multipliers"
    if default_budget is not None:
        return default_budget, default_source or "the default"
    target = getattr(args, "target", None) or DEFAULT_TARGET
    budget = target_budget(target)
    if budget == 0:
        raise CliError(f"--target: {target} has no DSP blocks; give the multiplier budget "
                       f"with --max-multipliers N (multipliers built from logic)")
    source = f"the DSP blocks of {target}" + ("" if getattr(args, "target", None)
                                               else ", the default target")
    return budget, source


def folding_from_args(args, network, default_budget=None, default_source=None,
                      max_cycles=None):
    """The balanced :class:`~convhw.folding.Folding` of ``network`` for these options
    (``default_budget``: see :func:`budget_from_args`; ``max_cycles``: see
    :func:`~convhw.folding.balance`)."""
    from .folding import balance_network, read_overrides

    budget, _ = budget_from_args(args, default_budget, default_source)
    overrides = None
    if getattr(args, "folding", None) is not None:
        try:
            overrides = read_overrides(args.folding)
        except ValueError as error:
            raise CliError(f"--folding: {error}") from None
    try:
        return balance_network(network, max_multipliers=budget, overrides=overrides,
                               max_cycles=max_cycles)
    except ValueError as error:
        message = str(error)
        option = ("--folding" if message.startswith("folding override") else
                  "--max-multipliers" if message.startswith("the layers need") else "--model")
        raise CliError(f"{option}: {message}") from None


#: Spec options that a model replaces: (attribute, default). ``--model`` refuses them.
_MODEL_EXCLUDES = (
    ("width", None), ("height", None), ("dims", None), ("length", None), ("kernel", None),
    ("runtime_coeffs", False), ("kernel_size", None), ("stride", "1"), ("padding", "0"),
    ("dilation", "1"), ("border", "constant"), ("border_value", 0), ("in_bits", 8),
    ("signed", False), ("coeff_bits", None), ("flip", False), ("shift", None),
    ("out_bits", None), ("max_dsps", None), ("weights", None), ("groups", 1), ("bias", None),
    ("relu", False), ("in_channels", None), ("out_channels", None), ("pe", None),
    ("simd", None),
)


def add_model_arguments(parser):
    """Add ``--model`` (a quantized ONNX model instead of the spec options) and the folding
    options (:func:`add_folding_arguments`)."""
    group = parser.add_argument_group("ONNX model")
    group.add_argument("--model", metavar="M.onnx",
                       help="a quantized ONNX model (onnxruntime quantize_static, QDQ or "
                            "QOperator): the whole network as a chain of streaming layers, "
                            "instead of the convolution spec options")
    add_folding_arguments(parser)
    return group


def chain_from_args(args):
    """``(network, folding, chain)`` for ``--model``: the network, its balanced
    :class:`~convhw.folding.Folding` and its :class:`~convhw.chain.ChainSpec`; ``None``
    without ``--model``.

    Raises
    ------
    CliError
        A spec option given with ``--model``, folding options without it, a model that
        cannot be read or built.
    """
    from .spec_options import OPTION_OF

    path = getattr(args, "model", None)
    if path is None:
        for option in ("max_multipliers", "folding"):
            if getattr(args, option, None) is not None:
                raise CliError(f"--{option.replace('_', '-')}: goes with --model")
        return None
    for name, default in _MODEL_EXCLUDES:
        if getattr(args, name, default) != default:
            option = OPTION_OF.get(name, f"--{name.replace('_', '-')}")
            raise CliError(f"{option}: not with --model (the model gives every layer)")
    network = load_network(path)
    folding = folding_from_args(args, network)
    try:
        chain = network.chain(folding.foldings)
    except (ValueError, TypeError) as error:
        raise CliError(f"--model: {path}: {error}") from None
    return network, folding, chain


def given_folding(args):
    """Whether the options fix the folding (``--max-multipliers`` or ``--folding``)."""
    return any(getattr(args, name, None) is not None for name in ("max_multipliers", "folding"))


def fold_to_place(network, folding, target, *, progress=None, build_dir=None):
    """``(folding, note)``: ``folding`` (balanced within ``target``'s DSP blocks), folded
    further, one multiplier at a time, while its packed logic is more than nextpnr places on
    the part (:attr:`~convhw.toolchain.Target.placeable_fraction`); ``note`` says why, or is
    ``None`` when ``folding`` fits. A budget of DSP blocks says nothing about logic: the
    digits network at the UP5K's 8 packs into 88% of its cells, which nextpnr does not place.

    Each step runs Yosys and nextpnr's packer (seconds). Raises as
    :func:`convhw.toolchain.synthesize`.
    """
    import os

    from .folding import balance_network
    from .toolchain import get_target, packed_logic_cells

    target = get_target(target)
    if target.placeable_fraction is None:
        return folding, None
    limit = int(target.placeable_fraction * target.luts)
    first, tried = folding, []
    while True:
        where = None if build_dir is None else os.path.join(build_dir,
                                                             f"pack-{folding.multipliers}")
        used, available = packed_logic_cells(network.chain(folding.foldings), target,
                                             progress=progress, build_dir=where)
        tried.append((folding.multipliers, used))
        if used <= limit:
            break
        try:
            folding = balance_network(network, max_multipliers=folding.multipliers - 1)
        except ValueError:          # already at its most folded: let placement say
            break
    if folding is first:
        return folding, None
    packs = "; ".join(f"{multipliers} multipliers: {used} cells" for multipliers, used in tried)
    return folding, (f"folded for {folding.multipliers} multipliers, not the "
                     f"{first.multipliers} of the DSP budget: nextpnr places at most about "
                     f"{target.placeable_fraction:.0%} of the {target.name}'s {available} "
                     f"logic cells ({packs})")
