"""`simulate` stopped at any point resumes to the same record as an uninterrupted run (reliability D6)."""

from __future__ import annotations

import json
import math

import pytest

from LongitudinalALLib.active import simulate
from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.active.store_labels import LabelBook
from LongitudinalALLib.commands.cli import main

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]


@pytest.fixture(scope="module")
def cohort(tiny_cohort):
    """The run's shared cohort (conftest): its pairs are registered once per run, for this file and test_simulate."""
    return tiny_cohort


def _argv(cohort, out):
    return ["simulate", "--cohort", str(cohort), "--strategy", "fg_random", "--rounds", "2", "--per-round", "3",
            "--seed", "0", "--init-weights", "scratch", "--size", "64", "--spacing", "4", "--epochs", "1",
            "--steps-per-epoch", "2", "--crop", "32", "--batch-size", "4", "--device", "cpu", "--out", str(out), "--quiet"]


def _comparable(obj):
    """The record without wall-clock fields (they differ between any two runs)."""
    if isinstance(obj, dict):
        return {k: _comparable(v) for k, v in obj.items() if "second" not in k and k not in ("time", "updated")}
    if isinstance(obj, list):
        return [_comparable(v) for v in obj]
    return "nan" if isinstance(obj, float) and math.isnan(obj) else obj


def _state(out):
    s = SessionStore.open(out)
    labels = sorted((r.case_id, r.slice_index, r.lesion_pixels) for r in s.labels())
    return labels, [[(x.case_id, x.slice_index) for x in sg.slices] for sg in s.suggestion_batches()], \
        s.round_number


@pytest.fixture(scope="module")
def reference(cohort, tmp_path_factory):
    import torch

    out = tmp_path_factory.mktemp("ref") / "sim"
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the tests (one_torch_thread): float sums depend on the thread count
    try:
        assert main(_argv(cohort, out)) == 0
    finally:
        torch.set_num_threads(before)
    return json.loads((out / "simulation.json").read_text()), _state(out)


class Stop(BaseException):
    """Stands for a kill: nothing after the raise runs in this process."""


def test_stop_during_evaluation_does_not_train_the_round_twice(cohort, reference, tmp_path, monkeypatch):
    real = simulate.evaluate
    calls = []

    def evaluate_then_die(*a, **k):
        calls.append(1)
        if len(calls) == 2:  # (call 1 scores round 0, the starting model) round 1 is committed to state.json;
            # simulation.json is not written yet
            raise Stop
        return real(*a, **k)

    monkeypatch.setattr(simulate, "evaluate", evaluate_then_die)
    out = tmp_path / "sim"
    with pytest.raises(Stop):
        main(_argv(cohort, out))
    assert SessionStore.open(out).round_number == 1
    assert main(_argv(cohort, out)) == 0
    record, state = json.loads((out / "simulation.json").read_text()), _state(out)
    assert state == reference[1]                     # 2 rounds, same labels and suggestions
    assert _comparable(record["rounds"]) == _comparable(reference[0]["rounds"])


def test_stop_while_labelling_resumes_with_the_same_slices(cohort, reference, tmp_path, monkeypatch):
    real = LabelBook._write_one  # writes one label file (the store's label half)
    written = []

    def write_then_die(self, *a, **k):
        if len(written) == 4:  # round 1 done (3 labels); one label of round 2 on disk
            raise Stop
        written.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(LabelBook, "_write_one", write_then_die)
    out = tmp_path / "sim"
    with pytest.raises(Stop):
        main(_argv(cohort, out))
    monkeypatch.setattr(LabelBook, "_write_one", real)
    assert main(_argv(cohort, out)) == 0
    record, state = json.loads((out / "simulation.json").read_text()), _state(out)
    assert state == reference[1]
    assert _comparable(record["rounds"]) == _comparable(reference[0]["rounds"])
