"""Issue 2, "Block RAM": the line buffers of a W=640 core become block RAM, not flip-flops."""

import json
import math

import numpy as np
import pytest

from convhw import Conv2d, ConvSpec
from convhw.export import to_rtlil
from convhw.golden import run_spec
from convhw.harness import simulate
from convhw.toolchain import ToolchainMissing, find_tool
from convhw.toolchain.tools import run_tool

WIDTH, PIXEL_BITS = 640, 8


def _yosys_cells(tmp_path, spec, synth):
    """``(cell counts, names of block-RAM cells)`` after ``synth`` and ``stat``."""
    try:
        find_tool("yosys")
    except ToolchainMissing as error:
        pytest.skip(f"Yosys is not installed: {error}")
    (tmp_path / "conv2d.il").write_text(to_rtlil(spec, name="conv2d"))
    run_tool("yosys", ["-q", "-p", f"read_rtlil conv2d.il; {synth} -top conv2d -json net.json; "
                       "tee -q -o stat.json stat -json"],
             cwd=tmp_path, log_path=tmp_path / "yosys.log")
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    netlist = json.loads((tmp_path / "net.json").read_text())["modules"]["conv2d"]["cells"]
    return cells, netlist


def _line_buffer_cells(netlist, cell_type):
    return [name for name, cell in netlist.items()
            if cell["type"] == cell_type and "line_buffer" in name]


@pytest.mark.parametrize("kernel", [dict(kernel=[[1, 2, 1], [2, 4, 2], [1, 2, 1]]),
                                    dict(kernel_shape=(3, 3))], ids=["constant", "runtime"])
def test_ice40_line_buffers_are_sb_ram40_4k(tmp_path, kernel):
    spec = ConvSpec(width=WIDTH, height=480, **kernel)
    cells, netlist = _yosys_cells(tmp_path, spec, "synth_ice40 -device u")
    # Two rows of 640 8-bit pixels packed into 16-bit words: 640 x 16 in 256 x 16 blocks.
    assert len(_line_buffer_cells(netlist, "SB_RAM40_4K")) == math.ceil(WIDTH / 256) == 3
    flip_flops = sum(count for name, count in cells.items() if name.startswith("SB_DFF"))
    line_buffer_bits = 2 * WIDTH * PIXEL_BITS
    assert flip_flops < line_buffer_bits / 5, cells


def test_ecp5_line_buffers_are_dp16kd(tmp_path):
    spec = ConvSpec(width=WIDTH, height=480, kernel=[[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    cells, netlist = _yosys_cells(tmp_path, spec, "synth_ecp5")
    # 640 x 16 bits fit one DP16KD in its 1024 x 18 mode.
    assert len(_line_buffer_cells(netlist, "DP16KD")) == 1
    assert cells.get("TRELLIS_FF", 0) < 2 * WIDTH * PIXEL_BITS / 5, cells


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_line_buffer_exact_on_narrow_frames(width):
    """Rows of 1 and 2 positions read in their own cycle; from 3 on, the line buffer reads a
    column one position ahead. Both are exact under stalls, frame after frame."""
    spec = ConvSpec(width=width, height=5, kernel=[[1, 2], [3, -4], [5, 6]], padding=1)
    rng = np.random.default_rng(width)
    frames = [rng.integers(0, 256, size=spec.frame_shape) for _ in range(3)]
    for stall in (0.0, 0.6):
        result = simulate(Conv2d(spec), frames, in_stall=stall, out_stall=stall, seed=width)
        assert result.errors == []
        for frame, output in zip(frames, result.frames):
            np.testing.assert_array_equal(output, run_spec(spec, frame))


def test_layer_line_buffer_packs_every_channel(tmp_path):
    """Two rows of 4 channels of 8 bits: a 64-bit word per column, in 16-bit-wide blocks:
    ceil(64/16) * ceil(640/256) SB_RAM40_4K, the bound for the RAM's widest mode."""
    spec = ConvSpec(width=WIDTH, height=8, weights=np.ones((2, 4, 3, 3), dtype=int))
    cells, netlist = _yosys_cells(tmp_path, spec, "synth_ice40 -device u")
    assert len(_line_buffer_cells(netlist, "SB_RAM40_4K")) == 4 * math.ceil(WIDTH / 256) == 12


@pytest.mark.parametrize("runtime", [False, True], ids=["constant", "runtime"])
def test_folded_weights_live_in_block_ram(tmp_path, runtime):
    """A folded layer's weights (16 x 8 x 3 x 3 of 8 bits) are block RAM words, not LUTs."""
    rng = np.random.default_rng(1)
    shape = dict(kernel_shape=(3, 3), in_channels=8, out_channels=16) if runtime else \
        dict(weights=rng.integers(-128, 128, size=(16, 8, 3, 3)))
    spec = ConvSpec(width=16, height=8, pe=4, simd=2, **shape)
    cells, netlist = _yosys_cells(tmp_path, spec, "synth_ice40 -device u")
    weight_rams = [name for name, cell in netlist.items()
                   if cell["type"] == "SB_RAM40_4K" and "weights" in name]
    # 144 words of 8 lanes x 8 bits: 64-bit words in 16-bit-wide blocks of 256 words; twice
    # over at runtime (the active and the shadow half).
    assert len(weight_rams) == (8 if runtime else 4), cells
