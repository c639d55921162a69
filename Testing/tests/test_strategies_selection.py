"""Issue 15: no collapse before the first lesion (cold-start mix), and spreading a query over subjects.

Real sessions on MNI anatomy (test_session.make_case), real scratch models.
The collapse seen on the learning curve (seed 2: the initial set held no
lesion, every uncertainty strategy stayed at Dice 0) is the state rebuilt here:
labels that are all "no new lesion", then an uncertainty query.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_session import make_case, new_session

from LongitudinalALLib.active.loop import ActiveLoop
from LongitudinalALLib.active.strategies import QueryContext, get_strategy
from LongitudinalALLib.active.strategies.selection import SelectionOptions, interleave, select_batch
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.model import Predictor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _lesion_positions(case) -> set[int]:
    return set(np.flatnonzero(case.labels.reshape(len(case.labels), -1).any(1)).tolist())


def _label_lesion_free(s, case, n=6):
    """Answer ``n`` lesion-free slices with tissue: the collapsed seed's initial set."""
    lesion = _lesion_positions(case)
    fg = case.foreground.reshape(len(case.foreground), -1).mean(1)
    free = [i for i in np.argsort(-fg) if i not in lesion][:n]
    for i in free:
        s.add_label(case.case_id, case.provenance[i].slice_index, np.zeros(case.images.shape[2:], np.uint8))


def _pure_ranking(s, name, k):
    images, fg, _ = s.pool_arrays()
    lab = np.concatenate([s.labelled_mask(c) for c in s.case_ids])
    ctx = QueryContext(images, fg, lab, predictor=Predictor(ActiveLoop(s).current_model(), device="cpu"))
    return select_batch(get_strategy(name), ctx, k, np.zeros(len(lab)), True)[0]


def test_interleave_keeps_the_share_in_every_prefix_and_never_repeats():
    out = interleave(np.array([10, 11, 12, 13]), np.array([11, 20, 21, 22, 23, 24]), 2 / 3)
    assert sorted(out.tolist()) == [10, 11, 12, 13, 20, 21, 22, 23, 24]
    first = np.isin(out, [10, 11, 12, 13])
    for m in range(1, 7):
        assert abs(first[:m].sum() - 2 / 3 * m) <= 1
    assert interleave(np.array([1]), np.array([2, 3]), 1.0).tolist() == [1, 2, 3]


def test_no_collapse_before_the_first_lesion(tmp_path):
    s = new_session(tmp_path, seed=2)
    case = make_case("c0")
    _label_lesion_free(s, case)
    lesion = _lesion_positions(case)
    cold = get_strategy("cold_start")
    images, fg, _ = s.pool_arrays()
    cold_picks = cold.select(QueryContext(images, fg, s.labelled_mask("c0")), math.ceil(0.5 * 4)).indices
    assert set(cold_picks.tolist()) & lesion  # the cold start sees the change
    picked = [s.position("c0", p.slice_index) for p in ActiveLoop(s).suggest(4, "entropy_mean").suggestions]
    assert set(cold_picks.tolist()) <= set(picked) and set(picked) & lesion  # mixed in: a lesion is asked for
    # switched off, the same query is the plain uncertainty ranking
    plain = [s.position("c0", p.slice_index) for p in ActiveLoop(s).suggest(4, "entropy_mean", selection={"cold_start_share": 0}).suggestions]
    assert plain == _pure_ranking(s, "entropy_mean", 4).tolist() and not set(plain) & lesion  # the collapse
    # once a labelled slice holds a lesion the strategy runs alone
    i = sorted(lesion)[0]
    s.add_label("c0", case.provenance[i].slice_index, case.labels[i])
    after = [s.position("c0", p.slice_index) for p in ActiveLoop(s).suggest(4, "entropy_mean").suggestions]
    assert after == _pure_ranking(s, "entropy_mean", 4).tolist()


def test_label_free_baselines_stay_pure(tmp_path):
    s = new_session(tmp_path, seed=2)
    _label_lesion_free(s, make_case("c0"))
    a = [p.slice_index for p in ActiveLoop(s).suggest(4, "fg_random").suggestions]
    s2 = new_session(tmp_path / "b", seed=2)
    _label_lesion_free(s2, make_case("c0"))
    b = [p.slice_index for p in ActiveLoop(s2).suggest(4, "fg_random", selection={"cold_start_share": 0}).suggestions]
    assert a == b


def test_per_subject_cap_and_round_robin_spread_a_query(tmp_path):
    s = new_session(tmp_path, n_cases=3, seed=1)
    capped = ActiveLoop(s).suggest(6, "cold_start", selection={"per_subject_cap": 2}).suggestions
    assert sorted(np.unique([p.case_id for p in capped], return_counts=True)[1].tolist()) == [2, 2, 2]
    robin = ActiveLoop(s).suggest(6, "cold_start", selection={"round_robin": True}).suggestions
    cases = [p.case_id for p in robin]
    assert cases[:3] == cases[3:] and len(set(cases[:3])) == 3  # each subject's best in turn
    uncapped = [p.case_id for p in ActiveLoop(s).suggest(6, "cold_start").suggestions]
    assert max(uncapped.count(c) for c in set(uncapped)) > 2  # the cap changed the query
    n = len(s.suggestion_batches())
    with pytest.raises(InputError, match="cap of 1 slices per subject allows only 3 of the 6"):
        ActiveLoop(s).suggest(6, "cold_start", selection={"per_subject_cap": 1}).suggestions
    with pytest.raises(InputError, match="Unknown selection options"):
        ActiveLoop(s).suggest(6, "cold_start", selection={"cap": 1}).suggestions
    assert len(s.suggestion_batches()) == n  # refused queries write nothing


@pytest.mark.parametrize("bad", [{"cold_start_share": 2}, {"per_subject_cap": 0}, {"round_robin": "yes"}])
def test_bad_selection_options_are_one_clear_error(bad):
    with pytest.raises(InputError):
        SelectionOptions.from_dict(bad)


def test_every_pick_says_why_with_the_score_of_its_rule(tmp_path):
    """Issue 27: a cold-start pick showed the strategy's score 0.0000 at rank 3 and read as a bug."""
    from LongitudinalALLib.active.strategies.clasp_pe import LESION_REASON
    from LongitudinalALLib.active.suggestions import Suggestion

    s = new_session(tmp_path, seed=2)
    case = make_case("c0")
    _label_lesion_free(s, case)
    picked = ActiveLoop(s).suggest(6, "clasp_pe").suggestions
    cold = get_strategy("cold_start")
    images, fg, _ = s.pool_arrays()
    saliency = cold.score(QueryContext(images, fg, s.labelled_mask("c0"), pixel_mm=s.geometry("c0").spacing_mm))
    reasons = {p.reason for p in picked}
    assert cold.reason in reasons and reasons <= {cold.reason, LESION_REASON, "explore: uncertain tissue"}
    for p in picked:
        row = s.position("c0", p.slice_index)
        if p.reason == cold.reason:  # the rule's own score, not the strategy's
            assert p.rule_score == pytest.approx(saliency[row]) and p.rule_score > 0
        elif p.reason == LESION_REASON:  # summed entropy x probability: under the summed entropy shown as score
            assert 0 < p.rule_score < p.score
        else:
            assert p.rule_score == pytest.approx(p.score)
        assert p.why().startswith(p.reason) and Suggestion.from_dict(p.to_dict()) == p
    stored = s.suggestion_batches()[-1]
    assert [d.reason for d in stored.slices] == [p.reason for p in picked]  # kept in the session
    plain = ActiveLoop(s).suggest(3, "entropy_mean", selection={"cold_start_share": 0}).suggestions
    assert {p.reason for p in plain} == {"highest entropy_mean score"}
