"""Scenario: a low-pass FIR filter on a linear chirp, streamed through Conv1d.

A windowed-sinc low-pass (constant coefficients, so canonical-signed-digit adders and no
multipliers) filters a 12-bit chirp that sweeps from DC to Nyquist. The sequence goes through the
cycle-accurate simulation twice, once with random stalls on both streams and once without, and
must match the golden model bit for bit; the stall-free run must take exactly
``spec.cycles_per_frame`` cycles. The printout shows the filter doing its job: the chirp's low
end passes, its high end is attenuated.

Run ``python -m sim.fir`` (``--help`` for options). Exit status 0 when bit-exact, 1 otherwise.
"""

import argparse
import sys

import numpy as np

from convhw.gateware.conv1d import Conv1d
from convhw.golden import conv1d
from convhw.harness import describe_mismatch, simulate
from convhw.spec1d import Conv1dSpec

__all__ = ["chirp", "lowpass", "fir_spec", "main"]


def chirp(length, *, amplitude):
    """Integer linear chirp from 0 to 0.5 cycles per sample."""
    t = np.arange(length)
    phase = np.pi * 0.5 * t * t / length  # instantaneous frequency t / (2*length)
    return np.round(amplitude * np.sin(phase)).astype(np.int64)


def lowpass(taps, *, cutoff, scale):
    """Hamming-windowed sinc with gain ``scale`` at DC, rounded to integers."""
    n = np.arange(taps) - (taps - 1) / 2
    ideal = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(taps)
    return np.round(ideal / ideal.sum() * scale).astype(np.int64)


def fir_spec(length, taps, *, cutoff=0.1, frac_bits=12, in_bits=12):
    """A "same"-padded FIR that keeps ``in_bits`` signed samples (saturating)."""
    return Conv1dSpec(length=length, kernel=lowpass(taps, cutoff=cutoff, scale=1 << frac_bits),
                      padding="same", flip=True, in_bits=in_bits, in_signed=True,
                      shift=frac_bits, out_bits=in_bits)


def rms_db(values):
    return 20 * np.log10(max(np.sqrt(np.mean(np.square(values.astype(float)))), 1e-9))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m sim.fir", description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=1024, help="samples (default 1024)")
    parser.add_argument("--taps", type=int, default=31, help="FIR length (default 31)")
    parser.add_argument("--stall", type=float, default=0.2,
                        help="stall probability on both streams (default 0.2)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    spec = fir_spec(args.length, args.taps)
    x = chirp(args.length, amplitude=(1 << (spec.in_bits - 1)) - 1)
    expected = conv1d(x, spec.kernel, padding=spec.padding, flip=True, shift=spec.shift,
                      out_bits=spec.out_bits)
    print(f"{spec}")
    print(f"  {len(spec.terms)} adder-tree terms, tree depth {spec.tree_depth}, "
          f"accumulator {spec.acc_bits} bits, latency {spec.latency} cycles")

    ok = True
    for stall in (args.stall, 0.0):
        result = simulate(Conv1d(spec), [x], in_stall=stall, out_stall=stall, seed=args.seed)
        exact = bool(np.array_equal(result.frames[0], expected))
        ok &= exact and not result.errors
        line = (f"  stalls {stall:.0%}: {'bit-exact' if exact else 'MISMATCH'}, "
                f"{result.cycles} cycles first input to last output")
        if stall == 0.0:
            on_time = result.cycles == spec.cycles_per_frame
            ok &= on_time
            line += f" (spec.cycles_per_frame {spec.cycles_per_frame}"
            line += ")" if on_time else ", MISMATCH)"
        print(line)
        for error in result.errors:
            print(f"    {error}")
        if not exact:
            print(f"    {describe_mismatch(result.frames[0], expected)}")

    quarter = args.length // 4
    low = rms_db(expected[:quarter]) - rms_db(x[:quarter])
    high = rms_db(expected[-quarter:]) - rms_db(x[-quarter:])
    print(f"  gain: {low:+.1f} dB over the chirp's first quarter (0 to 0.125 cycles/sample), "
          f"{high:+.1f} dB over its last (0.375 to 0.5)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
