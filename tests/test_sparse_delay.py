"""The sparse delay against the shift register, and the small output queue under random
valid/ready: cycle-exact."""

import random

import pytest
from amaranth import *
from amaranth.back import rtlil
from amaranth.sim import Simulator

from convhw.gateware.core_io import OutputQueue
from convhw.gateware.delay import delay, sparse_delay


class _Both(Elaboratable):
    def __init__(self, cycles, spacing, bits):
        self.cycles, self.spacing, self.bits = cycles, spacing, bits
        self.valid, self.payload = Signal(), Signal(bits)
        self.lines = None

    def elaborate(self, platform):
        m = Module()
        shifted = delay(m, Cat(self.valid, self.payload), self.cycles, "reference")
        sparse = sparse_delay(m, self.valid, self.payload, self.cycles, self.spacing, "sparse")
        self.lines = (shifted[0], shifted[1:]), sparse
        return m


@pytest.mark.parametrize("cycles, spacing, counts", [
    (2, 2, True), (5, 5, True), (34, 108, True), (17, 27, True), (10, 3, True), (33, 9, True),
    (7, 1, False), (1, 1, False)])
def test_sparse_delay_matches_shift_register(cycles, spacing, counts):
    """Random events at least ``spacing`` apart (often exactly): the same ``valid`` every
    cycle, the same payload with it; counters where they are cheaper."""
    rng = random.Random(cycles * 1000 + spacing)
    dut = _Both(cycles, spacing, bits=8)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    checked = []

    async def bench(ctx):
        (ref_valid, ref_payload), (valid, payload) = dut.lines
        gap = spacing
        for _ in range(1500):
            event = gap >= spacing and rng.random() < 0.5
            gap = 0 if event else gap + 1
            ctx.set(dut.valid, event)
            ctx.set(dut.payload, rng.randrange(256))
            await ctx.tick()
            assert ctx.get(valid) == ctx.get(ref_valid)
            if ctx.get(ref_valid):
                assert ctx.get(payload) == ctx.get(ref_payload)
                checked.append(1)

    sim.add_testbench(bench)
    sim.run()
    assert len(checked) > 10
    assert (getattr(dut.lines[1][0], "name", None) == "sparse_valid") == counts


@pytest.mark.parametrize("depth, bits, in_block_ram", [
    (1, 6, False), (2, 6, False), (3, 6, False), (2, 70, False), (1, 70, True), (2, 70, True)])
def test_small_output_queue_random_valid_ready(depth, bits, in_block_ram):
    """Credits issued and results written after a random latency, popped under random ready:
    in order, each two cycles after its write at the soonest, never lost; the register form
    holds ``depth`` results with the output register, and so does the block RAM form of wide
    results (70 bits, ``small_in_block_ram``)."""
    rng = random.Random(depth)
    dut = OutputQueue(bits=bits, depth=depth, small_in_block_ram=in_block_ram)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    popped = []

    async def bench(ctx):
        in_flight = []          # (cycle to write, value)
        written = []            # (cycle written, value)
        issued = 0
        for cycle in range(3000):
            start = ctx.get(dut.can_start) and rng.random() < 0.7
            ctx.set(dut.start, start)
            due = in_flight and in_flight[0][0] <= cycle
            ctx.set(dut.w_en, bool(due))
            if due:
                value = in_flight.pop(0)[1]
                ctx.set(dut.w_data.data, value)
                written.append((cycle, value))
            ready = rng.random() < 0.5
            ctx.set(dut.o.ready, ready)
            if ctx.get(dut.o.valid) and ready:
                at, value = written[len(popped)]
                assert cycle >= at + 2
                assert ctx.get(dut.o.payload.data) == value
                popped.append(value)
            if start:
                latency = rng.choice([0, 1, 2, 5]) + (in_flight[-1][0] - cycle if in_flight else 0)
                in_flight.append((cycle + max(0, latency), issued % 64 - 32))
                issued += 1
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    assert len(popped) > 300
    assert popped == [n % 64 - 32 for n in range(len(popped))]
    assert ("ram_style" in rtlil.convert(dut)) == in_block_ram
