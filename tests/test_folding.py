"""The folding balancer: optimal against brute force, the budget kept, overrides, errors."""

import itertools
import json

import numpy as np
import pytest

from convhw import Conv2d, ConvSpec
from convhw.folding import (Folding, balance, balance_network, candidates, default_budget,
                            read_overrides)
from convhw.harness import simulate


def _layer(rng, width, height, cin, cout, k, groups=1, stride=1):
    weights = rng.integers(-8, 8, (cout, cin // groups, k, k))
    return ConvSpec(width=width, height=height, weights=weights, groups=groups, stride=stride,
                    padding=k // 2, shift=4, out_bits=8, relu=True)


def _small_chain(seed):
    rng = np.random.default_rng(seed)
    return [("a", _layer(rng, 6, 5, 2, 3, 3)), ("pool", 9),
            ("b", _layer(rng, 3, 3, 3, 4, 1)), ("c", _layer(rng, 4, 4, 4, 2, 2, groups=2))]


def _brute_force(layers, budget):
    """The smallest bottleneck over every (pe, simd) of every layer, and the fewest multipliers
    that reach it."""
    fixed = max([item for _, item in layers if isinstance(item, int)], default=0)
    options = [[(s.frame_interval, s.multipliers)
                for pe in range(1, spec.out_channels + 1)
                for simd in range(1, spec.inputs_per_output + 1)
                for s in [spec.replace(pe=pe, simd=simd)]]
               for _, spec in layers if isinstance(spec, ConvSpec)]
    best = None
    for combo in itertools.product(*options):
        used = sum(m for _, m in combo)
        if budget is not None and used > budget:
            continue
        key = (max([fixed] + [c for c, _ in combo]), used)
        best = key if best is None or key < best else best
    return best


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("budget", [3, 4, 5, 7, 10, 16, 40, None])
def test_balance_is_optimal(seed, budget):
    layers = _small_chain(seed)
    folding = balance(layers, max_multipliers=budget)
    assert isinstance(folding, Folding)
    assert (folding.cycles_per_frame, folding.multipliers) == _brute_force(layers, budget)
    if budget is not None:
        assert folding.multipliers <= budget
    for layer, (name, item) in zip(folding.layers, layers):
        assert layer.name == name
        if isinstance(item, ConvSpec):
            exact = item.replace(pe=layer.pe, simd=layer.simd)
            assert layer.spec == exact
            assert (layer.cycles, layer.multipliers) == (exact.frame_interval,
                                                         exact.multipliers)
        else:
            assert (layer.spec, layer.folding, layer.cycles, layer.multipliers, layer.fixed) == \
                (None, None, item, 0, True)
    assert folding.bottleneck.cycles == folding.cycles_per_frame


def test_candidates_are_the_pareto_front():
    spec = _small_chain(0)[0][1]
    front = candidates(spec)
    every = [spec.replace(pe=pe, simd=simd) for pe in range(1, spec.out_channels + 1)
             for simd in range(1, spec.inputs_per_output + 1)]
    for option in every:   # nothing beats the front
        assert any(c.multipliers <= option.multipliers
                   and c.frame_interval <= option.frame_interval for c in front)
    pairs = [(c.multipliers, c.frame_interval) for c in front]
    assert pairs == sorted(pairs) and len({i for _, i in pairs}) == len(pairs)
    assert [c.multipliers for c in candidates(spec, pe=2)] == sorted(
        c.multipliers for c in candidates(spec, pe=2))
    assert {c.pe for c in candidates(spec, pe=2)} == {2}


def test_with_folding_equals_replace():
    spec = _small_chain(1)[3][1]
    for pe, simd in itertools.product(range(1, 3), range(1, 9)):
        folded = spec.with_folding(pe, simd)
        exact = spec.replace(pe=pe, simd=simd)
        assert folded == exact and folded.to_dict() == exact.to_dict()
        assert folded.replace(relu=False) == exact.replace(relu=False)
    with pytest.raises(ValueError, match=r"^'pe' must be from 1 to 2 \(the output channels\), "
                                         r"not 3$"):
        spec.with_folding(3, 1)


def test_frame_interval_is_the_simulated_one():
    rng = np.random.default_rng(3)
    spec = _layer(rng, 5, 4, 2, 3, 3).replace(pe=2, simd=3)
    frames = [rng.integers(0, 256, spec.input_shape) for _ in range(3)]
    one = simulate(Conv2d(spec), frames[:1])
    three = simulate(Conv2d(spec), frames)
    assert one.cycles == spec.cycles_per_frame
    assert three.cycles - one.cycles == 2 * spec.frame_interval


def test_overrides():
    layers = _small_chain(0)
    folding = balance(layers, max_multipliers=10, overrides={"a": {"pe": 3, "simd": 2},
                                                              "b": {"simd": 1}})
    a, _, b, _ = folding.layers
    assert (a.folding, a.overridden) == ((3, 2), True)
    assert b.simd == 1 and b.overridden and not folding.layers[3].overridden
    assert folding.multipliers <= 10
    assert folding.foldings[1] is None


@pytest.mark.parametrize("overrides, message", [
    ({"zz": {"pe": 1}}, r"folding override for unknown layer 'zz'; layers: a, pool, b, c"),
    ({"pool": {"pe": 1}}, r"folding override for layer 'pool' \(fixed\), which does not fold; "
                          r"layers that fold: a, b, c"),
    ({"a": {"pe": 4}}, r"folding override for layer 'a': 'pe' must be from 1 to 3 "
                       r"\(the output channels\), not 4"),
    ({"a": {"simd": 0}}, r"folding override for layer 'a': 'simd' must be from 1 to 18 "
                         r"\(the inputs of one output, KH\*KW\*Cin/groups\), not 0"),
    ({"a": {"pe": "2"}}, r"folding override for layer 'a': 'pe' must be an integer, not '2'"),
    ({"a": {"pe": 1, "lanes": 2}}, r"folding override for layer 'a' must be an object with "
                                   r"'pe' and/or 'simd', not \{'pe': 1, 'lanes': 2\}"),
    ({"a": {}}, r"folding override for layer 'a' must be an object with 'pe' and/or 'simd', "
                r"not \{\}"),
])
def test_override_errors(overrides, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        balance(_small_chain(0), max_multipliers=20, overrides=overrides)


def test_budget_errors():
    with pytest.raises(ValueError, match=r"^the layers need at least 3 multipliers \(pe x simd "
                                         r"summed over 3 layers at their most folded\), more "
                                         r"than the budget 'max_multipliers' 2$"):
        balance(_small_chain(0), max_multipliers=2)
    with pytest.raises(ValueError, match=r"^the layers need at least 8 multipliers .* and the "
                                         r"overrides\), more than the budget 'max_multipliers' "
                                         r"7$"):
        balance(_small_chain(0), max_multipliers=7, overrides={"a": {"pe": 3, "simd": 2}})
    with pytest.raises(ValueError, match=r"^'max_multipliers' must be a non-negative integer "
                                         r"or None, not -1$"):
        balance(_small_chain(0), max_multipliers=-1)


def test_default_budget():
    assert [default_budget(t) for t in ("ice40-up5k", "ecp5-25k", "ecp5-85k")] == [8, 28, 156]


def test_read_overrides(tmp_path):
    good = tmp_path / "f.json"
    good.write_text(json.dumps({"conv2": {"pe": 4, "simd": 2}}))
    assert read_overrides(good) == {"conv2": {"pe": 4, "simd": 2}}
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match=r"^.*bad.json is not valid JSON: "):
        read_overrides(bad)
    listed = tmp_path / "list.json"
    listed.write_text("[1]")
    with pytest.raises(ValueError, match=r"must hold a JSON object such as .*, not list$"):
        read_overrides(listed)
    with pytest.raises(ValueError, match=r"^cannot read '.*missing.json': "):
        read_overrides(tmp_path / "missing.json")


def test_digits_network():
    pytest.importorskip("onnx")
    from convhw.onnx import read_model

    network = read_model("sim/models/digits.onnx")
    folding = balance_network(network, max_multipliers=8)
    assert [layer.name for layer in folding.layers] == ["conv1", "pool1", "conv2", "dense"]
    assert folding.multipliers <= 8 and folding.bottleneck.name in ("conv1", "conv2")
    assert folding.foldings[1] is None
    unlimited = balance_network(network)
    assert unlimited.cycles_per_frame < folding.cycles_per_frame
    # Its layers scale: every folding chosen keeps the output stage serial (no DSP blocks).
    for budget in (3, 8, 28, 156, None):
        chosen = balance_network(network, max_multipliers=budget)
        assert all(spec.serial_output_stage is not None for spec in chosen.specs)
    # An override may choose another.
    forced = balance_network(network, max_multipliers=40, overrides={"conv1": {"simd": 9}})
    assert forced.specs[0].serial_output_stage is None


def test_max_cycles_takes_the_fewest_multipliers_fast_enough():
    from convhw.onnx import read_model
    network = read_model("sim/models/digits.onnx")
    fastest = balance_network(network, max_multipliers=8)
    for max_cycles in (fastest.cycles_per_frame, 1000, 2000, 5000):
        folding = balance_network(network, max_multipliers=8, max_cycles=max_cycles)
        assert folding.cycles_per_frame <= max_cycles
        # No folding within the budget with fewer multipliers is fast enough.
        for budget in range(3, folding.multipliers):
            assert balance_network(network, max_multipliers=budget).cycles_per_frame > max_cycles
    # Faster than the budget allows: the fastest within it.
    assert balance_network(network, max_multipliers=8, max_cycles=10).foldings == \
        fastest.foldings
    with pytest.raises(ValueError, match=r"^'max_cycles' must be a positive integer or None, "
                                         r"not 0$"):
        balance_network(network, max_multipliers=8, max_cycles=0)
