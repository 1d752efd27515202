"""Simulation speed: pysim against the fast (Verilator) backend on the same specs, in one run.

    python bench/simspeed.py                 # 3x3 and 7x7, 64x64 to 640x480
    python bench/simspeed.py --opt -O2       # another C++ optimization level for the models

For each kernel and frame size it prints the one-time build cost of the compiled model (built in
a fresh temporary cache, after Verilator's runtime library, whose one-time cost is printed
first), the wall time of a cached run (a new core object, so the Verilog
export and the cache lookup are included), the fast backend's cycles per second, and pysim's,
measured on the same spec. pysim is only run on the frame sizes up to ``--pysim-max`` pixels
(default 160x120; a 640x480 pysim run takes minutes): the speed-up of the larger frames is taken
against pysim's cycles per second on the largest frame it ran, and is marked so. Each output is
checked against the golden model. Times are wall clock, so a busy machine shows in them.
"""

import argparse
import importlib
import os
import tempfile
import time

import numpy as np

from convhw import Conv2d, ConvSpec, fastsim
from convhw.golden import run_spec
from convhw.harness import pysim

SIZES = [(64, 64), (160, 120), (320, 240), (640, 480)]


def kernel(size):
    return (np.arange(size * size).reshape(size, size) % 7 - 3).tolist()


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def measure(size, width, height, run_pysim, repeat):
    spec = ConvSpec(width=width, height=height, kernel=kernel(size), padding="same")
    frame = np.random.default_rng(0).integers(0, 256, spec.frame_shape)
    expected = run_spec(spec, frame)
    model, build_seconds = timed(fastsim.build, Conv2d(spec))
    assert model.built, "the benchmark builds in a fresh cache"
    runs = []
    for _ in range(repeat):
        fast, seconds = timed(fastsim.simulate, Conv2d(spec), [frame])
        runs.append(seconds)
        assert fast.errors == [] and np.array_equal(fast.frames[0], expected)
    row = {"kernel": f"{size}x{size}", "frame": f"{width}x{height}", "cycles": fast.total_cycles,
           "build_s": build_seconds, "fast_s": min(runs),
           "fast_cps": fast.total_cycles / min(runs), "pysim_cps": None}
    if run_pysim:
        slow, seconds = timed(pysim, Conv2d(spec), [frame])
        assert slow.total_cycles == fast.total_cycles
        assert np.array_equal(slow.frames[0], expected)
        row["pysim_s"], row["pysim_cps"] = seconds, slow.total_cycles / seconds
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kernels", type=int, nargs="+", default=[3, 7])
    parser.add_argument("--pysim-max", type=int, default=160 * 120,
                        help="run pysim only on frames of at most this many pixels")
    parser.add_argument("--repeat", type=int, default=3,
                        help="cached fast runs per spec (the fastest is shown)")
    parser.add_argument("--opt", default=None, help="C++ optimization flag for the models")
    args = parser.parse_args()
    try:
        version = fastsim.verilator_version()
    except fastsim.EngineMissing as error:
        raise SystemExit(str(error))
    build_module = importlib.import_module("convhw.fastsim.model")
    if args.opt:
        build_module.OPT = args.opt

    with tempfile.TemporaryDirectory(prefix="convhw-simspeed-") as cache:
        os.environ["CONVHW_CACHE"] = cache
        print(f"{version}, models built with {build_module.OPT}, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
        _, seconds = timed(fastsim.build, Conv2d(ConvSpec(width=4, height=3, kernel=[[1]])))
        print(f"First build in an empty cache (a 1x1 kernel on 4x3 frames), including Verilator's "
              f"runtime library, which is compiled once and then reused: {seconds:.1f} s\n")
        print("| kernel | frame | cycles | build (s) | fast run (s) | fast cycles/s "
              "| pysim cycles/s | speed-up |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for size in args.kernels:
            reference = None
            for width, height in SIZES:
                row = measure(size, width, height, width * height <= args.pysim_max,
                              args.repeat)
                if row["pysim_cps"] is not None:
                    reference = row["pysim_cps"]
                    pysim_text, note = f"{row['pysim_cps']:,.0f}", ""
                else:
                    pysim_text, note = "not run", " *"
                speedup = f"{row['fast_cps'] / reference:,.0f}x{note}" if reference else "-"
                print(f"| {row['kernel']} | {row['frame']} | {row['cycles']:,} "
                      f"| {row['build_s']:.1f} | {row['fast_s']:.3f} | {row['fast_cps']:,.0f} "
                      f"| {pysim_text} | {speedup} |", flush=True)
    print("\n* against pysim's cycles/s on the largest frame it ran for that kernel")


if __name__ == "__main__":
    main()
