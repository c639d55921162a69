"""The one eval-mode forward pass that training, its anchors and the round guard share.

Why its own module: the training loop, the rehearsal anchors (``train_anchor``) and the round guard all
need a model's probabilities on slices; in ``train_loop`` it made an import loop with ``train_anchor``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def predict_probabilities(model: nn.Module, images: np.ndarray, device: torch.device,
                          batch_size: int = 16) -> np.ndarray:
    """(N,H,W) float32 sigmoid probabilities of ``model`` in eval mode on images (N,3,H,W)."""
    model.to(device).eval()
    out = np.empty((len(images),) + tuple(images.shape[2:]), np.float32)
    with torch.inference_mode():
        for a in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[a:a + batch_size], dtype=np.float32)).to(device)
            out[a:a + batch_size] = torch.sigmoid(model(x).float())[:, 0].cpu().numpy()
    return out
