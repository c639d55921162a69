"""Diversity strategies on hand-made embeddings whose right answer is known, plus real-model runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from LongitudinalALLib.active.strategies import QueryContext, get_strategy
from LongitudinalALLib.active.strategies.diversity import k_center_greedy, kmeans_pp_seeding
from LongitudinalALLib.model import ModelConfig, PoolOutputs, Predictor, build_model


def _ctx(probs=None, emb=None, grads=None, labelled=None, n=None, seed=0) -> QueryContext:
    n = n or len(emb if emb is not None else grads)
    probs = np.full((n, 8, 8), 0.3, np.float32) if probs is None else np.asarray(probs, np.float32)
    emb = np.zeros((n, 2), np.float32) if emb is None else np.asarray(emb, np.float32)
    grads = np.zeros((n, 3), np.float32) if grads is None else np.asarray(grads, np.float32)
    lab = np.zeros(n, bool) if labelled is None else labelled
    return QueryContext(np.zeros((n, 3, 8, 8), np.float32), np.ones((n, 8, 8), bool), lab,
                        outputs=PoolOutputs(probs, emb, grads), rng=np.random.default_rng(seed))


def test_k_center_picks_the_far_point_and_respects_centres():
    x = np.array([[0, 0], [0.1, 0], [0, 0.2], [10, 0], [5, 5], [0.2, 0.1]], np.float32)
    # labelled slice 0 is the only centre: the farthest point comes first, then the next gap
    picks = k_center_greedy(x, np.array([1, 2, 3, 4, 5]), np.array([0]), 2)
    assert list(picks) == [3, 4]
    # no centres: start near the candidates' mean, then the far point
    picks = k_center_greedy(x, np.arange(6), np.array([], int), 3)
    assert picks[1] == 3 and len(set(picks)) == 3
    # more picks than candidates: each candidate once
    assert sorted(k_center_greedy(x, np.array([1, 3]), np.array([0]), 5)) == [1, 3]


def test_k_center_matches_a_brute_force_greedy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    cand, centres = np.arange(10, 60), np.arange(10)
    picks = k_center_greedy(x, cand, centres, 8)
    chosen = list(centres)
    expect = []
    for _ in range(8):
        d = np.linalg.norm(x[cand][:, None] - x[chosen][None], axis=2).min(axis=1)
        d[np.isin(cand, expect)] = -1
        j = int(cand[np.argmax(d)])
        expect.append(j)
        chosen.append(j)
    assert list(picks) == expect


def test_coreset_strategy_uses_labelled_slices_as_centres():
    emb = np.array([[0, 0], [0.1, 0], [8, 8], [0, 0.1], [-6, 0], [8.1, 8]], np.float32)
    lab = np.zeros(6, bool)
    lab[0] = True
    ctx = _ctx(emb=emb, labelled=lab)
    s = get_strategy("coreset")
    assert list(s.select(ctx, 2).indices) == [5, 4]  # not 2, a near duplicate of 5
    assert s.score(ctx)[0] == 0 and np.argmax(s.score(ctx)) == 5
    lab[5] = True
    assert list(s.select(_ctx(emb=emb, labelled=lab), 1).indices) == [4]


def test_cluster_margin_round_robins_over_clusters_smallest_first():
    n = 12
    probs = np.full((n, 8, 8), 0.02, np.float32)
    for i, p in enumerate([0.5, 0.48, 0.46, 0.44, 0.42, 0.40]):
        probs[i] = p  # slices 0..5 have the smallest margins, in this order
    emb = np.zeros((n, 2), np.float32)
    emb[:4] = [[0, 0], [0.1, 0], [0, 0.1], [0.1, 0.1]]  # cluster X: 0-3
    emb[4:6] = [[9, 9], [9.1, 9]]  # cluster Y: 4, 5
    emb[6:] = [[-9, 0]] * 6
    ctx = _ctx(probs=probs, emb=emb)
    assert list(get_strategy("margin").select(ctx, 2).indices) == [0, 1]
    s = get_strategy("cluster_margin", margin_factor=3)
    assert list(s.select(ctx, 2).indices) == [4, 0]  # smallest cluster first, each its lowest margin
    two = get_strategy("cluster_margin", margin_factor=2, n_clusters=2)
    assert list(two.select(ctx, 3).indices) == [4, 0, 5]


def test_kmeans_pp_first_pick_is_the_largest_gradient():
    g = np.array([[0.1, 0], [3, 4], [0, 0.2]], np.float32)
    assert kmeans_pp_seeding(g, 1, np.random.default_rng(0))[0] == 1


def test_badge_picks_diverse_high_gradient_slices():
    rng = np.random.default_rng(0)
    big = {"A": [10, 0, 0], "B": [-10, 0, 0], "C": [0, 10, 0]}
    rows, group = [], []
    for name, centre in big.items():
        for _ in range(3):
            rows.append(np.array(centre) + rng.normal(scale=0.05, size=3))
            group.append(name)
    for _ in range(30):  # confident slices: tiny gradients
        rows.append(rng.normal(scale=0.05, size=3))
        group.append("small")
    g = np.array(rows, np.float32)
    group = np.array(group)
    small_picks, covered = 0, []
    for seed in range(20):
        picks = get_strategy("badge").select(_ctx(grads=g, seed=seed), 3).indices
        assert len(set(picks)) == 3
        assert group[picks[0]] != "small"  # largest norm first
        small_picks += int(np.sum(group[picks] == "small"))
        covered.append(len(set(group[picks]) - {"small"}))
    # 30 of 39 slices are "small": uniform sampling would take ~46 of the 60 picks; D^2 sampling
    # gives each small slice ~1/4 the weight of a far large one (expected ~27 after the first pick)
    assert small_picks <= 30
    assert np.mean(covered) >= 1.9
    assert get_strategy("badge").score(_ctx(grads=g))[:9].min() > 9


def test_lmi_hybrid_takes_uncertain_slices_then_spreads_them():
    n = 10
    probs = np.full((n, 8, 8), 0.1, np.float32)
    probs[0], probs[1], probs[2] = 0.5, 0.49, 0.48
    emb = np.zeros((n, 2), np.float32)
    emb[1] = [0.01, 0]  # near duplicate of slice 0
    emb[2] = [5, 0]
    emb[3:] = [0, 0.5]
    ctx = _ctx(probs=probs, emb=emb)
    assert list(get_strategy("entropy_mean").select(ctx, 2).indices) == [0, 1]
    hybrid = get_strategy("lmi_hybrid", uncertainty="entropy", factor=2)
    assert list(hybrid.select(ctx, 2).indices) == [0, 2]
    emb[9] = [40, 40]  # far away but certain: never a candidate
    assert 9 not in hybrid.select(_ctx(probs=probs, emb=emb), 3).indices


@pytest.mark.parametrize("name", ["coreset", "cluster_margin", "badge", "lmi_hybrid"])
def test_real_model_selection_is_valid(name):
    rng = np.random.default_rng(1)
    n = 14
    images = rng.normal(size=(n, 3, 32, 32)).astype(np.float32)
    fg = np.ones((n, 32, 32), bool)
    fg[13] = False
    lab = np.zeros(n, bool)
    lab[[0, 7]] = True
    torch.manual_seed(0)
    pred = Predictor(build_model(ModelConfig(channels=(4, 8, 16), strides=(2, 2), head_features=4)), device="cpu")
    ctx = QueryContext(images, fg, lab, pred)
    kw = {"passes": 3} if name == "lmi_hybrid" else {}
    picks = get_strategy(name, **kw).select(ctx, 5).indices
    assert len(picks) == 5 and len(set(picks)) == 5
    assert not set(picks) & {0, 7, 13}
