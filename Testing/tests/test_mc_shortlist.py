"""Issue 14: MC dropout only on a shortlist picked by the deterministic pass (Predictor rows, QueryContext)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from LongitudinalALLib.active.strategies import QueryContext, get_strategy, rank_candidates
from LongitudinalALLib.active.strategies.base import MC_MIN_SHORTLIST
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.model import ModelConfig, Predictor, build_model
from LongitudinalALLib.model.reductions import binary_entropy

N = 40


@pytest.fixture(scope="module")
def pool():
    torch.set_num_threads(1)
    images = np.random.default_rng(7).normal(size=(N, 3, 32, 32)).astype(np.float32)
    half = 3 + np.arange(N) % 12  # tissue squares of growing size around the centre
    dist = np.abs(np.arange(32)[:, None] - 15.5)
    fg = np.maximum(dist, dist.T)[None] < half[:, None, None]
    fg[[4, 30]] = False  # no tissue
    torch.manual_seed(0)
    model = build_model(ModelConfig(channels=(4, 8, 16), strides=(2, 2), head_features=4))
    with torch.no_grad():
        model.head.weight.mul_(8.0)  # spread the probabilities: entropies differ between slices
    return images, fg, Predictor(model, device="cpu", batch_size=4)


def _count_forward_rows(model):
    """Rows that go through the real network (a forward hook observes, nothing is replaced)."""
    seen: list[int] = []
    handle = model.register_forward_hook(lambda _m, inp, _o: seen.append(int(inp[0].shape[0])))
    return seen, handle


def _entropy(pred, images, fg):
    p = torch.from_numpy(pred.predict(images))
    h = binary_entropy(p) * torch.from_numpy(fg)
    return (h.sum((1, 2)) / torch.from_numpy(fg).sum((1, 2)).clamp(min=1)).double().numpy()


def test_predictor_rows_run_only_those_slices_with_the_same_numbers(pool):
    images, fg, pred = pool
    rows = np.array([1, 5, 9, 22, 23])
    seen, handle = _count_forward_rows(pred.model)
    try:
        got = pred.mc_statistics(images, passes=3, foreground=fg, seed=2, rows=rows)
    finally:
        handle.remove()
    assert sum(seen) == 3 * len(rows)  # T passes of the shortlist, nothing else
    alone = pred.mc_statistics(images[rows], passes=3, foreground=fg[rows], seed=2)
    np.testing.assert_array_equal(got.mutual_information[rows], alone.mutual_information)
    np.testing.assert_array_equal(got.predictive_entropy[rows], alone.predictive_entropy)
    others = np.setdiff1d(np.arange(N), rows)
    assert np.isnan(got.mutual_information[others]).all() and np.isnan(got.expected_entropy[others]).all()
    with_empty = pred.mc_statistics(images, passes=2, foreground=fg, rows=np.array([4, 5]))
    assert with_empty.mutual_information[4] == 0.0  # asked but without tissue: 0, as before
    for bad in (np.array([0, N]), np.array([[1, 2]]), np.array([True, False])):
        with pytest.raises(InputError, match="MC rows must be slice indices"):
            pred.mc_statistics(images, passes=2, rows=bad)


def test_context_runs_mc_on_the_most_uncertain_unlabelled_slices_only(pool):
    images, fg, pred = pool
    lab = np.zeros(N, bool)
    lab[[0, 1, 2, 3]] = True
    proxy = _entropy(pred, images, fg)
    cand = np.flatnonzero(~lab & fg.reshape(N, -1).any(1))
    want = set(cand[np.argsort(-proxy[cand], kind="stable")[:6]].tolist())
    ctx = QueryContext(images, fg, lab, pred, mc_shortlist=6)
    stats = ctx.mc(3, "mean")
    assert set(np.flatnonzero(~np.isnan(stats.mutual_information)).tolist()) == want
    picks = get_strategy("bald", passes=3).select(ctx, 8).indices
    assert set(picks[:6].tolist()) == want  # the shortlist first, by BALD ...
    rest = picks[6:]
    assert np.all(np.diff(proxy[rest]) <= 0) and not set(rest.tolist()) & set(np.flatnonzero(lab).tolist())
    outside = np.setdiff1d(cand, list(want))
    assert proxy[rest[0]] == proxy[outside].max()  # ... then by deterministic entropy


def test_auto_shortlist_size_and_small_pools_score_every_slice_as_before(pool):
    images, fg, pred = pool
    images, fg = images[:30], fg[:30]  # 29 slices with tissue: fewer than the minimum shortlist
    lab = np.zeros(30, bool)
    lab[7] = True
    ctx = QueryContext(images, fg, lab, pred)
    assert ctx.shortlist_size(10) == MC_MIN_SHORTLIST and ctx.mc_rows(10, "mean") is None
    assert len(QueryContext(*pool[:2], np.zeros(N, bool), pred).mc_rows(10, "mean")) == MC_MIN_SHORTLIST
    big = QueryContext(np.zeros((400, 3, 8, 8), np.float32), np.ones((400, 8, 8), bool), np.zeros(400, bool))
    assert big.shortlist_size(10) == 80 and big.shortlist_size(4) == 200
    assert QueryContext(images, fg, lab, pred, mc_shortlist=None).shortlist_size(10) is None
    old = QueryContext(images, fg, lab, pred, mc_shortlist=None).mc(3, "mean")
    new = ctx.mc(3, "mean")
    np.testing.assert_array_equal(old.mutual_information, new.mutual_information)
    for bad in (0, -3, "all", True, 2.5):
        with pytest.raises(InputError, match="MC shortlist"):
            QueryContext(images, fg, lab, pred, mc_shortlist=bad)


def test_lmi_hybrid_candidates_beyond_the_shortlist_follow_deterministic_entropy(pool):
    images, fg, pred = pool
    lab = np.zeros(N, bool)
    ctx = QueryContext(images, fg, lab, pred, mc_shortlist=3)
    proxy = _entropy(pred, images, fg)
    stats = ctx.mc(3, "mean")
    scored = np.flatnonzero(~np.isnan(stats.mutual_information))
    cand = np.flatnonzero(fg.reshape(N, -1).mean(1) >= 1e-3)
    unscored = np.setdiff1d(cand, scored)
    allowed = set(scored.tolist()) | set(unscored[np.argsort(-proxy[unscored], kind="stable")[:6]].tolist())
    picks = get_strategy("lmi_hybrid", passes=3, factor=3).select(ctx, 3).indices
    assert len(set(picks.tolist())) == 3 and set(picks.tolist()) <= allowed


def test_rank_candidates_puts_nan_after_numbers_ordered_by_the_unscored_key(pool):
    images, fg, pred = pool
    ctx = QueryContext(images[:6], np.ones((6, 32, 32), bool), np.zeros(6, bool))
    scores = np.array([np.nan, 0.5, np.nan, -np.inf, 0.9, np.nan])
    assert rank_candidates(ctx, scores, 0.0).tolist() == [4, 1, 3, 0, 2, 5]
    ctx.unscored_key = np.array([0.1, 0, 0.3, 0, 0, 0.2])
    assert rank_candidates(ctx, scores, 0.0).tolist() == [4, 1, 3, 2, 5, 0]


def test_mc_progress_counts_the_shortlist_and_shows_an_estimate(pool):
    images, fg, pred = pool
    seen: list[tuple[str, float, str]] = []
    ctx = QueryContext(images, fg, np.zeros(N, bool), pred, mc_shortlist=8,
                       progress=lambda stage, f, msg="": seen.append((stage, f, msg)))
    ctx.mc(2, "mean")
    mc = [(f, msg) for stage, f, msg in seen if stage == "MC dropout"]
    assert [f for f, _ in mc] == pytest.approx([0.5, 1.0])  # 8 slices in batches of 4
    assert mc[0][1].startswith("4/8 slices, about ") and mc[0][1].endswith(" left")
    assert mc[-1][1] == "8/8 slices, about 0 s left"
