"""Per-layer folding that balances a streaming pipeline within a multiplier budget.

A chain of layers streams frames back to back, so it delivers one inference every ``T``
cycles, where ``T`` is the largest :attr:`~convhw.spec.ConvSpec.frame_interval` of its layers:
the bottleneck. :func:`balance` chooses ``pe`` and ``simd`` for every conv and dense layer
(FINN's SetFolding idea) for the smallest ``T`` whose layers together use at most
``max_multipliers`` multipliers (``pe * simd`` each), and at that ``T`` the fewest multipliers:
each layer is folded as far as it can be without becoming slower than the bottleneck.

It is exact, not greedy. A layer's candidates are the foldings that no other beats on both
counts (for each ``ceil(Cout/pe)`` the smallest ``pe``, likewise ``simd``); for a target ``T``
each layer needs the fewest multipliers of a candidate within ``T``, and the smallest ``T``
whose total fits the budget is found by bisection over the candidates' intervals.

Layers that cannot fold (pooling) take part with their fixed interval. An override, such as
``{"conv2": {"pe": 4, "simd": 2}}`` read from a JSON file by :func:`read_overrides`, fixes a
layer's ``pe`` and/or ``simd``; its multipliers count against the budget.

An unfolded layer (``pe = Cout``, ``simd = KH*KW*Cin/groups``) counts all its products as
multipliers: with constant weights the hardware builds them from shift-adds in logic, which
costs about as much. A layer whose channels scale (an ONNX layer's ``S``) is only folded so
that its output stage is serial (:attr:`~convhw.spec.ConvSpec.serial_output_stage`): the
other foldings would need constant multipliers (DSP blocks) per channel on top of the
budget. An override may still choose one.
"""

import json
from dataclasses import dataclass

from .spec import ConvSpec

__all__ = ["LayerFolding", "Folding", "balance", "balance_network", "candidates",
           "read_overrides", "default_budget"]

_KEYS = ("pe", "simd")


@dataclass(frozen=True)
class LayerFolding:
    """One layer of a :class:`Folding`.

    Members
    -------
    name, kind : str
    spec : ConvSpec or None
        The folded spec of a conv or dense layer; a pooling core's spec, or ``None``.
    cycles : int
        The layer's frame interval: cycles per frame when frames stream back to back.
    multipliers : int
        ``pe * simd`` (0 for a layer that does not fold).
    overridden : bool
        Whether an override set this layer's folding.
    fixed : bool
        Whether the layer does not fold (pooling).
    """

    name: str
    kind: str
    spec: object
    cycles: int
    multipliers: int
    overridden: bool = False
    fixed: bool = False

    @property
    def pe(self):
        return None if self.fixed else self.spec.pe

    @property
    def simd(self):
        return None if self.fixed else self.spec.simd

    @property
    def folding(self):
        """``(pe, simd)``, or ``None`` for a layer that does not fold."""
        return None if self.fixed else (self.spec.pe, self.spec.simd)


@dataclass(frozen=True)
class Folding:
    """The folding :func:`balance` chose for each layer of a chain.

    Members
    -------
    layers : tuple of LayerFolding
        In chain order.
    max_multipliers : int or None
        The budget (``None``: no limit).
    """

    layers: tuple
    max_multipliers: object

    @property
    def cycles_per_frame(self):
        """Cycles per inference of the pipeline streaming back to back: the bottleneck's."""
        return max(layer.cycles for layer in self.layers)

    @property
    def bottleneck(self):
        """The first layer with the largest interval."""
        return max(self.layers, key=lambda layer: layer.cycles)

    @property
    def multipliers(self):
        return sum(layer.multipliers for layer in self.layers)

    @property
    def foldings(self):
        """``(pe, simd)`` or ``None`` per layer, in order (``Network.chain(foldings=)``)."""
        return [layer.folding for layer in self.layers]

    @property
    def specs(self):
        """The folded :class:`~convhw.spec.ConvSpec` of each conv and dense layer."""
        return [layer.spec for layer in self.layers if not layer.fixed]

    def to_dict(self):
        return {"max_multipliers": self.max_multipliers, "multipliers": self.multipliers,
                "cycles_per_frame": self.cycles_per_frame, "bottleneck": self.bottleneck.name,
                "layers": [{"name": layer.name, "kind": layer.kind, "pe": layer.pe,
                            "simd": layer.simd, "cycles": layer.cycles,
                            "multipliers": layer.multipliers, "overridden": layer.overridden}
                           for layer in self.layers]}


def _efficient(count):
    """For each ``ceil(count/v)``, the smallest ``v`` that gives it, ascending."""
    return sorted({-(-count // folds) for folds in range(1, count + 1)})


def candidates(spec, *, pe=None, simd=None):
    """The foldings of ``spec`` that no other beats on both multipliers and frame interval.

    ``pe`` or ``simd`` fixes that factor. Returns folded specs ordered by increasing
    multipliers (and so decreasing interval).
    """
    pes = _efficient(spec.out_channels) if pe is None else [pe]
    simds = _efficient(spec.inputs_per_output) if simd is None else [simd]
    options = [spec.with_folding(p, s) for p in pes for s in simds]
    if pe is None and simd is None:
        # A layer that scales keeps its output stage serial (no multiplier per channel).
        options = [o for o in options if _serial_or_unscaled(o)] or options
    options.sort(key=lambda s: (s.multipliers, s.frame_interval, s.pe))
    front = []
    for option in options:
        if not front or option.frame_interval < front[-1].frame_interval:
            front.append(option)
    return front


def _foldable(item):
    """A conv or dense layer's spec (a max-pool core's spec does not fold, nor one with a
    scale per window: ``window_scales``)."""
    return (isinstance(item, ConvSpec) and getattr(item, "operation", "conv") == "conv"
            and getattr(item, "window_scales", None) is None)


def _serial_or_unscaled(spec):
    """Whether the output stage of ``spec`` needs no multiplier of its own."""
    scales = spec.output_stage.scale
    return all(v == 1 for v in scales) or getattr(spec, "serial_output_stage", None) is not None


def _fixed_cycles(item):
    cycles = item if isinstance(item, int) else getattr(item, "frame_interval", None)
    if cycles is None:
        cycles = getattr(item, "cycles_per_frame", None)
    if not isinstance(cycles, int) or cycles < 1:
        raise TypeError(f"a layer that does not fold must be a positive interval in cycles or "
                        f"have 'frame_interval', not {item!r}")
    return cycles


def _check_overrides(overrides, foldable, kinds):
    """Every override names a foldable layer and gives only ``pe``/``simd`` integers."""
    for name, entry in overrides.items():
        if name not in kinds:
            raise ValueError(f"folding override for unknown layer {name!r}; layers: "
                             f"{', '.join(kinds)}")
        if name not in foldable:
            raise ValueError(f"folding override for layer {name!r} ({kinds[name]}), which does "
                             f"not fold; layers that fold: {', '.join(foldable) or 'none'}")
        if not isinstance(entry, dict) or not entry or set(entry) - set(_KEYS):
            raise ValueError(f"folding override for layer {name!r} must be an object with "
                             f"'pe' and/or 'simd', not {entry!r}")
        for key, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"folding override for layer {name!r}: {key!r} must be an "
                                 f"integer, not {value!r}")
        try:
            foldable[name].with_folding(entry.get("pe", 1), entry.get("simd", 1))
        except (ValueError, TypeError) as error:
            raise ValueError(f"folding override for layer {name!r}: {error}") from None


def balance(layers, *, max_multipliers=None, overrides=None, max_cycles=None):
    """Fold a chain of layers for the fewest cycles per frame within ``max_multipliers``;
    with ``max_cycles``, for the fewest multipliers that keep within it.

    Parameters
    ----------
    layers : sequence of (str, ConvSpec or int), or of (str, kind, ConvSpec or int)
        Each layer's name (an ONNX node name) and its spec (any folding: only its geometry,
        weights and numbers matter), or, for a layer that does not fold, its frame interval
        in cycles (or an object with ``frame_interval``).
    max_multipliers : int, optional
        The budget of ``pe * simd`` summed over the layers; ``None`` for no limit.
    overrides : dict, optional
        ``{name: {"pe": P, "simd": S}}``, either key optional: fixed for that layer.
    max_cycles : int, optional
        Cycles per frame that are fast enough (a board's line rate): the folding with the
        fewest multipliers within it, or the fastest within the budget when none is.

    Returns
    -------
    Folding

    Raises
    ------
    ValueError
        An override for an unknown or unfoldable layer, or a value out of range; a budget
        below what the layers need at their most folded.
    """
    entries = []
    for item in layers:
        name, kind, spec = item if len(item) == 3 else (item[0], None, item[1])
        if kind is None:
            kind = "conv" if _foldable(spec) else getattr(spec, "operation", "fixed")
        entries.append((str(name), kind, spec))
    names = [name for name, _, _ in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"layer names must be unique, not {names}")
    if not entries:
        raise ValueError("'layers' must hold at least one layer")
    if max_multipliers is not None and (isinstance(max_multipliers, bool)
                                        or not isinstance(max_multipliers, int)
                                        or max_multipliers < 0):
        raise ValueError(f"'max_multipliers' must be a non-negative integer or None, not "
                         f"{max_multipliers!r}")
    overrides = dict(overrides or {})
    foldable = {name: spec for name, _, spec in entries if _foldable(spec)}
    _check_overrides(overrides, foldable, {name: kind for name, kind, _ in entries})

    fronts, floor = {}, 0
    for name, _, spec in entries:
        if name in foldable:
            fronts[name] = candidates(spec, **overrides.get(name, {}))
        else:
            floor = max(floor, _fixed_cycles(spec))

    def need(target):
        """Per layer, the fewest-multiplier candidate within ``target`` cycles (or None)."""
        chosen = {}
        for name, front in fronts.items():
            fitting = [option for option in front if option.frame_interval <= target]
            chosen[name] = fitting[0] if fitting else None
        return chosen

    def total(chosen):
        if any(option is None for option in chosen.values()):
            return None
        return sum(option.multipliers for option in chosen.values())

    targets = sorted({option.frame_interval for front in fronts.values() for option in front}
                     | {floor})
    targets = [t for t in targets if t >= floor]
    cheapest = total(need(targets[-1]))
    if max_multipliers is not None and cheapest > max_multipliers:
        raise ValueError(f"the layers need at least {cheapest} multipliers (pe x simd summed "
                         f"over {len(fronts)} layers at their most folded"
                         f"{' and the overrides' if overrides else ''}), more than the budget "
                         f"'max_multipliers' {max_multipliers}")
    if max_cycles is not None and (isinstance(max_cycles, bool)
                                   or not isinstance(max_cycles, int) or max_cycles < 1):
        raise ValueError(f"'max_cycles' must be a positive integer or None, not {max_cycles!r}")
    lo, hi = 0, len(targets) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        used = total(need(targets[mid]))
        if used is not None and (max_multipliers is None or used <= max_multipliers):
            hi = mid
        else:
            lo = mid + 1
    if max_cycles is not None:
        # Fewer multipliers for every slower target: the slowest that is fast enough.
        lo = max([lo] + [i for i, target in enumerate(targets) if target <= max_cycles])
    chosen = need(targets[lo])
    result = []
    for name, kind, spec in entries:
        if name in chosen:
            option = chosen[name]
            result.append(LayerFolding(name, kind, option, option.frame_interval,
                                       option.multipliers, name in overrides))
        else:
            result.append(LayerFolding(name, kind, spec if isinstance(spec, ConvSpec) else None,
                                       _fixed_cycles(spec), 0, fixed=True))
    return Folding(tuple(result), max_multipliers)


def network_layers(network):
    """``(name, kind, spec)`` per layer of an imported ONNX ``network`` (a pooling layer
    without a spec: its input pixels, one per cycle, as its interval)."""
    items = []
    for layer in network.layers:
        if hasattr(layer, "spec"):
            items.append((layer.name, layer.kind, layer.spec()))
        else:
            _, height, width = layer.in_shape
            items.append((layer.name, layer.kind, height * width))
    return items


def balance_network(network, *, max_multipliers=None, overrides=None, max_cycles=None):
    """:func:`balance` over the layers of an imported ONNX :class:`~convhw.onnx.Network`."""
    return balance(network_layers(network), max_multipliers=max_multipliers,
                   overrides=overrides, max_cycles=max_cycles)


def read_overrides(path):
    """``{name: {"pe": P, "simd": S}}`` from a JSON file; ``ValueError`` when it is not one."""
    try:
        with open(path) as file:
            data = json.load(file)
    except OSError as error:
        raise ValueError(f"cannot read {str(path)!r}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object such as "
                         f"{{\"conv2\": {{\"pe\": 4, \"simd\": 2}}}}, not {type(data).__name__}")
    return data


def default_budget(target):
    """The multiplier budget of a target: its DSP blocks."""
    from .toolchain.targets import get_target
    return get_target(target).dsps
