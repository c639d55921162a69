"""Anchors that keep a fine-tuned model near where it started (issue 24).

On real scans the bundled model, fine-tuned on a few labelled slices (half of
every batch lesion slices, most crops centred on a lesion), learnt to fire
everywhere: test Dice 0.58 -> 0.02 after 6 labels. Three anchors, each a
TrainConfig field, measured by Testing/benchmarks/bench_product_loop.py:

- rehearsal with soft targets (``distill_weight``): unlabelled pool slices of the
  user's own scans, with the starting model's probabilities as targets, join every
  batch, so what the model did right on the rest of the scan is kept;
- frozen batch-norm statistics (``freeze_bn``): a few lesion-centred crops do not
  redefine what a normal intensity is;
- L2-SP (``l2sp``): a penalty on the distance to the starting weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Rehearsal:
    """x (M,3,H,W) float32 unlabelled slices, p (M,H,W) float32 the starting model's probabilities, fg (M,H,W)."""

    x: np.ndarray
    p: np.ndarray
    fg: np.ndarray | None


def rehearsal_set(model: nn.Module, images: np.ndarray | None, foreground: np.ndarray | None, cfg,
                  device: torch.device, batch_size: int = 8) -> Rehearsal | None:
    """Up to ``cfg.distill_slices`` slices with tissue (evenly spaced, deterministic) and the model's soft targets."""
    from LongitudinalALLib.model.probabilities import predict_probabilities

    if cfg.distill_weight <= 0 or images is None or len(images) == 0:
        return None
    keep = np.arange(len(images))
    if foreground is not None:
        keep = keep[np.asarray(foreground).reshape(len(foreground), -1).any(1)]
    if len(keep) == 0:
        return None
    keep = keep[np.unique(np.linspace(0, len(keep) - 1, min(cfg.distill_slices, len(keep))).round().astype(int))]
    x = np.ascontiguousarray(images[keep], dtype=np.float32)
    probs = predict_probabilities(model, x, device, batch_size)
    return Rehearsal(x, probs, None if foreground is None else np.asarray(foreground)[keep])


def distill_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy against soft targets; logits and targets (B,1,H,W)."""
    return F.binary_cross_entropy_with_logits(logits, targets)


def freeze_batch_norm(model: nn.Module) -> None:
    """Batch-norm layers to eval mode (running statistics kept, affine weights still trained)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


class L2SP:
    """``weight * sum((w - w_start)^2)`` over the trainable parameters, from a snapshot of the start."""

    def __init__(self, model: nn.Module, weight: float) -> None:
        self.weight = weight
        self.start = [p.detach().clone() for p in model.parameters()] if weight > 0 else []

    def __call__(self, model: nn.Module) -> torch.Tensor | float:
        if not self.start:
            return 0.0
        return self.weight * sum(((p - p0) ** 2).sum() for p, p0 in zip(model.parameters(), self.start))
