"""Detect a model that collapsed to "no lesion anywhere" on the very slices it was taught.

With few labels the lesion pixels are a tiny share of the loss; an
undertrained network predicts background everywhere and every uncertainty
strategy then ranks noise. The check runs the trained model on the labelled
slices that have lesions: if not one pixel is predicted as lesion there, the
round has not learned anything a clinician painted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class LesionCheck:
    lesion_slices: int       # labelled slices with lesion pixels
    slices_hit: int          # of those, slices where the model predicts any lesion pixel
    predicted_pixels: int    # predicted lesion pixels over those slices
    dice: float = float("nan")  # pooled Dice over those slices (NaN without lesion slices)

    @property
    def collapsed(self) -> bool:
        """True when there were lesions to find and none of their slices got a lesion pixel."""
        return self.lesion_slices > 0 and self.slices_hit == 0

    def to_dict(self) -> dict:
        return {"lesion_slices": self.lesion_slices, "slices_hit": self.slices_hit,
                "predicted_pixels": self.predicted_pixels, "dice": round(self.dice, 4)}


def check_lesion_slices(model: nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device,
                        threshold: float = 0.5, batch_size: int = 16) -> LesionCheck:
    """Predict whole slices images (N,3,H,W) and count hits on those where labels (N,H,W) has lesions.

    Also the pooled Dice over those slices: the warm-start test of :func:`train_plan.warm_start`.
    """
    les = np.flatnonzero(np.asarray(labels).reshape(len(labels), -1).any(1))
    hit = pixels = overlap = truth = 0
    model.eval()
    with torch.inference_mode():
        for a in range(0, len(les), batch_size):
            idx = les[a:a + batch_size]
            x = torch.from_numpy(np.ascontiguousarray(images[idx], dtype=np.float32)).to(device)
            pred = (torch.sigmoid(model(x).float())[:, 0] >= threshold).reshape(len(idx), -1)
            lab = torch.from_numpy(np.asarray(labels)[idx].reshape(len(idx), -1) > 0).to(pred.device)
            hit += int(pred.any(1).sum())
            pixels += int(pred.sum())
            overlap += int((pred & lab).sum())
            truth += int(lab.sum())
    dice = 2.0 * overlap / (pixels + truth) if truth else float("nan")
    return LesionCheck(int(len(les)), hit, pixels, dice)


def reinitialise(model: nn.Module, seed: int) -> None:
    """Fresh weights for every layer that can reset itself (seeded, so a rerun gives the same)."""
    torch.manual_seed(seed)
    for m in model.modules():
        if m is not model and hasattr(m, "reset_parameters"):
            m.reset_parameters()
