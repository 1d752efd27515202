# amaranth: UnusedElaboratable=no
"""``python -m sim.digits --no-synth``: the digits classifier's accuracies, the hardware equal
to onnxruntime on every held-out score, the cycles per inference."""

import json

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

from convhw.fastsim import available                                     # noqa: E402
from sim import digits                                                   # noqa: E402


@pytest.mark.skipif(not available(), reason="needs Verilator (the compiled backend)")
def test_digits_held_out_through_the_hardware(capsys):
    status = digits.main(["--target", "ice40-up5k", "--held-out-only", "--no-synth", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["match"] and report["placed"]
    held = report["sets"]["held out"]
    assert held["images"] == 360 and held["float"] >= 0.95 and held["onnxruntime_int8"] >= 0.95
    target, = report["targets"]
    assert target["max_multipliers"] == 8 and target["multipliers"] <= 8
    one = target["sets"]["held out"]
    assert one["equal_onnxruntime"] == one["equal_reference"] == one["scores"] == 3600
    assert one["accuracy"] == held["onnxruntime_int8"]
    # Back to back: the bottleneck's interval per inference, plus one frame's fill once.
    bottleneck = target["bottleneck_cycles"]
    assert bottleneck <= one["cycles_per_inference"] <= \
        bottleneck + (bottleneck + target["latency"]) / 360


def test_bad_folding_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "f.json"
    path.write_text('{"conv9": {"pe": 1}}')
    assert digits.main(["--no-synth", "--folding", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == ("python -m sim.digits: error: folding override for unknown layer 'conv9'; "
                   "layers: conv1, pool1, conv2, dense\n")


def test_nextpnr_utilization_is_read(tmp_path):
    log = tmp_path / "nextpnr.log"
    log.write_text("Info: Device utilisation:\nInfo: \t         ICESTORM_LC:   14720/   5280   "
                   "278%\nInfo: \t        ICESTORM_DSP:       8/      8   100%\n")
    assert digits._utilization(str(log)) == {"ICESTORM_LC": [14720, 5280],
                                             "ICESTORM_DSP": [8, 8]}
