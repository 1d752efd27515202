# amaranth: UnusedElaboratable=no
"""The 8N1 UART receiver and transmitter, against the bit-level line model of the transport."""

from fractions import Fraction

import pytest
from amaranth.sim import Simulator

from convhw.board.transport import uart_monitor, uart_put
from convhw.board.uart import UARTReceiver, UARTTransmitter, bit_ratio

PATTERN = [0x00, 0xFF, 0x55, 0xAA, 0x01, 0x80, 0x7E, 0xC3, 0x10, 0xEF]


def receive(clk_freq, baud, levels_per_byte, *, host_cpb=None, ready=True, idle=0):
    """Drive ``rx`` with frames (lists of 10 levels) back to back; return what came out."""
    dut = UARTReceiver(clk_freq=clk_freq, baud=baud)
    cpb = Fraction(host_cpb) if host_cpb is not None else dut.clocks_per_bit
    got, events = [], {"error": 0, "overrun": 0}

    async def line(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        for levels in levels_per_byte:
            if isinstance(levels, int):
                await uart_put(ctx, dut.rx, levels, cpb)
            else:
                for level, clocks in levels:
                    ctx.set(dut.rx, level)
                    await ctx.tick().repeat(clocks)
            ctx.set(dut.rx, 1)
            if idle:
                await ctx.tick().repeat(idle)
        await ctx.tick().repeat(int(cpb * 20))

    async def sink(ctx):
        ctx.set(dut.o.ready, int(ready))
        async for _, _, valid, data, error, overrun in ctx.tick().sample(
                dut.o.valid, dut.o.payload, dut.error, dut.overrun):
            if valid and ready:
                got.append(data)
            events["error"] += error
            events["overrun"] += overrun

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(line)
    sim.add_testbench(sink, background=True)
    sim.run()
    return got, events, dut


@pytest.mark.parametrize("clk_freq, baud", [
    (12e6, 3_000_000),          # 4 clocks per bit, the minimum
    (12e6, 2_000_000),          # the iCEBreaker default
    (25e6, 3_000_000),          # the ULX3S default: 8 1/3 clocks per bit
    (1e6, 115_200),             # 8.68 clocks per bit
])
def test_receiver_decodes_back_to_back_bytes(clk_freq, baud):
    got, events, dut = receive(clk_freq, baud, PATTERN)
    assert got == PATTERN and events == {"error": 0, "overrun": 0}
    assert dut.clocks_per_bit == Fraction(clk_freq) / baud


@pytest.mark.parametrize("clk_freq, baud", [(12e6, 2_000_000), (25e6, 3_000_000)])
@pytest.mark.parametrize("skew", [0.96, 1.04])
def test_receiver_tolerates_a_host_four_percent_off(clk_freq, baud, skew):
    host_cpb = Fraction(clk_freq) / baud * Fraction(skew)
    got, events, _ = receive(clk_freq, baud, PATTERN * 2, host_cpb=host_cpb)
    assert got == PATTERN * 2 and events["error"] == 0


def test_receiver_ignores_a_glitch():
    got, events, _ = receive(12e6, 2_000_000, [[(0, 1), (1, 20)], 0x5A])
    assert got == [0x5A] and events["error"] == 0


def test_receiver_drops_a_byte_with_a_low_stop_bit_and_recovers_after_a_break():
    bad_frame = [(0, 6), *[((0x3C >> k) & 1, 6) for k in range(8)], (0, 6)]   # stop bit low
    long_break = [(0, 200), (1, 12)]
    got, events, _ = receive(12e6, 2_000_000, [bad_frame, 0x11, long_break, 0x22], idle=12)
    assert got == [0x11, 0x22]
    assert events["error"] == 2


def test_receiver_reports_overrun_and_keeps_the_unread_byte():
    dut = UARTReceiver(clk_freq=12e6, baud=2_000_000)
    events = []

    async def bench(ctx):
        ctx.set(dut.rx, 1)
        ctx.set(dut.o.ready, 0)
        await ctx.tick().repeat(3)
        for value in (0xA1, 0xB2):
            await uart_put(ctx, dut.rx, value, 6)
            await ctx.tick().repeat(8)
            events.append((ctx.get(dut.o.valid), ctx.get(dut.o.payload)))

    async def watch(ctx):
        async for _, _, overrun in ctx.tick().sample(dut.overrun):
            if overrun:
                events.append("overrun")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(watch, background=True)
    sim.run()
    assert events == [(1, 0xA1), "overrun", (1, 0xA1)]


@pytest.mark.parametrize("clk_freq, baud", [(12e6, 3_000_000), (25e6, 3_000_000),
                                            (12e6, 2_000_000)])
def test_transmitter_sends_bytes_back_to_back_at_the_exact_rate(clk_freq, baud):
    dut = UARTTransmitter(clk_freq=clk_freq, baud=baud)
    cpb = dut.clocks_per_bit
    got, errors, times = [], [], {}

    async def source(ctx):
        await ctx.tick().repeat(3)
        for value in PATTERN:
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, value)
            await ctx.tick().until(dut.i.ready)
            times.setdefault("first", times.get("first", ctx_cycle[0]))
        ctx.set(dut.i.valid, 0)
        await ctx.tick().until(~dut.busy)
        times["end"] = ctx_cycle[0]
        await ctx.tick().repeat(int(cpb * 2))

    ctx_cycle = [0]

    async def clock_count(ctx):
        async for _ in ctx.tick():
            ctx_cycle[0] += 1

    async def monitor(ctx):
        await uart_monitor(ctx, dut.tx, cpb, got.append, errors.append)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(clock_count, background=True)
    sim.add_testbench(monitor, background=True)
    sim.run()
    assert got == PATTERN and errors == []
    elapsed = times["end"] - times["first"]
    assert abs(elapsed - len(PATTERN) * 10 * cpb) <= 2       # no idle time between bytes


def test_transmitter_line_idles_high():
    dut = UARTTransmitter(clk_freq=12e6, baud=2_000_000)
    levels = []

    async def bench(ctx):
        for _ in range(20):
            await ctx.tick()
            levels.append((ctx.get(dut.tx), ctx.get(dut.busy), ctx.get(dut.i.ready)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert set(levels) == {(1, 0, 1)}


@pytest.mark.parametrize("clk_freq, baud, error, message", [
    ("12e6", 9600, TypeError, r"^'clk_freq' must be a number, not '12e6'$"),
    (12e6, True, TypeError, r"^'baud' must be a number, not True$"),
    (12e6, 0, ValueError, r"^'baud' must be positive, not 0$"),
    (-1, 9600, ValueError, r"^'clk_freq' must be positive, not -1$"),
    (12e6, 3_000_001, ValueError, r"^'baud' 3000001 is too fast for a 1\.2e\+07 Hz clock: the "
                                  r"UART needs at least 4 clocks per bit, so at most 3000000 "
                                  r"baud$"),
])
def test_bit_ratio_rejects_bad_rates(clk_freq, baud, error, message):
    with pytest.raises(error, match=message):
        bit_ratio(clk_freq, baud)
    with pytest.raises(error, match=message):
        UARTReceiver(clk_freq=clk_freq, baud=baud)


def test_bit_ratio_is_exact():
    assert bit_ratio(25e6, 3_000_000) == Fraction(25, 3)
    assert bit_ratio(12_000_000, 2_000_000) == 6
