"""The digits classifier end to end: accuracy, hardware against onnxruntime, cycles, Fmax.

``sim/models/digits.onnx`` (``python -m sim.train_digits`` writes it) is a small int8 CNN for
scikit-learn's 8x8 digits. This script runs it on the held-out split the trainer kept (360
images) and on all 1,797 images:

- the float model (``sim/models/digits-float.onnx``) and the int8 model in onnxruntime;
- the hardware: the network as a chain of streaming cores, folded by the balancer for each
  target's DSP blocks (and, when it synthesizes for an iCE40, further until nextpnr places the
  logic: :func:`convhw.model_options.fold_to_place`), simulated cycle by cycle with the
  compiled backend (Verilator), every
  image of a set streamed back to back; its scores must equal onnxruntime's, every one;
- cycles per inference, measured, against the bottleneck layer's;
- Fmax and resources from Yosys and nextpnr (``--no-synth`` skips them), and inferences per
  second at that Fmax.

Run from the repository root::

    python -m sim.digits                       # iCE40 UP5K and ECP5-25k
    python -m sim.digits --target ice40-up5k --no-synth

Exit status 0 when the hardware matches onnxruntime on every score, the accuracy on all
images is at least 95% and every synthesis placed; 1 otherwise (a design that does not fit is
reported with nextpnr's utilization); 2 for bad options or a missing tool.
"""

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np

__all__ = ["main", "evaluate", "TARGETS", "GOAL_ACCURACY", "GOAL_MHZ"]

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
MODEL = os.path.join(MODELS, "digits.onnx")
FLOAT_MODEL = os.path.join(MODELS, "digits-float.onnx")
TARGETS = ("ice40-up5k", "ecp5-25k")
GOAL_ACCURACY = 0.95
#: The UP5K clock the network must place at: twice MARLANN's 29 MHz.
GOAL_MHZ = {"ice40-up5k": 58.0}


def _progress(message):
    print(f"  ... {message}", file=sys.stderr, flush=True)


def _accuracy(scores, labels):
    return float(np.mean(np.asarray(scores).argmax(1) == labels))


def _hardware(network, chain, images):
    """``(scores, codes, result)`` of ``images`` streamed back to back through ``chain``."""
    from amaranth.hdl import UnusedElaboratable

    from convhw.gateware import Chain
    from convhw.harness import simulate
    from convhw.onnx import input_codes, output_values

    frames = list(input_codes(network, images) - network.input.zero_point)
    with warnings.catch_warnings():
        # The compiled model is cached: the cores need no elaboration when it is reused.
        warnings.simplefilter("ignore", UnusedElaboratable)
        result = simulate(Chain(chain), frames, backend="fast")
        gc.collect()
    centred = np.stack(result.frames)
    return (output_values(network, centred), output_values(network, centred, codes=True),
            result)


def evaluate(target, *, network, images, labels, sets, onnxruntime, reference, synth=True,
             max_multipliers=None, overrides=None, seed=1, build_dir=None):
    """One target: fold, simulate every set, compare, synthesize. A dict of the figures."""
    from convhw.folding import balance_network, default_budget

    budget = default_budget(target) if max_multipliers is None else max_multipliers
    folding = balance_network(network, max_multipliers=budget, overrides=overrides)
    note = None
    if synth and max_multipliers is None and overrides is None:
        # The DSP budget says nothing about logic: fold further until the part places it.
        from convhw.model_options import fold_to_place
        folding, note = fold_to_place(network, folding, target, progress=_progress,
                                      build_dir=build_dir)
    chain = network.chain(folding.foldings)
    facts = {"target": target, "max_multipliers": budget, "multipliers": chain.multipliers,
             "folding_note": note,
             "folding": {layer.name: [layer.pe, layer.simd] for layer in folding.layers
                         if not layer.fixed},
             "bottleneck": chain.names[chain.bottleneck],
             "bottleneck_cycles": chain.cycles_per_frame, "latency": chain.latency, "sets": {}}
    for name, index in sets.items():
        _progress(f"{target}: simulating {len(index)} images back to back (compiled backend)")
        started = time.perf_counter()
        scores, codes, result = _hardware(network, chain, images[index])
        facts["sets"][name] = {
            "images": len(index), "accuracy": _accuracy(scores, labels[index]),
            "scores": int(scores.size),
            "equal_onnxruntime": int(np.sum(scores == onnxruntime[index])),
            "equal_reference": int(np.sum(codes == reference[index])),
            "cycles": result.cycles, "cycles_per_inference": result.cycles / len(index),
            "errors": result.errors[:5], "seconds": round(time.perf_counter() - started, 1)}
    if synth:
        from convhw.toolchain import ToolchainMissing, synthesize

        _progress(f"{target}: synthesizing (Yosys, nextpnr)")
        build_dir = build_dir or tempfile.mkdtemp(prefix=f"digits-{target}-")
        try:
            report = synthesize(chain, target, seed=seed, build_dir=build_dir,
                                progress=_progress).to_dict()
        except ToolchainMissing:
            raise
        except RuntimeError as error:     # a tool failed: most likely, the design did not fit
            facts["synth_error"] = " ".join(str(error).split())
            facts["utilization"] = _utilization(os.path.join(build_dir, "nextpnr.log"))
            return facts
        facts["synth"] = {key: report.get(key) for key in (
            "fmax_mhz", "logic_cells", "luts", "ffs", "brams", "dsps", "device", "seed",
            "seconds", "critical_path")}
        per_inference = max(s["cycles_per_inference"] for s in facts["sets"].values())
        facts["inferences_per_second"] = report["fmax_mhz"] * 1e6 / per_inference
    return facts


def _utilization(log_path):
    """nextpnr's ``Device utilisation`` lines: ``{cell type: [used, available]}``."""
    import re

    found = {}
    try:
        with open(log_path) as log:
            for line in log:
                match = re.search(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", line)
                if match:
                    found[match[1]] = [int(match[2]), int(match[3])]
    except OSError:
        pass
    return found


def _print_target(facts, names):
    folding = ", ".join(f"{name} {pe}x{simd}" for name, (pe, simd) in facts["folding"].items())
    print(f"{facts['target']}: folding {folding} ({facts['multipliers']} of "
          f"{facts['max_multipliers']} multipliers); bottleneck {facts['bottleneck']}, "
          f"{facts['bottleneck_cycles']} cycles; latency {facts['latency']} cycles")
    if facts.get("folding_note"):
        print(f"  {facts['folding_note']}")
    for name in names:
        one = facts["sets"][name]
        print(f"  hardware, {name}: accuracy {one['accuracy']:.2%}; equals onnxruntime on "
              f"{one['equal_onnxruntime']} of {one['scores']} scores, the exact reference on "
              f"{one['equal_reference']}; {one['cycles_per_inference']:.1f} cycles per "
              f"inference back to back ({one['seconds']} s)")
        for error in one["errors"]:
            print(f"    stream error: {error}")
    if "synth_error" in facts:
        over = [f"{name} {used}/{available}" for name, (used, available)
                in facts["utilization"].items() if used > available]
        print(f"  synthesis FAILED{': does not fit, ' + ', '.join(over) if over else ''}")
        print(f"    {facts['synth_error'][:300]}")
    synth = facts.get("synth")
    if synth:
        goal = GOAL_MHZ.get(facts["target"])
        verdict = "" if goal is None else \
            f" ({'meets' if synth['fmax_mhz'] >= goal else 'BELOW'} the {goal:g} MHz goal)"
        lcs = f"{synth['logic_cells']} logic cells, " if synth.get("logic_cells") else ""
        print(f"  Fmax {synth['fmax_mhz']:.1f} MHz{verdict}; {lcs}{synth['luts']} LUTs, "
              f"{synth['ffs']} FFs, {synth['brams']} block RAMs, {synth['dsps']} DSPs "
              f"(seed {synth['seed']}, {synth['seconds']:.0f} s)")
        print(f"  {facts['inferences_per_second']:,.0f} inferences/s at Fmax")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m sim.digits",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", choices=TARGETS + ("ecp5-85k",),
                        help="fold and synthesize for this part (repeatable; default: "
                             + " and ".join(TARGETS) + ")")
    parser.add_argument("--no-synth", action="store_true", help="skip Yosys and nextpnr")
    parser.add_argument("--held-out-only", action="store_true",
                        help="simulate the 360 held-out images only, not all 1,797 too")
    parser.add_argument("--max-multipliers", type=int, metavar="N",
                        help="multiplier budget (default: each target's DSP blocks)")
    parser.add_argument("--folding", metavar="FILE.json",
                        help='per-layer overrides, e.g. {"conv2": {"pe": 4, "simd": 2}}')
    parser.add_argument("--seed", type=int, default=1, help="nextpnr seed (default 1)")
    parser.add_argument("--build-dir", metavar="DIR",
                        help="keep the synthesis files in DIR/<target>")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    targets = args.target or list(TARGETS)

    try:
        from convhw.folding import balance_network, default_budget, read_overrides
        from convhw.onnx import read_model, run_network
        from sim.train_digits import load, onnxruntime_scores

        overrides = None if args.folding is None else read_overrides(args.folding)
        images, labels, _, test_index = load()
        network = read_model(MODEL)
        for target in targets:     # bad overrides or budgets: before anything slow
            balance_network(network, overrides=overrides,
                            max_multipliers=args.max_multipliers or default_budget(target))
        sets = {"held out": test_index}
        if not args.held_out_only:
            sets["all"] = np.arange(len(images))
        _progress("onnxruntime: float and int8 models")
        float_scores = onnxruntime_scores(FLOAT_MODEL, images)
        int8_scores = onnxruntime_scores(MODEL, images)
        reference = run_network(network, images, codes=True)
        report = {"model": os.path.relpath(MODEL), "sets": {}, "targets": []}
        for name, index in sets.items():
            report["sets"][name] = {"images": len(index),
                                    "float": _accuracy(float_scores[index], labels[index]),
                                    "onnxruntime_int8": _accuracy(int8_scores[index],
                                                                  labels[index])}
        for target in targets:
            build_dir = None if args.build_dir is None else os.path.join(args.build_dir, target)
            report["targets"].append(evaluate(
                target, network=network, images=images, labels=labels, sets=sets,
                onnxruntime=int8_scores, reference=reference, synth=not args.no_synth,
                max_multipliers=args.max_multipliers, overrides=overrides, seed=args.seed,
                build_dir=build_dir))
    except (ImportError, ValueError, RuntimeError, OSError) as error:
        message = " ".join(str(error).split())
        print(f"python -m sim.digits: error: {message}", file=sys.stderr)
        return 2

    match = all(one["equal_onnxruntime"] == one["scores"] and not one["errors"]
                for facts in report["targets"] for one in facts["sets"].values())
    accurate = all(one["accuracy"] >= GOAL_ACCURACY for facts in report["targets"]
                   for name, one in facts["sets"].items() if name == "all")
    placed = not any("synth_error" in facts for facts in report["targets"])
    report.update(match=match, goal_accuracy=GOAL_ACCURACY, accurate=accurate, placed=placed)
    ok = match and accurate and placed
    if args.json:
        print(json.dumps(report))
        return 0 if ok else 1
    names = list(sets)
    print(f"digits: {report['model']}, scikit-learn load_digits, held out = the trainer's "
          f"20% split ({len(test_index)} images)")
    for name in names:
        one = report["sets"][name]
        print(f"  {name} ({one['images']}): float {one['float']:.2%}, onnxruntime int8 "
              f"{one['onnxruntime_int8']:.2%}")
    for facts in report["targets"]:
        _print_target(facts, names)
    print(f"hardware == onnxruntime on every score: {'yes' if match else 'NO'}; accuracy on "
          f"all images >= {GOAL_ACCURACY:.0%}: {'yes' if accurate else 'NO'}"
          f"{'' if placed else '; a synthesis FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
