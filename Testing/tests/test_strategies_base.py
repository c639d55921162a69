"""Strategy interface: registry, labelled slices never selected, k handling, shared model outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from LongitudinalALLib.active.strategies import (
    QueryContext,
    available_strategies,
    describe_strategies,
    get_strategy,
)
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.model import ModelConfig, Predictor, build_model

EXPECTED = {"random", "fg_random", "entropy_mean", "entropy_sum", "entropy_topk", "margin", "least_confidence",
            "mc_entropy", "bald", "powerbald", "coreset", "cluster_margin", "badge", "lmi_hybrid",
            "diff_weighted_entropy", "cold_start", "clasp_pe"}
N = 16


@pytest.fixture(scope="module")
def pool():
    rng = np.random.default_rng(3)
    images = rng.normal(size=(N, 3, 32, 32)).astype(np.float32)
    fg = np.zeros((N, 32, 32), bool)
    for i in range(N):
        r = 4 + i % 10
        fg[i, 16 - r:16 + r, 16 - r:16 + r] = True
    fg[[2, 11]] = False  # slices outside the head
    torch.manual_seed(0)
    model = build_model(ModelConfig(channels=(4, 8, 16), strides=(2, 2), head_features=4))
    return images, fg, Predictor(model, device="cpu", batch_size=8)


def _options(name):
    return {"passes": 3} if name in ("bald", "mc_entropy", "powerbald", "lmi_hybrid") else {}


def test_registry_lists_every_strategy_and_rejects_unknown_names():
    assert set(available_strategies()) == EXPECTED
    assert all(describe_strategies()[n] for n in EXPECTED)
    with pytest.raises(InputError, match="Unknown query strategy 'entropy'.*entropy_mean"):
        get_strategy("entropy")
    with pytest.raises(InputError, match="does not take these options"):
        get_strategy("margin", passes=3)
    assert get_strategy("entropy_sum").reduction.kind == "sum"
    assert get_strategy("entropy_topk", reduction="topk:8").reduction.k == 8
    assert get_strategy("entropy_sum").name == "entropy_sum"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_selection_never_returns_labelled_or_empty_slices(pool, name):
    images, fg, pred = pool
    lab = np.zeros(N, bool)
    lab[[0, 5, 6, 13]] = True
    ctx = QueryContext(images, fg, lab, pred, rng=np.random.default_rng(0))
    s = get_strategy(name, **_options(name))
    scores = s.score(ctx)
    assert scores.shape == (N,) and not np.isnan(scores).any()
    picks = s.select(ctx, 6).indices
    assert picks.dtype == np.int64 and len(picks) == 6 and len(set(picks.tolist())) == 6
    assert not set(picks.tolist()) & {0, 5, 6, 13, 2, 11}
    everything = s.select(ctx, 50).indices  # more than available: every unlabelled slice once, empty ones last
    assert sorted(everything.tolist()) == sorted(set(range(N)) - {0, 5, 6, 13})
    assert set(everything[-2:].tolist()) == {2, 11}
    assert len(s.select(ctx, 0).indices) == 0


def test_bad_k_and_bad_context_are_input_errors(pool):
    images, fg, pred = pool
    ctx = QueryContext(images, fg, np.zeros(N, bool), pred)
    for k in (-1, 2.5, True):
        with pytest.raises(InputError, match="non-negative integer"):
            get_strategy("random").select(ctx, k).indices
    with pytest.raises(InputError, match="foreground has shape"):
        QueryContext(images, fg[:3], np.zeros(N, bool))
    with pytest.raises(InputError, match="one flag per pool slice"):
        QueryContext(images, fg, np.zeros(N + 1, bool))
    with pytest.raises(InputError, match=r"expected \(N, 3, H, W\)"):
        QueryContext(images[:, :2], fg, np.zeros(N, bool))


def test_model_outputs_are_computed_once_for_many_strategies(pool):
    images, fg, pred = pool
    calls = []
    hook = pred.model.head.register_forward_hook(lambda *a: calls.append(1))
    try:
        ctx = QueryContext(images, fg, np.zeros(N, bool), pred)
        for name in ("entropy_mean", "entropy_topk", "margin", "least_confidence", "coreset", "badge",
                     "cluster_margin", "diff_weighted_entropy"):
            get_strategy(name).select(ctx, 4).indices
        assert len(calls) == 2  # one deterministic pass: 16 slices in batches of 8
    finally:
        hook.remove()


def test_random_strategies_are_seeded_and_foreground_weighted():
    n = 40
    fg = np.zeros((n, 10, 10), bool)
    fg[:20, :1, :] = True  # 10 % tissue
    fg[20:, :9, :] = True  # 90 % tissue
    images = np.zeros((n, 3, 10, 10), np.float32)

    def picks(name, seed):
        return get_strategy(name).select(QueryContext(images, fg, np.zeros(n, bool), rng=np.random.default_rng(seed)), 5).indices

    assert np.array_equal(picks("random", 4), picks("random", 4))
    assert not np.array_equal(picks("random", 4), picks("random", 5))
    big_fg = lambda name: np.mean([np.mean(picks(name, s) >= 20) for s in range(40)])  # noqa: E731
    assert 0.3 < big_fg("random") < 0.7
    assert big_fg("fg_random") > 0.8


def test_a_slice_with_under_3_percent_of_its_cases_largest_section_is_never_preferred():
    """Issue 27: the cold start's change saliency put skull-base end slices (a sliver of brain) in round 1."""
    rng = np.random.default_rng(0)
    n, size = 8, 64
    images = rng.normal(0, 0.01, size=(n, 3, size, size)).astype(np.float32)
    fg = np.zeros((n, size, size), bool)
    fg[:, 2:62, 2:62] = True            # case a: 3600 px sections
    fg[0] = False
    fg[0, 30:37, 30:36] = True          # a's end slice: 42 px, 1.2 % of its largest
    fg[4:] = False
    fg[4:, 20:30, 20:30] = True         # case b: a small field of view, 100 px sections
    images[0, 2, 30:33, 30:33] = 5.0    # the end slice holds by far the largest difference
    images[4, 2, 22:25, 22:25] = 1.0
    groups = np.array(["a"] * 4 + ["b"] * 4)
    ctx = QueryContext(images, fg, np.zeros(n, bool), groups=groups)
    assert ctx.foreground_fraction[0] == 0 and (ctx.foreground_fraction[1:] > 0).all()  # b is judged on its own
    picks = get_strategy("cold_start", mode="maxmd").select(ctx, 3).indices.tolist()
    assert 0 not in picks and picks[0] == 4
    assert get_strategy("cold_start", mode="maxmd").select(ctx, 8).indices.tolist()[-1] == 0  # last, when all else is
    one_case = QueryContext(images, fg, np.zeros(n, bool))  # without groups the pool is one case: b's are slivers too
    assert (one_case.foreground_fraction[[0, 4, 5, 6, 7]] == 0).all()
