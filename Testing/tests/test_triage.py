"""Cohort triage (issue 15): pair probability, ranking, AUROC, the `triage` command, per-subject budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_session import make_case, new_session

from LongitudinalALLib.active.loop import ActiveLoop
from LongitudinalALLib.active.triage import auroc, pair_probability, triage_cases
from LongitudinalALLib.commands.cli import main
from LongitudinalALLib.model import Predictor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_auroc_agrees_with_scikit_learn_on_ties_and_random_scores():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.random(30) < 0.4
        s = np.round(rng.random(30), 1)  # many ties
        assert auroc(s, y) == pytest.approx(roc_auc_score(y, s))
    assert np.isnan(auroc([0.1, 0.2], [True, True]))  # one class only: undefined, not 0 or 1


def test_a_lesion_sized_cluster_outranks_scattered_noise_and_air_is_ignored():
    fg = np.zeros((4, 32, 32), bool)
    fg[:, 4:28, 4:28] = True
    noisy = np.full(fg.shape, 0.05, np.float32)
    noisy[0, 5, 5] = noisy[2, 20, 9] = noisy[3, 10, 26] = 0.95  # three isolated confident pixels
    lesion = np.full(fg.shape, 0.05, np.float32)
    lesion[1, 10:15, 10:15] = 0.8  # 25 pixels, a small lesion
    air = lesion.copy()
    air[:, :3, :3] = 1.0  # outside the foreground
    assert pair_probability(lesion, fg) > 0.75 > 0.2 > pair_probability(noisy, fg)
    assert pair_probability(air, fg) == pytest.approx(pair_probability(lesion, fg))


def test_triage_ranks_cases_by_their_probability(tmp_path):
    s = new_session(tmp_path, n_cases=2)
    cases = [s.case(c) for c in s.case_ids]
    predictor = Predictor(ActiveLoop(s).current_model(), device="cpu")
    rows = triage_cases(cases, predictor)
    expected = sorted((-pair_probability(predictor.predict(c.images), c.foreground), c.case_id) for c in cases)
    assert [r.case_id for r in rows] == [cid for _, cid in expected] and [r.rank for r in rows] == [1, 2]
    assert all(0.0 <= r.probability <= 1.0 and r.slices == len(cases[0].images) for r in rows)


def test_triage_command_is_read_only_and_shows_the_budget(tmp_path, capsys):
    s = new_session(tmp_path, n_cases=2)
    case = make_case("c0")
    s.add_label("c0", case.provenance[0].slice_index, np.zeros(case.images.shape[2:], np.uint8))
    s.close()
    before = (tmp_path / "s" / "state.json").read_bytes()
    assert main(["triage", "--session", str(tmp_path / "s"), "--cpu", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["rank"] for p in out["pairs"]] == [1, 2]
    assert {p["case_id"]: p["budget"]["labelled"] for p in out["pairs"]} == {"c0": 1, "c1": 0}
    assert main(["triage", "--session", str(tmp_path / "s"), "--cpu"]) == 0
    text = capsys.readouterr().out
    assert "P(new lesion)" in text and ("contour" in text or "confirm no new lesion" in text)
    assert (tmp_path / "s" / "state.json").read_bytes() == before
    assert main(["triage", "--session", str(tmp_path / "s"), "--threshold", "1.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threshold 1.5" in err[0]


def test_suggest_spreads_over_subjects_and_prints_each_subjects_budget(tmp_path, capsys):
    new_session(tmp_path, n_cases=3).close()
    argv = ["suggest", "--session", str(tmp_path / "s"), "--strategy", "cold_start", "-k", "6", "--quiet"]
    assert main(argv + ["--per-subject-cap", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(np.unique([x["case_id"] for x in out["suggestions"]], return_counts=True)[1]) == [2, 2, 2]
    assert set(out["budget_per_subject"]) == {"c0", "c1", "c2"}
    assert main(argv + ["--round-robin"]) == 0
    text = capsys.readouterr().out
    assert all(f"  c{i}: 0 of " in text for i in range(3))
    assert main(argv + ["--per-subject-cap", "1"]) == 2
    assert "allows only 3 of the 6" in capsys.readouterr().err


class _Fixed:
    """Predictor stand-in returning the same probabilities for any images."""

    def __init__(self, probs):
        self.probs = probs

    def predict(self, images):
        return self.probs


def test_triage_counts_what_the_lesion_mask_step_keeps_not_every_pixel_over_the_threshold():
    from LongitudinalALLib.model.lesion_mask import LesionMaskConfig

    case = make_case("c0")
    probs = np.zeros(case.foreground.shape, np.float32)
    n = len(probs)
    k = int(np.argmax(case.foreground.reshape(n, -1).sum(1)))
    ys, xs = np.nonzero(case.foreground[k])
    cy, cx = int(np.median(ys)), int(np.median(xs))
    probs[k - 1:k + 2, cy - 2:cy + 3, cx - 2:cx + 3] = 0.95     # a confident lesion-sized blob
    probs[k, ys[0], xs[0]] = 0.6                                # a weak isolated pixel on another part of slice k
    probs[k + 4, cy, cx] = 0.6                                  # and one on a slice of its own
    config = LesionMaskConfig(threshold=0.5, peak=0.9, min_volume_mm3=3.0)
    (row,) = triage_cases([case], _Fixed(probs), mask_config=config)
    assert row.lesions == 1 and row.slices_flagged == 3  # p >= 0.5 alone: 2 lesions on 4 slices
    assert row.probability == pytest.approx(pair_probability(probs, case.foreground))
