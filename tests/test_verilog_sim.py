"""The generated Verilog itself, run in Icarus Verilog against the golden model.

A generated testbench streams several frames into the exported top module (AXI4-Stream ports)
with seeded random gaps in ``s_axis_tvalid`` and ``m_axis_tready``, writes runtime coefficients
through ``coef_*`` before each frame, records every output beat with its ``tuser``/``tlast``,
and checks that a stalled output holds still. Python compares the beats with the golden model.
"""

import shutil
import subprocess

import numpy as np
import pytest
from amaranth.utils import ceil_log2

from convhw import Conv1dSpec, ConvSpec
from convhw.export import to_verilog
from convhw.golden import run_spec
from convhw.stimulus import (beat_shape, coefficient_writes, lanes, output_shape, pack_beats,
                             result_frames, unpack_beats)

pytestmark = pytest.mark.skipif(
    shutil.which("iverilog") is None or shutil.which("vvp") is None,
    reason="Icarus Verilog (iverilog, vvp) is not installed: apt-get install iverilog")

TESTBENCH = """\
`timescale 1ns/1ps
module tb;
  localparam NIN = {nin}, NOUT = {nout}, FRAME = {frame}, TAPS = {taps}, NREADY = {nready};
  localparam LIMIT = {limit}, RUNTIME = {runtime};
  reg clk = 0;
  always #5 clk = ~clk;
  reg rst = 1;
  reg [{in_bits}-1:0] s_tdata = 0;
  reg s_tvalid = 0, s_tuser = 0, s_tlast = 0;
  wire s_tready;
  wire [{out_bits}-1:0] m_tdata;
  wire m_tvalid, m_tuser, m_tlast;
  reg m_tready = 0;
  reg coef_we = 0;
  reg [{addr_bits}-1:0] coef_addr = 0;
  reg [{coeff_bits}-1:0] coef_data = 0;

  dut dut (
    .clk(clk), .rst(rst),
    .s_axis_tdata(s_tdata), .s_axis_tvalid(s_tvalid), .s_axis_tready(s_tready),
    .s_axis_tuser(s_tuser), .s_axis_tlast(s_tlast),
    .m_axis_tdata(m_tdata), .m_axis_tvalid(m_tvalid), .m_axis_tready(m_tready),
    .m_axis_tuser(m_tuser), .m_axis_tlast(m_tlast){coef_ports}
  );

  reg [{in_bits}+1:0] in_mem [0:NIN-1];     // {{tuser, tlast, tdata}}
  reg [7:0] gap_mem [0:NIN-1];              // idle cycles before each input beat
  reg ready_mem [0:NREADY-1];               // m_axis_tready, cycle by cycle
  reg [{coeff_bits}-1:0] coef_mem [0:{coef_depth}-1];
  reg [{addr_bits}-1:0] coef_addr_mem [0:{coef_depth}-1];
  integer fd, pi, ci, gap, oi, cycle, errors, first_in;
  reg held;
  reg [{out_bits}+1:0] held_payload;

  initial begin
    $readmemh("in.hex", in_mem);
    $readmemh("gap.hex", gap_mem);
    $readmemb("ready.bin", ready_mem);
    if (RUNTIME) $readmemh("coef.hex", coef_mem);
    if (RUNTIME) $readmemh("coef_addr.hex", coef_addr_mem);
    fd = $fopen("out.txt", "w");
    pi = 0; ci = 0; gap = gap_mem[0]; oi = 0; cycle = 0; errors = 0; held = 0; first_in = -1;
    repeat (4) @(posedge clk);
    rst <= 0;
  end

  // Synchronous testbench: every read sees the values from before the clock edge.
  always @(posedge clk) if (!rst) begin
    cycle = cycle + 1;
    if (cycle > LIMIT) begin
      $display("TIMEOUT after %0d cycles with %0d of %0d outputs", cycle, oi, NOUT);
      $fclose(fd);
      $finish;
    end
    // Producer: hold a beat until it is taken; between beats, coefficients or a gap.
    coef_we <= 0;
    if (s_tvalid && s_tready) begin
      if (first_in < 0) first_in = cycle;
      pi = pi + 1;
      ci = 0;
      if (pi < NIN) gap = gap_mem[pi];
    end
    if (!(s_tvalid && !s_tready)) begin
      s_tvalid <= 0;
      if (pi < NIN) begin
        if (RUNTIME && pi % FRAME == 0 && ci < TAPS) begin
          coef_we <= 1;
          coef_addr <= coef_addr_mem[(pi / FRAME) * TAPS + ci];
          coef_data <= coef_mem[(pi / FRAME) * TAPS + ci];
          ci = ci + 1;
        end else if (gap > 0) begin
          gap = gap - 1;
        end else begin
          {{s_tuser, s_tlast, s_tdata}} <= in_mem[pi];
          s_tvalid <= 1;
        end
      end
    end
    // Consumer: a beat offered and not taken must stay valid and unchanged.
    if (held && (!m_tvalid || {{m_tuser, m_tlast, m_tdata}} !== held_payload)) begin
      errors = errors + 1;
      $display("PROTOCOL: output changed before its transfer at cycle %0d", cycle);
    end
    held <= m_tvalid && !m_tready;
    held_payload <= {{m_tuser, m_tlast, m_tdata}};
    if (m_tvalid && m_tready) begin
      $fwrite(fd, "%h %0d %0d\\n", m_tdata, m_tuser, m_tlast);
      oi = oi + 1;
      if (oi == NOUT) begin
        $fclose(fd);
        // Clock edges from the first input transfer to the last output transfer.
        $display("DONE %0d cycles, %0d protocol errors", cycle - first_in, errors);
        $finish;
      end
    end
    m_tready <= ready_mem[cycle % NREADY];
  end
endmodule
"""


def _hex(values, bits):
    digits = max(1, (bits + 3) // 4)
    return "".join(f"{int(v) & ((1 << bits) - 1):0{digits}x}\n" for v in values)


def _input_beats(spec, frames):
    """``(tuser, tlast, tdata)`` words of every input beat, row-major (every channel of a
    pixel in one beat)."""
    words = []
    bits = _data_bits(spec, "in")
    for frame in frames:
        frame = np.asarray(frame)
        width = frame.shape[-1] // lanes(spec)
        for index, data in enumerate(pack_beats(spec, frame)):
            tuser, tlast = int(index == 0), int(index % width == width - 1)
            words.append((tuser << (bits + 1)) | (tlast << bits) | data)
    return words


def _data_bits(spec, side):
    if side == "in":
        return spec.in_bits * getattr(spec, "in_channels", 1) * lanes(spec)
    return spec.out_bits * getattr(spec, "out_channels", 1) * lanes(spec)


def expected_markers(out_shape, frames):
    out_h, out_w = (1, *out_shape) if len(out_shape) == 1 else out_shape
    markers = []
    for _ in range(frames):
        for y in range(out_h):
            for x in range(out_w):
                markers.append((int(x == 0 and y == 0), int(x == out_w - 1)))
    return markers


def run_icarus(tmp_path, spec, frames, kernels=None, *, in_gaps=0.3, out_stall=0.3, seed=0):
    """Run ``frames`` through the generated Verilog; ``(values, markers, vvp stdout)``."""
    rng = np.random.default_rng(seed)
    (tmp_path / "dut.v").write_text(to_verilog(spec, name="dut"))
    words = _input_beats(spec, frames)
    # Geometric gaps: mostly short, sometimes long bursts of idle input.
    gaps = np.where(rng.random(len(words)) < in_gaps, rng.geometric(0.3, len(words)), 0)
    in_bits, out_bits = _data_bits(spec, "in"), _data_bits(spec, "out")
    (tmp_path / "in.hex").write_text(_hex(words, in_bits + 2))
    (tmp_path / "gap.hex").write_text(_hex(np.minimum(gaps, 255), 8))
    nready = 4099
    ready = (rng.random(nready) >= out_stall).astype(int)
    (tmp_path / "ready.bin").write_text("".join(f"{r}\n" for r in ready))
    runtime = spec.runtime_coeffs
    writes = [coefficient_writes(spec, kernel) for kernel in kernels] if runtime else [[]]
    addr_bits = max(1, ceil_log2(getattr(spec, "coefficient_addresses", spec.taps)))
    if runtime:
        (tmp_path / "coef.hex").write_text(_hex([v for w in writes for _, v in w],
                                                spec.coeff_bits))
        (tmp_path / "coef_addr.hex").write_text(_hex([a for w in writes for a, _ in w],
                                                     addr_bits))
    frame_size = int(np.prod(spec.frame_shape))
    outputs = int(np.prod(beat_shape(spec)))
    nout = len(frames) * outputs
    positions = (getattr(spec, "beats_per_frame", spec.positions_per_frame)
                 + (getattr(spec, "fold", 1) - 1) * outputs)
    limit = int(len(frames) * (positions + spec.latency + len(writes[0]) + 16 +
                               gaps.mean() * frame_size) / (1 - out_stall) * 4) + 1000
    coef_ports = (",\n    .coef_we(coef_we), .coef_addr(coef_addr), .coef_data(coef_data)"
                  if runtime else "")
    bench = TESTBENCH.format(
        nin=len(words), nout=nout, frame=frame_size // lanes(spec), taps=len(writes[0]),
        nready=nready,
        limit=limit, runtime=int(runtime), in_bits=in_bits, out_bits=out_bits,
        addr_bits=addr_bits, coeff_bits=spec.coeff_bits,
        coef_depth=max(1, len(frames) * len(writes[0])), coef_ports=coef_ports)
    (tmp_path / "tb.v").write_text(bench)
    subprocess.run(["iverilog", "-g2012", "-o", "sim", "tb.v", "dut.v"], cwd=tmp_path,
                   check=True, capture_output=True, text=True, timeout=300)
    done = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True, capture_output=True,
                          text=True, timeout=300)
    assert "DONE" in done.stdout and "0 protocol errors" in done.stdout, done.stdout
    beats = [line.split() for line in (tmp_path / "out.txt").read_text().splitlines()]
    values = unpack_beats([int(b[0], 16) for b in beats], spec.out_bits,
                          getattr(spec, "out_channels", 1) * lanes(spec))
    return values, [(int(b[1]), int(b[2])) for b in beats], done.stdout


def check(tmp_path, spec, frames, kernels=None, **stalls):
    values, markers, _ = run_icarus(tmp_path, spec, frames, kernels, **stalls)
    kernels = kernels if kernels is not None else [None] * len(frames)
    if lanes(spec) > 1:   # beats of N outputs: compare whole frames, markers per beat
        got = result_frames(spec, values, len(frames))
        for frame, kernel, result in zip(frames, kernels, got):
            np.testing.assert_array_equal(result, run_spec(spec, frame, kernel))
        assert markers == expected_markers(beat_shape(spec), len(frames))
        n, out_w = lanes(spec), spec.out_shape[1]
        if out_w % n:   # a partial last beat: its unused lanes hold 0
            beats = values.reshape(-1, spec.out_beats, n, values.shape[1] // n)
            assert (beats[:, -1, out_w % n:] == 0).all()
        return
    # Stream order: pixel by pixel, every channel of a pixel in one beat.
    expected = np.concatenate([
        np.asarray(run_spec(spec, frame, kernel)).reshape(-1, int(np.prod(spec.out_shape))).T
        for frame, kernel in zip(frames, kernels)])
    assert values.shape == expected.shape
    assert (values.astype(object) == expected.astype(object)).all()
    assert markers == expected_markers(spec.out_shape, len(frames))


def random_frames(spec, count, seed):
    lo, hi = spec.pixel_range
    rng = np.random.default_rng(seed)
    shape = getattr(spec, "input_shape", spec.frame_shape)
    return [rng.integers(lo, hi + 1, size=shape) for _ in range(count)]


def test_3x3_same(tmp_path):
    spec = ConvSpec(width=12, height=9, kernel=[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
                    padding="same")
    check(tmp_path, spec, random_frames(spec, 3, 1), seed=1)


def test_strided_dilated_non_square(tmp_path):
    kernel = np.random.default_rng(2).integers(-9, 10, size=(3, 2))
    spec = ConvSpec(width=13, height=8, kernel=kernel, stride=(1, 2), dilation=(2, 3),
                    padding=(1, 2), in_bits=6, in_signed=True)
    check(tmp_path, spec, random_frames(spec, 3, 2), seed=2, in_gaps=0.5, out_stall=0.5)


def test_runtime_coefficients_change_between_frames(tmp_path):
    spec = ConvSpec(width=10, height=7, kernel_shape=(3, 3), coeff_bits=5, padding=1)
    rng = np.random.default_rng(3)
    kernels = [rng.integers(-16, 16, size=(3, 3)) for _ in range(3)]
    kernels[1][0, 0], kernels[2][2, 2] = -16, 15  # the extremes of coeff_bits
    check(tmp_path, spec, random_frames(spec, 3, 3), kernels, seed=3)


def test_requantized_saturating(tmp_path):
    spec = ConvSpec(width=11, height=6, kernel=[[1, 2, 1], [2, 4, 2], [1, 2, 1]], shift=2,
                    out_bits=7, padding="same", in_bits=8)
    assert spec.saturates
    frames = random_frames(spec, 2, 4)
    frames[1][:3, :] = 255  # drive the sum past out_bits: saturation must trigger
    check(tmp_path, spec, frames, seed=4)
    assert (run_spec(spec, frames[1]) == 63).any()


def test_1d_sequences(tmp_path):
    spec = Conv1dSpec(length=23, kernel=[3, -1, 4, -1, 5], stride=2, dilation=2, padding=3,
                      in_bits=7, in_signed=True)
    check(tmp_path, spec, random_frames(spec, 3, 5), seed=5)


def test_no_stalls_cycle_count(tmp_path):
    """Without gaps the Verilog takes the documented cycles_per_frame, like pysim."""
    spec = ConvSpec(width=16, height=6, kernel=[[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
                    padding="same")
    values, markers, stdout = run_icarus(tmp_path, spec, random_frames(spec, 1, 6),
                                         in_gaps=0, out_stall=0)
    assert int(stdout.split("DONE ")[1].split()[0]) == spec.cycles_per_frame


def test_runtime_coefficients_in_logic_signed(tmp_path):
    """Taps beyond max_dsps become partial products; signed pixels, flip, dilation."""
    spec = ConvSpec(width=9, height=6, kernel_shape=(2, 3), coeff_bits=4, max_dsps=2,
                    in_bits=5, in_signed=True, flip=True, dilation=(1, 2), padding=(1, 2))
    assert 0 < spec.dsp_taps < spec.taps
    rng = np.random.default_rng(7)
    kernels = [rng.integers(-8, 8, size=(2, 3)) for _ in range(2)]
    check(tmp_path, spec, random_frames(spec, 2, 7), kernels, seed=7)


def test_layer_groups_bias_relu_requantized(tmp_path):
    """A multi-channel layer: Cin 4 -> Cout 6, 2 groups, bias, ReLU, half-even rounding."""
    rng = np.random.default_rng(8)
    spec = ConvSpec(width=9, height=6, weights=rng.integers(-20, 21, size=(6, 2, 3, 2)),
                    groups=2, bias=rng.integers(-300, 300, size=6), relu=True, shift=3,
                    scale=[1, 2, 3, 1, 2, 3], rounding="half-even", out_bits=7,
                    padding="same", in_bits=6, in_signed=True)
    check(tmp_path, spec, random_frames(spec, 2, 8), seed=8)


def test_layer_folded_runtime_weights(tmp_path):
    """A folded layer (pe 2, simd 5 of 3x3x3 inputs) with weights changed between frames."""
    spec = ConvSpec(width=8, height=5, kernel_shape=(3, 3), in_channels=3, out_channels=5,
                    padding=1, stride=(1, 2), pe=2, simd=5, shift=4, out_bits=8)
    assert spec.fold == 3 * 6
    rng = np.random.default_rng(9)
    kernels = [rng.integers(-128, 128, size=(5, 3, 3, 3)) for _ in range(2)]
    check(tmp_path, spec, random_frames(spec, 2, 9), kernels, seed=9)


def test_layer_folded_constant_no_stalls_cycle_count(tmp_path):
    """Folded constant weights (block RAM ROM): the documented cycles without gaps."""
    rng = np.random.default_rng(10)
    spec = ConvSpec(width=7, height=5, weights=rng.integers(-9, 10, size=(4, 3, 1, 1)),
                    pe=3, simd=2)
    values, markers, stdout = run_icarus(tmp_path, spec, random_frames(spec, 1, 10),
                                         in_gaps=0, out_stall=0)
    assert int(stdout.split("DONE ")[1].split()[0]) == spec.cycles_per_frame


def test_border_modes_2d(tmp_path):
    """Border pixels from the line buffer rows and the window chain, in the Verilog: reflect-101
    with stride and dilation, and a replicated layer without gaps at the documented cycles."""
    kernel = np.random.default_rng(11).integers(-9, 10, size=(3, 3))
    spec = ConvSpec(width=11, height=8, kernel=kernel, stride=(1, 2), dilation=(2, 1),
                    padding=(2, 1), border="reflect-101")
    frames = random_frames(spec, 3, 11)
    assert (run_spec(spec, frames[0]) != run_spec(spec.replace(border="constant"),
                                                  frames[0])).any()
    for sub in "ab":
        (tmp_path / sub).mkdir()
    check(tmp_path / "a", spec, frames, seed=11)
    rng = np.random.default_rng(12)
    layer = ConvSpec(width=7, height=5, weights=rng.integers(-9, 10, size=(2, 2, 3, 3)),
                     padding="same", border="replicate")
    values, markers, stdout = run_icarus(tmp_path / "b", layer, random_frames(layer, 1, 12),
                                         in_gaps=0, out_stall=0)
    assert int(stdout.split("DONE ")[1].split()[0]) == layer.cycles_per_frame


def test_border_modes_1d(tmp_path):
    """1-D taps picked from the tap line (reflect) or the constant border value."""
    for sub in "ab":
        (tmp_path / sub).mkdir()
    spec = Conv1dSpec(length=13, kernel=[3, -1, 4, -1, 5], padding=(2, 1), stride=2,
                      border="reflect", in_signed=True)
    check(tmp_path / "a", spec, random_frames(spec, 3, 13), seed=13)
    spec = Conv1dSpec(length=9, kernel=[2, 7, -1], padding="same", border_value=-77,
                      in_signed=True)
    check(tmp_path / "b", spec, random_frames(spec, 3, 14), seed=14)


@pytest.mark.parametrize("lanes_", [2, 4])
def test_pixels_per_clock(tmp_path, lanes_):
    """N pixels per clock: wide beats, reflect-101 borders, runtime coefficients, a partial
    last output beat (valid padding on the x axis)."""
    spec = ConvSpec(width=4 * lanes_, height=7, kernel_shape=(3, 3), coeff_bits=5,
                    padding=(1, 0), border="reflect-101", pixels_per_clock=lanes_)
    rng = np.random.default_rng(7)
    kernels = [rng.integers(-16, 16, size=(3, 3)) for _ in range(2)]
    check(tmp_path, spec, random_frames(spec, 2, 7), kernels, seed=7)


def test_pixels_per_clock_no_stalls_cycle_count(tmp_path):
    spec = ConvSpec(width=16, height=6, kernel=[[1, 2, 1], [2, 4, 2], [1, 2, 1]],
                    padding="same", border="replicate", pixels_per_clock=4)
    values, markers, stdout = run_icarus(tmp_path, spec, random_frames(spec, 1, 8),
                                         in_gaps=0, out_stall=0)
    assert int(stdout.split("DONE ")[1].split()[0]) == spec.cycles_per_frame
