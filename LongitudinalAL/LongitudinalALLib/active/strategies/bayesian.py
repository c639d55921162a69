"""Bayesian strategies from Monte-Carlo dropout: predictive entropy, BALD, PowerBALD.

Statistics are streamed by the Predictor (T passes per batch, reduced per slice
over foreground pixels) and cached in the QueryContext, so MC entropy, BALD and
PowerBALD on one pool share the same T passes. BatchBALD is not implemented,
on purpose: its joint mutual information between a batch of *slices* and the
weights is bounded by log T for T dropout samples, and a whole-slice label map
(thousands of pixels) almost identifies the pass that drew it, so the first
pick already saturates the bound and the greedy gains of later picks are noise.
PowerBALD (Kirsch et al., 2023, "Stochastic batch acquisition") gives batch
diversity at the cost of BALD itself, which matters with T passes on CPU.
"""

from __future__ import annotations

import numpy as np

from LongitudinalALLib.active.strategies.base import (
    QueryContext,
    QueryStrategy,
    Selection,
    check_k,
    rank_candidates,
    register,
)
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.model.reductions import PixelReduction, as_reduction


class _MCStrategy(QueryStrategy):
    def __init__(self, passes: int = 10, reduction: str | PixelReduction = "mean", **kw) -> None:
        super().__init__(**kw)
        if passes < 2:
            raise InputError(f"{type(self).__name__} needs at least 2 dropout passes, got {passes}.",
                             "Use e.g. passes=10.")
        self.passes = int(passes)
        self.reduction = as_reduction(reduction)


class MCEntropyStrategy(_MCStrategy):
    """Entropy of the MC-averaged probability H[mean_t p_t], reduced per slice."""

    name = "mc_entropy"

    def score(self, ctx: QueryContext) -> np.ndarray:
        return ctx.mc(self.passes, self.reduction, self.name).predictive_entropy


class BALDStrategy(_MCStrategy):
    """BALD: mutual information H[mean p] - mean H[p] between the label and the weights.

    High where dropout masks disagree (epistemic uncertainty), unlike entropy,
    which is also high on pixels that are ambiguous for every mask.
    """

    name = "bald"

    def score(self, ctx: QueryContext) -> np.ndarray:
        return ctx.mc(self.passes, self.reduction, self.name).mutual_information


class PowerBALDStrategy(BALDStrategy):
    """PowerBALD: sample k slices without replacement with probability ~ BALD^beta.

    Done with Gumbel-top-k keys beta * log(BALD) + Gumbel noise drawn from
    ``ctx.rng`` (seeded), which avoids the top-k of BALD piling onto near-duplicate
    neighbouring slices. ``beta`` -> infinity recovers plain BALD ranking.
    """

    name = "powerbald"

    def __init__(self, beta: float = 1.0, **kw) -> None:
        super().__init__(**kw)
        if beta <= 0:
            raise InputError(f"PowerBALD beta must be positive, got {beta}.", "Use e.g. beta=1.")
        self.beta = float(beta)

    def select(self, ctx: QueryContext, k: int) -> Selection:
        k = check_k(k)
        scores = self.score(ctx)
        bald = np.maximum(scores, 0.0)
        with np.errstate(divide="ignore"):
            keys = self.beta * np.log(bald) + ctx.rng.gumbel(size=ctx.n)
        # slices with exactly zero BALD keep -inf keys and come last among those with tissue
        return Selection(rank_candidates(ctx, keys, self.min_foreground)[:k], scores)


register("mc_entropy", MCEntropyStrategy, "entropy of the MC-dropout mean prediction")
register("bald", BALDStrategy, "BALD mutual information from MC dropout")
register("powerbald", PowerBALDStrategy, "PowerBALD: stochastic BALD^beta batch sampling")
