"""Round-0 cold start with zero labels and no trained model: change saliency plus diversity.

In the spirit of MDAL (MaxMD / DiverseMD), baseline and follow-up are treated
as two modalities whose disagreement marks informative slices: a slice's
saliency is its robust |follow-up - baseline| magnitude on tissue
(``change.change_saliency``). ``mode="maxmd"`` ranks by saliency alone;
``mode="diverse"`` (default) keeps the ``factor * k`` most salient slices and
picks ``k`` of them by k-center greedy on a label-free embedding (pooled
baseline, follow-up and |difference|), starting from the most salient, so the
picks spread over the volume instead of piling onto one lesion's neighbours.

Two rules keep it on tissue where a difference can be a new lesion (issue 27; on a
real pair every first round used to suggest the lowest slices of the cerebellum):

* ``shell_mm``: the brain's outer 2 mm in each slice (in whole pixels of
  ``QueryContext.pixel_mm``: none at 4 mm pixels) is left out of the saliency. There the
  follow-up's brain edge and the baseline's differ by partial volume and a millimetre of
  registration residue, and on the shared real pairs the 64 largest differences of the
  low slices lay along that rim. A new MS lesion on FLAIR lies in white matter or at the
  grey-white junction, deeper than the outer 2 mm.
* ``min_section``: only slices whose foreground (the brain both scans imaged) is at least
  a quarter of the case's largest section are suggested; the others follow only when
  those run out. For an ellipsoidal brain that leaves out the outer 13 % of its height at
  each end (about 2.6 % of its volume per end): the cerebellar base and the vertex, where
  thick slices cut the brain's surface obliquely (partial volume again) and k-center
  diversity would otherwise reach for them because their anatomy is the most unusual.
  A model-based strategy may still pick them from round 1 on, and the label-free
  references are unchanged.
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
    section_shares,
)
from LongitudinalALLib.active.strategies.change import change_saliency, label_free_embedding
from LongitudinalALLib.active.strategies.diversity import top_then_k_center
from LongitudinalALLib.core.errors import InputError

SHELL_MM = 2.0  # the outer rim of each slice's foreground left out of the saliency
MIN_SECTION = 0.25  # of the case's largest foreground section: smaller slices are suggested last


class ColdStartStrategy(QueryStrategy):
    """Change saliency (+ k-center diversity) for the first labelling round."""

    name = "cold_start"
    needs_model = False
    reason = "large change before any lesion is labelled"

    def __init__(self, mode: str = "diverse", factor: int = 4, top_pixels: int = 64, grid: int = 8,
                 shell_mm: float | None = None, min_section: float | None = None, **kw) -> None:
        super().__init__(**kw)
        if mode not in ("diverse", "maxmd"):
            raise InputError(f"Unknown cold-start mode {mode!r}.", "Use 'diverse' or 'maxmd'.")
        shell_mm = SHELL_MM if shell_mm is None else shell_mm  # None: the module's rule (every query builds its own)
        min_section = MIN_SECTION if min_section is None else min_section
        if not 0.0 <= float(min_section) <= 1.0:
            raise InputError(f"min_section {min_section} is not a fraction.", "Use a value in [0, 1], e.g. 0.25.")
        self.shell_mm = max(0.0, float(shell_mm))
        self.min_section = float(min_section)
        self.mode = mode
        self.factor = max(1, int(factor))
        self.top_pixels = int(top_pixels)
        self.grid = int(grid)

    def score(self, ctx: QueryContext) -> np.ndarray:
        return change_saliency(ctx, self.top_pixels, shell_px=int(self.shell_mm / ctx.pixel_mm + 1e-6))

    def central(self, ctx: QueryContext) -> np.ndarray:
        """(N,) bool: slices with at least ``min_section`` of their case's largest foreground section."""
        return section_shares(ctx.foreground, ctx.groups) >= self.min_section

    def select(self, ctx: QueryContext, k: int) -> Selection:
        k = check_k(k)
        scores, central = self.score(ctx), self.central(ctx)
        if self.mode == "maxmd":
            order = rank_candidates(ctx, scores, self.min_foreground)
            order = np.concatenate([order[central[order]], order[~central[order]]])[:k]
            return Selection(order, scores)
        picks = top_then_k_center(ctx, scores, label_free_embedding(ctx, self.grid), k, self.factor,
                                  self.min_foreground, eligible=central)
        return self.fill(ctx, picks, k, scores, self.reason)


register("cold_start", ColdStartStrategy, "round 0: change saliency + k-center diversity (MDAL-style)")
