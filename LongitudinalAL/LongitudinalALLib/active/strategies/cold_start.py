"""Round-0 cold start with zero labels and no trained model: change saliency plus diversity.

In the spirit of MDAL (MaxMD / DiverseMD), baseline and follow-up are treated
as two modalities whose disagreement marks informative slices: a slice's
saliency is its robust |follow-up - baseline| magnitude on tissue
(``change.change_saliency``). ``mode="maxmd"`` ranks by saliency alone;
``mode="diverse"`` (default) keeps the ``factor * k`` most salient slices and
picks ``k`` of them by k-center greedy on a label-free embedding (pooled
baseline, follow-up and |difference|), starting from the most salient, so the
picks spread over the volume instead of piling onto one lesion's neighbours.
"""

from __future__ import annotations

import numpy as np

from LongitudinalALLib.active.strategies.base import QueryContext, QueryStrategy, Selection, check_k, register
from LongitudinalALLib.active.strategies.change import change_saliency, label_free_embedding
from LongitudinalALLib.active.strategies.diversity import top_then_k_center
from LongitudinalALLib.core.errors import InputError


class ColdStartStrategy(QueryStrategy):
    """Change saliency (+ k-center diversity) for the first labelling round."""

    name = "cold_start"
    needs_model = False
    reason = "large change before any lesion is labelled"

    def __init__(self, mode: str = "diverse", factor: int = 4, top_pixels: int = 64, grid: int = 8, **kw) -> None:
        super().__init__(**kw)
        if mode not in ("diverse", "maxmd"):
            raise InputError(f"Unknown cold-start mode {mode!r}.", "Use 'diverse' or 'maxmd'.")
        self.mode = mode
        self.factor = max(1, int(factor))
        self.top_pixels = int(top_pixels)
        self.grid = int(grid)

    def score(self, ctx: QueryContext) -> np.ndarray:
        return change_saliency(ctx, self.top_pixels)

    def select(self, ctx: QueryContext, k: int) -> Selection:
        k = check_k(k)
        if self.mode == "maxmd":
            return super().select(ctx, k)
        scores = self.score(ctx)
        picks = top_then_k_center(ctx, scores, label_free_embedding(ctx, self.grid), k, self.factor,
                                  self.min_foreground)
        return self.fill(ctx, picks, k, scores, self.reason)


register("cold_start", ColdStartStrategy, "round 0: change saliency + k-center diversity (MDAL-style)")
