"""Uncertainty strategies: full binary entropy, reductions, margin/least confidence, MC dropout, BALD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from LongitudinalALLib.active.strategies import QueryContext, get_strategy
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.model import (
    ModelConfig,
    PixelReduction,
    PoolOutputs,
    Predictor,
    binary_entropy,
    build_model,
)
from LongitudinalALLib.model.reductions import as_reduction

SMALL = ModelConfig(channels=(4, 8, 16), strides=(2, 2), head_features=4)
N, S = 12, 32


def _pool(seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(N, 3, S, S)).astype(np.float32)
    fg = np.zeros((N, S, S), bool)
    fg[:, 4:28, 4:28] = True
    fg[5] = False  # a slice outside the head
    return images, fg


def _predictor(seed: int = 0) -> Predictor:
    torch.manual_seed(seed)
    model = build_model(SMALL)
    with torch.no_grad():
        model.head.weight.mul_(6.0)
    return Predictor(model, device="cpu", batch_size=6)


def _ctx_from_probs(probs: np.ndarray, fg: np.ndarray | None = None, diff: np.ndarray | None = None) -> QueryContext:
    n, h, w = probs.shape
    images = np.zeros((n, 3, h, w), np.float32)
    if diff is not None:
        images[:, 2] = diff
    outputs = PoolOutputs(probs.astype(np.float32), np.zeros((n, 4), np.float32), np.zeros((n, 5), np.float32))
    return QueryContext(images, np.ones((n, h, w), bool) if fg is None else fg, np.zeros(n, bool), outputs=outputs)


def test_binary_entropy_full_form_and_finite_at_the_ends():
    p = torch.tensor([0.0, 1e-12, 0.1, 0.5, 0.9, 1.0])
    h = binary_entropy(p)
    assert torch.isfinite(h).all()
    assert h[0] == 0 and h[-1] == 0
    assert h[3] == pytest.approx(np.log(2))
    assert h[2] == pytest.approx(h[4])  # the (1-p) log(1-p) term makes it symmetric
    assert h[2] == pytest.approx(-(0.1 * np.log(0.1) + 0.9 * np.log(0.9)))


def test_reductions_mean_sum_topk_with_masks():
    v = torch.zeros(3, 4, 4)
    v[0, 0, :2] = 1.0  # two hot pixels
    v[1] = 0.5
    m = torch.zeros(3, 4, 4, dtype=torch.bool)
    m[0, 0] = True  # 4 pixels: two at 1, two at 0
    m[1] = True
    assert PixelReduction("mean")(v, m).tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert PixelReduction("sum")(v, m).tolist() == pytest.approx([2.0, 8.0, 0.0])
    assert PixelReduction("topk", 2)(v, m).tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert PixelReduction("topk", 100)(v, m).tolist() == pytest.approx([0.5, 0.5, 0.0])  # fewer pixels than k
    assert PixelReduction("mean")(v).tolist() == pytest.approx([2 / 16, 0.5, 0.0])  # no mask: all pixels
    assert as_reduction("topk:7") == PixelReduction("topk", 7)
    with pytest.raises(InputError):
        as_reduction("median")


@pytest.mark.parametrize("name", ["entropy_mean", "entropy_sum", "entropy_topk", "margin", "least_confidence"])
def test_uncertainty_prefers_probabilities_near_half(name):
    values = [0.0, 1.0, 0.5, 0.9, 0.2, 0.02]
    probs = np.stack([np.full((8, 8), v) for v in values])
    ctx = _ctx_from_probs(probs)
    s = get_strategy(name)
    scores = s.score(ctx)
    assert np.all(np.isfinite(scores))
    assert scores[0] == pytest.approx(0.0, abs=1e-9) and scores[1] == pytest.approx(0.0, abs=1e-9)
    assert list(s.select(ctx, 4).indices) == [2, 4, 3, 5]


def test_reduction_choice_changes_the_ranking():
    # slice 0: a small very uncertain spot; slice 1: mild uncertainty everywhere
    probs = np.full((2, 16, 16), 0.02)
    probs[0, :2, :2] = 0.5
    probs[1] = 0.1
    ctx = _ctx_from_probs(probs)
    assert list(get_strategy("entropy_topk", reduction="topk:4").select(ctx, 2).indices) == [0, 1]
    assert list(get_strategy("entropy_mean").select(ctx, 2).indices) == [1, 0]
    assert list(get_strategy("entropy_sum").select(ctx, 2).indices) == [1, 0]


def test_slices_without_foreground_come_last():
    probs = np.stack([np.full((8, 8), v) for v in (0.5, 0.3, 0.1)])
    fg = np.ones((3, 8, 8), bool)
    fg[0] = False  # most uncertain, but no tissue
    ctx = _ctx_from_probs(probs, fg)
    s = get_strategy("entropy_mean")
    assert s.score(ctx)[0] == 0.0
    assert list(s.select(ctx, 2).indices) == [1, 2]
    assert list(s.select(ctx, 3).indices) == [1, 2, 0]  # only when nothing else is left


@pytest.mark.parametrize("name", ["margin", "least_confidence", "entropy_mean", "bald", "mc_entropy"])
def test_scores_depend_on_the_model(name):
    images, fg = _pool()
    pred = _predictor()
    ctx = QueryContext(images, fg, np.zeros(N, bool), pred)
    kw = {"passes": 4} if name in ("bald", "mc_entropy") else {}
    s = get_strategy(name, **kw)
    before = s.score(ctx)
    assert np.ptp(before[fg.any(axis=(1, 2))]) > 0  # slices are told apart
    with torch.no_grad():
        for p in pred.model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    assert np.array_equal(s.score(ctx), before)  # cached until the model is declared changed
    ctx.clear_cache()
    after = s.score(ctx)
    assert not np.allclose(after, before)


def test_diff_weighted_entropy_prefers_uncertainty_where_scans_changed():
    probs = np.zeros((3, 16, 16))
    probs[:, 4:8, 4:8] = 0.5  # same entropy map on every slice
    diff = np.zeros((3, 16, 16))
    diff[0, 4:8, 4:8] = 1.0  # change exactly where the model is unsure
    diff[1, 10:14, 10:14] = 1.0  # change elsewhere
    diff[2, 4:8, 4:8] = 0.3  # weak change where unsure
    ctx = _ctx_from_probs(probs, diff=diff)
    assert np.ptp(get_strategy("entropy_mean").score(ctx)) == 0
    scores = get_strategy("diff_weighted_entropy").score(ctx)
    assert list(np.argsort(-scores)) == [0, 2, 1] and scores[1] == 0.0


def test_bald_zero_without_dropout_disagreement_and_mc_refused_without_dropout():
    images, fg = _pool()
    pred = _predictor()
    ctx = QueryContext(images, fg, np.zeros(N, bool), pred)
    stats = ctx.mc(4, "mean")
    assert np.all(stats.mutual_information[fg.any(axis=(1, 2))] > 0)
    assert stats.mutual_information[5] == 0  # no foreground -> nothing to reduce
    torch.manual_seed(0)
    no_drop = Predictor(build_model(ModelConfig(channels=(4, 8, 16), strides=(2, 2), dropout=0.0)), device="cpu")
    with pytest.raises(InputError, match="no active dropout"):
        get_strategy("bald", passes=3).score(QueryContext(images, fg, np.zeros(N, bool), no_drop))


def test_bayesian_strategies_share_the_mc_passes():
    images, fg = _pool()
    pred = _predictor()
    calls = []
    pred.model.head.register_forward_hook(lambda _m, inputs, _out: calls.append(inputs[0].shape[0]))
    ctx = QueryContext(images, fg, np.zeros(N, bool), pred)
    for name in ("bald", "mc_entropy", "powerbald"):
        get_strategy(name, passes=3).select(ctx, 3).indices
    assert sum(calls) == 3 * (N - 1)  # 3 passes over the slices with tissue (not 5), once for all three


def test_powerbald_is_seeded_and_approaches_bald_for_large_beta():
    images, fg = _pool()
    pred = _predictor()
    base = QueryContext(images, fg, np.zeros(N, bool), pred)
    stats = base.mc(4, "mean")

    def ctx(seed):
        c = QueryContext(images, fg, np.zeros(N, bool), pred, rng=np.random.default_rng(seed))
        c._mc_cache.update(base._mc_cache)
        return c

    a = get_strategy("powerbald", passes=4).select(ctx(1), 5).indices
    assert np.array_equal(a, get_strategy("powerbald", passes=4).select(ctx(1), 5).indices)
    picks = {tuple(get_strategy("powerbald", passes=4).select(ctx(s), 5).indices) for s in range(6)}
    assert len(picks) > 1  # stochastic across seeds
    greedy = get_strategy("bald", passes=4).select(ctx(0), 5).indices
    assert np.array_equal(get_strategy("powerbald", passes=4, beta=1e4).select(ctx(3), 5).indices, greedy)
    assert 5 not in a and greedy[0] == int(np.argmax(stats.mutual_information))
