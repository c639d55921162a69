"""Random baselines: uniform over slices with tissue, and foreground-weighted."""

from __future__ import annotations

import numpy as np

from LongitudinalALLib.active.strategies.base import QueryContext, QueryStrategy, register


class RandomStrategy(QueryStrategy):
    """Uniformly random order (seeded by ``ctx.rng``); slices without tissue still come last."""

    name = "random"
    needs_model = False
    reason = "random draw"

    def score(self, ctx: QueryContext) -> np.ndarray:
        return ctx.rng.random(ctx.n)


class ForegroundRandomStrategy(QueryStrategy):
    """Random sampling without replacement with probability proportional to foreground fraction.

    Slices that cut through more tissue are more likely to hold a new lesion, so
    this is the fairer random baseline for slice-wise labelling.
    """

    name = "fg_random"
    needs_model = False
    reason = "random draw weighted by tissue"

    def score(self, ctx: QueryContext) -> np.ndarray:
        # Gumbel-top-k keys: ordering by log(w) + Gumbel samples without replacement with p ~ w
        w = ctx.foreground_fraction.astype(np.float64)
        with np.errstate(divide="ignore"):
            return np.log(w) + ctx.rng.gumbel(size=ctx.n)


register("random", RandomStrategy, "uniformly random slices (with tissue)")
register("fg_random", ForegroundRandomStrategy, "random slices, probability proportional to foreground fraction")
