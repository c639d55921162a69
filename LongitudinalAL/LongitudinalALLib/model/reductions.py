"""Pixel uncertainty maps -> one score per slice, and the binary entropy they use.

Shared by the Predictor (which reduces Monte-Carlo statistics batch by batch so
it never keeps T x N x H x W numbers) and by the query strategies. Reductions
run only over foreground pixels when a mask is given, so a slice's score is not
diluted (mean) or padded (sum) by air outside the head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from LongitudinalALLib.core.errors import InputError


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """Full binary entropy -(p ln p + (1-p) ln(1-p)) in nats; exactly 0 at p=0 and p=1 (never NaN)."""
    p = p.float().clamp(0.0, 1.0)
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(1.0 - p, 1.0 - p))


@dataclass(frozen=True)
class PixelReduction:
    """Reduce a (B, H, W) pixel map to (B,) over a (B, H, W) bool mask.

    ``mean``: mean over masked pixels (0 for an empty mask); ``sum``: sum over
    masked pixels (favours slices with more uncertain tissue); ``topk``: mean of
    the ``k`` largest masked values (all of them when fewer), which scores a
    slice by its most uncertain region whatever its size.
    """

    kind: str = "mean"
    k: int = 256

    def __post_init__(self) -> None:
        if self.kind not in ("mean", "sum", "topk"):
            raise InputError(f"Unknown pixel reduction {self.kind!r}.", "Use 'mean', 'sum' or 'topk'.")
        if self.k < 1:
            raise InputError(f"Top-k reduction needs k >= 1, got {self.k}.", "Use e.g. k=256 pixels.")

    @property
    def key(self) -> str:
        """A short name used as a cache key."""
        return f"topk{self.k}" if self.kind == "topk" else self.kind

    def __call__(self, values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        values = values.float().flatten(1)
        if mask is None:
            mask_f = torch.ones_like(values, dtype=torch.bool)
        else:
            mask_f = mask.to(device=values.device, dtype=torch.bool).flatten(1)
        count = mask_f.sum(dim=1)
        if self.kind == "sum":
            return torch.where(mask_f, values, 0.0).sum(dim=1)
        if self.kind == "mean":
            return torch.where(mask_f, values, 0.0).sum(dim=1) / count.clamp(min=1)
        k = min(self.k, values.shape[1])
        top = torch.where(mask_f, values, float("-inf")).topk(k, dim=1).values
        top = torch.where(torch.isfinite(top), top, 0.0)
        return top.sum(dim=1) / count.clamp(min=1, max=k)

    def numpy(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Same on numpy arrays: (N, H, W) -> (N,) float64."""
        t_mask = None if mask is None else torch.from_numpy(np.ascontiguousarray(mask, dtype=bool))
        out = self(torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)), t_mask)
        return out.double().numpy()


def as_reduction(spec: "str | PixelReduction") -> PixelReduction:
    """Accept 'mean', 'sum', 'topk', 'topk:128' or a PixelReduction."""
    if isinstance(spec, PixelReduction):
        return spec
    kind, _, k = str(spec).partition(":")
    try:
        return PixelReduction(kind, int(k)) if k else PixelReduction(kind)
    except ValueError as err:
        raise InputError(f"Cannot read pixel reduction {spec!r}.", "Write e.g. 'topk:256'.") from err
