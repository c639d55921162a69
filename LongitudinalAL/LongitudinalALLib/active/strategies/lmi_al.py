"""LMI-AL (IJCNN 2025) strategies for longitudinal pairs.

* ``diff_weighted_entropy``: pixel binary entropy weighted by the normalised
  |difference| magnitude, so uncertainty where the scans actually changed
  counts most; w = clip(|d| / s, 0, 1) with s the pool's 99th percentile of
  |d| on tissue, then reduced per slice over foreground pixels.
* ``lmi_hybrid``: the paper's two-step hybrid. Step 1 keeps the ``factor * k``
  most uncertain unlabelled slices (BALD from MC dropout by default, as in the
  reference code). Step 2 picks ``k`` of them by k-center greedy on the model's
  bottleneck embeddings with the labelled slices as the initial centres (with
  none labelled, the most uncertain candidate comes first). The reference
  code's step 2 (cosine similarity and histogram mutual information to the
  labelled images) is replaced by k-center, which covers the candidate set
  instead of rewarding similarity to what is labelled already.
"""

from __future__ import annotations

import numpy as np
import torch

from LongitudinalALLib.active.strategies.base import (
    QueryContext,
    QueryStrategy,
    Selection,
    check_k,
    reduce_pixels,
    register,
)
from LongitudinalALLib.active.strategies.change import difference_scale
from LongitudinalALLib.active.strategies.diversity import top_then_k_center
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.model.reductions import PixelReduction, as_reduction, binary_entropy


class DiffWeightedEntropyStrategy(QueryStrategy):
    """Entropy x normalised |difference|, reduced over foreground pixels."""

    name = "diff_weighted_entropy"

    def __init__(self, reduction: str | PixelReduction = "mean", percentile: float = 99.0, **kw) -> None:
        super().__init__(**kw)
        self.reduction = as_reduction(reduction)
        self.percentile = float(percentile)

    def score(self, ctx: QueryContext) -> np.ndarray:
        scale = difference_scale(ctx, self.percentile)
        diff = ctx.difference

        def weighted(p: torch.Tensor, sl: slice) -> torch.Tensor:
            w = (torch.from_numpy(np.abs(diff[sl]).astype(np.float32)) / scale).clamp(0.0, 1.0)
            return binary_entropy(p) * w

        return reduce_pixels(ctx, ctx.probs(self.name), weighted, self.reduction)


_UNCERTAINTIES = ("bald", "entropy", "diff_entropy")


class LMIHybridStrategy(QueryStrategy):
    """Top uncertain slices, then k-center greedy on embeddings among them (see module docstring)."""

    name = "lmi_hybrid"

    def __init__(self, uncertainty: str = "bald", factor: int = 5, passes: int = 10,
                 reduction: str | PixelReduction = "mean", **kw) -> None:
        super().__init__(**kw)
        if uncertainty not in _UNCERTAINTIES:
            raise InputError(f"Unknown LMI-AL uncertainty {uncertainty!r}.", f"Use one of {_UNCERTAINTIES}.")
        self.uncertainty = uncertainty
        self.factor = max(1, int(factor))
        self.passes = int(passes)
        self.reduction = as_reduction(reduction)

    def score(self, ctx: QueryContext) -> np.ndarray:
        if self.uncertainty == "bald":
            return ctx.mc(self.passes, self.reduction, self.name).mutual_information
        if self.uncertainty == "diff_entropy":
            return DiffWeightedEntropyStrategy(self.reduction, min_foreground=self.min_foreground).score(ctx)
        return reduce_pixels(ctx, ctx.probs(self.name), lambda p, _: binary_entropy(p), self.reduction)

    def select(self, ctx: QueryContext, k: int) -> Selection:
        k = check_k(k)
        scores = self.score(ctx)
        emb = ctx.model_outputs(self.name).embeddings
        return self.fill(ctx, top_then_k_center(ctx, scores, emb, k, self.factor, self.min_foreground), k, scores)


register("diff_weighted_entropy", DiffWeightedEntropyStrategy, "entropy weighted by |difference| magnitude")
register("lmi_hybrid", LMIHybridStrategy, "LMI-AL hybrid: top uncertain (BALD), then k-center on embeddings")
