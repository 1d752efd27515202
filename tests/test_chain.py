"""Chains of streaming cores (issue 11): ChainSpec's checks, the Chain gateware against the
golden model under random stalls on both sides with inferences back to back, its throughput
(the bottleneck layer's interval), and its Verilog export.

Whole ONNX networks through the chain are in ``test_onnx_hardware.py``.
"""

import numpy as np
import pytest

from convhw import ConvSpec, fastsim
from convhw.bits import signed_bits
from convhw.chain import ChainSpec, layer_interval
from convhw.export import to_verilog
from convhw.fastsim import model as fastsim_model
from convhw.gateware import Chain
from convhw.harness import describe_mismatch, simulate

needs_engine = pytest.mark.skipif(not fastsim.available(), reason=str(fastsim_model._missing()))


def _input_format(out_range):
    """``(in_bits, in_signed)`` that holds ``out_range``."""
    lo, hi = out_range
    return (max(hi.bit_length(), 1), False) if lo >= 0 else (signed_bits(lo, hi), True)


def random_chain(seed, *, width=7, height=6, channels=2):
    """conv (random geometry, unequal padding, maybe folded) -> max pool -> conv -> dense."""
    rng = np.random.default_rng(seed)
    specs = []
    bits, signed = 5, True
    c, h, w = channels, height, width

    def conv(cout, kernel, **args):
        nonlocal c, h, w, bits, signed
        groups = args.pop("groups", 1)
        weights = rng.integers(-7, 8, size=(cout, c // groups, *kernel))
        lo = int(rng.integers(-40, 0))
        spec = ConvSpec(width=w, height=h, weights=weights, groups=groups, in_bits=bits,
                        in_signed=signed, bias=rng.integers(-30, 30, size=cout),
                        scale=int(rng.integers(1, 8)), shift=int(rng.integers(3, 7)),
                        rounding="half-even", clamp=(lo, int(rng.integers(1, 60))), **args)
        specs.append(spec)
        c, (h, w) = cout, spec.out_shape
        bits, signed = _input_format(spec.out_range)

    def pool(kernel, stride, padding):
        nonlocal h, w, bits, signed
        spec = ConvSpec(width=w, height=h, operation="max-pool", kernel_shape=kernel,
                        stride=stride, padding=padding, in_channels=c, in_bits=bits,
                        in_signed=signed)
        specs.append(spec)
        h, w = spec.out_shape
        bits, signed = _input_format(spec.out_range)

    top, left = (int(v) for v in rng.integers(0, 2, size=2))
    conv(4, (3, 3), padding=((top, 1 - top), (left, 2 - left)),
         pe=int(rng.integers(1, 5)), simd=int(rng.integers(1, 10)))
    pool((2, 2), (2, 2), ((0, h % 2), (0, w % 2)))
    conv(4, (1, 2), groups=2, padding=((0, 0), (0, 1)))
    conv(3, (h, w))                       # dense: the kernel covers the map
    return ChainSpec(specs)


def _frames(chain, count, seed):
    lo, hi = chain.pixel_range
    rng = np.random.default_rng(seed)
    return [rng.integers(lo, hi + 1, size=chain.input_shape) for _ in range(count)]


def _check(result, chain, frames):
    assert result.errors == []
    assert len(result.frames) == len(frames)
    for index, (got, frame) in enumerate(zip(result.frames, frames)):
        difference = describe_mismatch(got, chain.run(frame))
        assert difference is None, f"inference {index}: {difference}"


@pytest.mark.parametrize("seed", [0, 1])
def test_random_chain_pysim(seed):
    chain = random_chain(seed)
    assert chain.output_shape == (3, 1, 1) and chain.out_shape == (1, 1)
    frames = _frames(chain, 3, seed)
    result = simulate(Chain(chain), frames, in_stall=0.4, out_stall=0.5, seed=seed)
    _check(result, chain, frames)


@needs_engine
def test_random_chain_fast_stalls():
    chain = random_chain(5, width=8, height=8)
    frames = _frames(chain, 6, 2)
    for stall in (0.0, 0.3, 0.9):
        result = simulate(Chain(chain), frames, in_stall=stall, out_stall=stall, seed=7,
                          backend="fast")
        _check(result, chain, frames)


@needs_engine
def test_back_to_back_throughput():
    """Without stalls, each inference more adds exactly the bottleneck's interval."""
    chain = random_chain(5, width=8, height=8)
    assert chain.cycles_per_frame == max(layer_interval(s) for s in chain) == \
        chain.intervals[chain.bottleneck]
    frames = _frames(chain, 8, 5)
    four = simulate(Chain(chain), frames[:4], backend="fast")
    eight = simulate(Chain(chain), frames, backend="fast")
    _check(eight, chain, frames)
    assert (eight.cycles - four.cycles) == 4 * chain.cycles_per_frame


def test_chain_numbers_and_dict():
    chain = random_chain(6)
    assert chain.latency == sum(spec.latency for spec in chain) + sum(chain.registered_links)
    # Links of at most half the bottleneck's cycles in beats are registered.
    assert chain.registered_links == tuple(
        2 * spec.out_shape[0] * spec.out_beats <= chain.cycles_per_frame for spec in chain[:-1])
    assert chain.multipliers == sum(spec.multipliers for spec in chain)
    assert chain[1].multipliers == 0
    facts = chain.to_dict()
    assert facts["cycles_per_frame"] == chain.cycles_per_frame
    assert [layer["operation"] for layer in facts["layers"]] == ["conv", "max-pool", "conv",
                                                                "conv"]
    assert facts["layers"][0]["name"] == "layer0"
    folded = chain.replace(0, pe=1, simd=1)
    assert folded[0].fold == 4 * 2 * 9 and folded != chain and folded == chain.replace(0, pe=1,
                                                                                   simd=1)


def test_export_ports_and_header():
    chain = random_chain(7)
    text = to_verilog(chain, name="net")
    assert text.startswith("// Generated by convhw")
    assert "a chain of 4 streaming layers" in text
    assert "module net(" in text
    in_bits = chain.in_bits * chain.in_channels
    out_bits = chain.out_bits * chain.out_channels
    assert f"input [{in_bits - 1}:0] s_axis_tdata" in text
    assert f"output [{out_bits - 1}:0] m_axis_tdata" in text


def _layer(**changes):
    args = dict(width=4, height=4, weights=np.ones((2, 1, 3, 3), int), padding=1, shift=2,
                out_bits=6)
    args.update(changes)
    return ConvSpec(**args)


@pytest.mark.parametrize("specs, error, message", [
    ([], ValueError, r"^'specs' must hold at least one layer, not an empty sequence$"),
    (5, TypeError, r"^'specs' must be a sequence of ConvSpec, not 5$"),
    ([_layer(), "conv"], TypeError, r"^'specs'\[1\] must be a ConvSpec, not 'conv'$"),
    ([ConvSpec(width=4, height=4, kernel=[[1]])], ValueError,
     r"^'specs'\[0\] must be a layer \(give 'in_channels' or 'weights'\), not a "
     r"single-channel filter: ConvSpec\(4x4, .*\)$"),
    ([ConvSpec(width=4, height=4, kernel_shape=(1, 1), in_channels=2)], ValueError,
     r"^'specs'\[0\] has runtime weights; a chain takes compile-time weights only$"),
    ([_layer(), _layer(weights=np.ones((2, 3, 3, 3), int), in_bits=6, in_signed=True)],
     ValueError, r"^layer 0 \(conv \(1, 4, 4\) -> \(2, 4, 4\)\) gives \(2, 4, 4\) but layer 1 "
                 r"\(conv \(3, 4, 4\) -> \(2, 4, 4\)\) takes \(3, 4, 4\)$"),
    ([_layer(weights=-np.ones((2, 1, 3, 3), int)), _layer(weights=np.ones((2, 2, 3, 3), int))],
     ValueError, r"^layer 0 \(conv \(1, 4, 4\) -> \(2, 4, 4\)\) gives values -32..0, outside "
                 r"layer 1 \(conv \(2, 4, 4\) -> \(2, 4, 4\)\)'s 8-bit unsigned input "
                 r"\(0..255\)$"),
])
def test_chain_refusals(specs, error, message):
    with pytest.raises(error, match=message):
        ChainSpec(specs)


def test_chain_names_must_match():
    with pytest.raises(ValueError, match=r"^'names' must give one name per layer \(1\), not 2$"):
        ChainSpec([_layer()], names=["a", "b"])


def test_chain_takes_only_chain_specs(unelaborated_ok):
    with pytest.raises(TypeError, match=r"^'spec' must be a ChainSpec, not "):
        Chain(_layer())


def test_harness_takes_a_chain_spec():
    chain = random_chain(8, width=5, height=5)
    frames = _frames(chain, 2, 8)
    _check(simulate(chain, frames, out_stall=0.3), chain, frames)


def _two_convs(folding, link_registers=True):
    """conv 1->2 3x3 (``folding`` = (pe, simd), or None) -> conv 2->2 1x1, 6x5 frames."""
    rng = np.random.default_rng(3)
    first = ConvSpec(width=6, height=5, weights=rng.integers(-7, 8, size=(2, 1, 3, 3)),
                     padding=1, in_bits=4, scale=3, shift=4, rounding="half-even",
                     clamp=(-20, 20), **(dict(zip(("pe", "simd"), folding)) if folding else {}))
    bits, signed = _input_format(first.out_range)
    second = ConvSpec(width=6, height=5, weights=rng.integers(-7, 8, size=(2, 2, 1, 1)),
                      in_bits=bits, in_signed=signed, scale=1, shift=2, clamp=(-30, 30))
    return ChainSpec([first, second], link_registers=link_registers)


@pytest.mark.parametrize("folding, link_registers, registered",
                         [(None, True, False), ((1, 1), True, True), ((1, 1), False, False)])
def test_links_register_where_the_rate_allows(folding, link_registers, registered):
    chain = _two_convs(folding, link_registers=link_registers)
    assert chain.registered_links == (registered,)
    assert (chain == _two_convs(folding)) == link_registers
    assert chain.latency == sum(spec.latency for spec in chain) + registered
    frames = _frames(chain, 3, 5)
    result = simulate(Chain(chain), frames, in_stall=0.5, out_stall=0.5, seed=2)
    _check(result, chain, frames)
    # Back to back, each inference more adds the bottleneck's interval, registered or not.
    three = simulate(Chain(chain), frames)
    two = simulate(Chain(chain), frames[:2])
    _check(three, chain, frames)
    assert three.cycles - two.cycles == chain.cycles_per_frame
