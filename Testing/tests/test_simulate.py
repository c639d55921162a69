"""`longitudinal-al simulate`: two oracle rounds on a tiny cohort, metrics in [0, 1], resumable."""

from __future__ import annotations

import json
import math

import pytest

from LongitudinalALLib.commands.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _ok(x) -> bool:
    return x is not None and not math.isnan(x) and 0.0 <= x <= 1.0


@pytest.mark.slow
def test_simulate_two_rounds(tiny_cohort, tmp_path, capsys):
    """On the session's shared cohort (conftest ``tiny_cohort``, the one make-cohort call and prepared cache the
    resume tests use too)."""
    cohort = tiny_cohort
    capsys.readouterr()
    out = tmp_path / "sim"
    argv = ["simulate", "--cohort", str(cohort), "--strategy", "entropy_mean", "--rounds", "2", "--per-round", "4",
            "--seed", "0", "--init-weights", "scratch", "--size", "64", "--spacing", "4", "--epochs", "1",
            "--steps-per-epoch", "2", "--crop", "32", "--batch-size", "4", "--device", "cpu", "--out", str(out), "--quiet"]
    assert main(argv + ["--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    rounds = record["rounds"]
    assert [r["round"] for r in rounds] == [1, 2] and [r["labels"] for r in rounds] == [4, 8]
    for r in rounds:
        m = r["metrics"]
        assert _ok(m["dice"]) and _ok(m["lesion_f1"]) and _ok(m["lesion_precision"]) and _ok(m["lesion_recall"])
        assert m["n_lesion_subjects"] >= 1 and 0 < r["fraction"] < 1
        for s in r["subjects"]:
            assert 0.0 <= s["dice"] <= 1.0
    # resuming with one more round keeps the two finished rounds and adds the third
    assert main([a if a != "2" or i != argv.index("--rounds") + 1 else "3" for i, a in enumerate(argv)]) == 0
    text = capsys.readouterr().out
    assert "    3      12" in text
    again = json.loads((out / "simulation.json").read_text())
    assert again["rounds"][:2] == rounds and len(again["rounds"]) == 3


def test_simulate_starts_where_the_slicer_module_starts(tmp_path, capsys):
    """Default --init-weights is the module's (bundled, 256 px at 1 mm); a start that cannot be used is one line."""
    from LongitudinalALLib.commands.cli import build_parser
    from LongitudinalALLib.commands.simulate import _start
    from LongitudinalALLib.scene.logic import RunOptions

    args = build_parser().parse_args(["simulate", "--cohort", str(tmp_path)])
    assert args.init_weights == RunOptions().init_weights == "bundled"
    assert _start(args) == ("bundled", None)
    assert (args.size, args.spacing) == (RunOptions().size, RunOptions().spacing_mm)
    for argv, words in ((["--model", "small"], "--model small cannot start from bundled"),
                        (["--init-weights", str(tmp_path / "w.safetensors")], "do not exist")):
        assert main(["simulate", "--cohort", str(tmp_path), *argv, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1
    args = build_parser().parse_args(["simulate", "--cohort", str(tmp_path), "--init-weights", "scratch"])
    assert _start(args)[1]["channels"] == [8, 16, 32, 64] and (args.size, args.spacing) == (128, 2.0)
