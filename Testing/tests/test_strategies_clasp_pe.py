"""ClaSP PE for slices (issue 15): foreground share, power noise, noise that decays with rounds.

The pool is real MNI anatomy with simulated new lesions (the cold-start fixture);
the model outputs are given as ``PoolOutputs`` the way a caller that already ran
the Predictor passes them to the session.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_strategies_cold_start import NZ, pool  # noqa: F401  (fixture)

from LongitudinalALLib.active.strategies import QueryContext, get_strategy
from LongitudinalALLib.active.strategies.clasp_pe import exponential_schedule, power_noise
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.model.inference import PoolOutputs

PREDICTED = [3, 9, 14, 20, 27, 31]  # slices where the model "sees" a lesion (p >= 0.5 in a blob)


def _outputs(images, fg, rng) -> PoolOutputs:
    """Low-confidence background everywhere (entropy from noise) and confident-ish blobs on PREDICTED."""
    n, _, h, w = images.shape
    probs = rng.uniform(0.0, 0.3, size=(n, h, w)).astype(np.float32)
    for j, i in enumerate(PREDICTED):
        probs[i, 40:46, 40:46] = 0.55 + 0.06 * j  # blob: H*p differs per slice
    probs *= fg
    return PoolOutputs(probs, np.zeros((n, 4), np.float32), np.zeros((n, 5), np.float32))


def _ctx(pool, round_index=1, seed=0, labelled=None):  # noqa: F811
    images, fg = pool
    lab = np.zeros(len(images), bool) if labelled is None else labelled
    return QueryContext(images, fg, lab, rng=np.random.default_rng(seed), round_index=round_index,
                        outputs=_outputs(images, fg, np.random.default_rng(42)))


def test_two_thirds_of_a_query_come_from_predicted_lesion_slices(pool):  # noqa: F811
    strat = get_strategy("clasp_pe", noise=False)
    for k in (3, 6, 9):
        picks = strat.select(_ctx(pool), k).indices
        assert len(picks) == k == len(set(picks.tolist()))
        n_fg = int(np.isin(picks, PREDICTED).sum())
        assert n_fg == round(0.66 * k), (k, picks)
    # without noise, the foreground share is the top of H * p (the most uncertain predicted lesion first)
    fg, ent, lesion = strat.channels(_ctx(pool))
    assert sorted(np.flatnonzero(lesion).tolist()) == PREDICTED
    top_fg = sorted(PREDICTED, key=lambda i: -fg[i])[:4]
    assert set(top_fg) <= set(strat.select(_ctx(pool), 6).indices.tolist())


def test_fewer_predicted_slices_than_the_share_leaves_the_rest_to_entropy(pool):  # noqa: F811
    labelled = np.zeros(NZ, bool)
    labelled[PREDICTED[1:]] = True  # only one predicted-lesion slice is still unlabelled
    picks = get_strategy("clasp_pe").select(_ctx(pool, labelled=labelled), 9).indices
    assert len(picks) == 9 and not labelled[picks].any()
    assert PREDICTED[0] in picks.tolist()


def test_power_noise_samples_in_proportion_to_score_at_beta_one():
    rng = np.random.default_rng(0)
    wins = np.mean([np.argmax(power_noise(np.array([1.0, 3.0, 0.0]), 1.0, rng)) == 1 for _ in range(4000)])
    assert abs(wins - 0.75) < 0.03  # P(i first) = s_i / sum(s); a zero score never wins
    assert np.isneginf(power_noise(np.array([0.0]), 1.0, rng)[0])


def test_noise_decays_with_rounds(pool):  # noqa: F811
    strat = get_strategy("clasp_pe", rounds=5)
    np.testing.assert_allclose(exponential_schedule(5, 1.0, 100.0), [1, 10 ** 0.5, 10, 10 ** 1.5, 100])
    assert [strat.beta(r) for r in (0, 1, 5, 9)] == pytest.approx([1.0, 1.0, 100.0, 100.0])
    exact = set(get_strategy("clasp_pe", noise=False).select(_ctx(pool), 6).indices.tolist())

    def overlap(r):
        return np.mean([len(exact & set(strat.select(_ctx(pool, r, seed), 6).indices.tolist())) for seed in range(30)])

    early, late = overlap(1), overlap(5)
    assert late > early + 1.0 and late >= 4.5  # round 5: beta 100, close to the noiseless query (near-ties aside)


def test_bad_options_are_one_clear_error():
    with pytest.raises(InputError, match="fg_share"):
        get_strategy("clasp_pe", fg_share=1.5)
    with pytest.raises(InputError, match="schedule"):
        get_strategy("clasp_pe", beta_start=0.0)
