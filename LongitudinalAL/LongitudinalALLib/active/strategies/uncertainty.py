"""Uncertainty sampling on the deterministic prediction: entropy, margin, least confidence.

Pixel maps are reduced to one score per slice over foreground pixels with a
:class:`PixelReduction` (mean, sum or mean of the top-k pixels). For a binary
output the pixel margin 1 - |2p - 1| and the least confidence 1 - max(p, 1-p)
are both monotone in min(p, 1 - p), so with the same reduction they rank slices
identically; their defaults therefore differ: margin looks at the slice's
top-k least-confident pixels (its smallest margins), least confidence at the
mean over the tissue.
"""

from __future__ import annotations

import numpy as np
import torch

from LongitudinalALLib.active.strategies.base import QueryContext, QueryStrategy, reduce_pixels, register
from LongitudinalALLib.model.reductions import PixelReduction, as_reduction, binary_entropy

class PixelUncertaintyStrategy(QueryStrategy):
    """A per-pixel uncertainty of the predicted probability, reduced per slice over tissue."""

    default_reduction = "mean"

    def __init__(self, reduction: str | PixelReduction | None = None, **kw) -> None:
        super().__init__(**kw)
        self.reduction = as_reduction(reduction or self.default_reduction)

    @staticmethod
    def pixel_uncertainty(p: torch.Tensor) -> torch.Tensor:
        """(B, H, W) probabilities -> (B, H, W) uncertainty, higher = less sure."""
        raise NotImplementedError

    def score(self, ctx: QueryContext) -> np.ndarray:
        return reduce_pixels(ctx, ctx.probs(self.name), lambda p, _: self.pixel_uncertainty(p), self.reduction)


class EntropyStrategy(PixelUncertaintyStrategy):
    """Full binary entropy of the predicted probability (p near 0.5 is best)."""

    name = "entropy_mean"
    pixel_uncertainty = staticmethod(binary_entropy)


class MarginStrategy(PixelUncertaintyStrategy):
    """Smallest margin first: pixel margin |2p - 1| (0 at p = 0.5); score = reduced (1 - margin)."""

    name = "margin"
    default_reduction = "topk"

    @staticmethod
    def pixel_uncertainty(p: torch.Tensor) -> torch.Tensor:
        return 1.0 - (2.0 * p - 1.0).abs()


class LeastConfidenceStrategy(PixelUncertaintyStrategy):
    """Least confidence: pixel 1 - max(p, 1 - p)."""

    name = "least_confidence"

    @staticmethod
    def pixel_uncertainty(p: torch.Tensor) -> torch.Tensor:
        return 1.0 - torch.maximum(p, 1.0 - p)


register("entropy_mean", EntropyStrategy, "binary entropy, mean over tissue pixels", reduction="mean")
register("entropy_sum", EntropyStrategy, "binary entropy, summed over tissue pixels", reduction="sum")
register("entropy_topk", EntropyStrategy, "binary entropy, mean of the top-k pixels", reduction="topk")
register("margin", MarginStrategy, "smallest margin |2p-1| (top-k pixels)")
register("least_confidence", LeastConfidenceStrategy, "least confidence 1-max(p,1-p), mean over tissue")
