"""Batch augmentation and lesion-biased cropping on torch tensors.

Everything works on whole batches (B,3,H,W) images and (B,1,H,W) labels so a
CPU can keep up with training. Spatial transforms are applied identically to the
three channels (baseline, follow-up, difference) and to the label, so the
difference channel stays the difference of the other two. Randomness comes
from an explicit ``torch.Generator`` so a seed fixes every draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    rotate_deg: float = 10.0        # uniform in [-rotate_deg, rotate_deg]
    scale: float = 0.1              # uniform zoom in [1-scale, 1+scale]
    p_spatial: float = 0.5          # probability of the rotation/scale warp per sample
    intensity_scale: float = 0.1    # one gain per sample for all channels
    noise_std: float = 0.02
    p_intensity: float = 0.5


def augment_batch(images: torch.Tensor, labels: torch.Tensor, cfg: AugmentConfig,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips, rotation/scale and intensity changes.

    images (B,3,H,W) float, labels (B,1,H,W) float in {0,1}; returns new tensors.
    """
    b = images.shape[0]
    dev = images.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen).to(dev)

    if cfg.flip:
        for dim in (2, 3):
            m = rand(b) < 0.5
            if m.any():
                images = torch.where(m[:, None, None, None], images.flip(dim), images)
                labels = torch.where(m[:, None, None, None], labels.flip(dim), labels)
    if cfg.rotate_deg > 0 or cfg.scale > 0:
        apply = rand(b) < cfg.p_spatial
        if apply.any():
            ang = (rand(b) * 2 - 1) * math.radians(cfg.rotate_deg)
            zoom = 1 + (rand(b) * 2 - 1) * cfg.scale
            ang = torch.where(apply, ang, torch.zeros_like(ang))
            zoom = torch.where(apply, zoom, torch.ones_like(zoom))
            cos, sin = torch.cos(ang) / zoom, torch.sin(ang) / zoom
            theta = torch.zeros(b, 2, 3, device=dev, dtype=images.dtype)
            theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
            grid = F.affine_grid(theta, list(images.shape), align_corners=False)
            images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            labels = F.grid_sample(labels, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    if cfg.intensity_scale > 0 or cfg.noise_std > 0:
        apply = (rand(b) < cfg.p_intensity)[:, None, None, None]
        gain = 1 + (rand(b) * 2 - 1)[:, None, None, None] * cfg.intensity_scale
        noise = torch.randn(images.shape, generator=gen).to(dev) * cfg.noise_std
        images = torch.where(apply, images * gain + noise, images)
    return images, labels


def lesion_biased_crops(labels: np.ndarray, crop: int, p_lesion: float,
                        rng: np.random.Generator, foreground: np.ndarray | None = None
                        ) -> np.ndarray:
    """Pick one crop origin per slice.

    labels (B,H,W); with probability ``p_lesion`` (and when the slice has lesion
    pixels) the crop is centred on a random lesion pixel, else on a random
    foreground pixel (or uniformly). Returns (B,2) int origins (row, col).
    """
    b, h, w = labels.shape
    ch, cw = min(crop, h), min(crop, w)
    out = np.zeros((b, 2), dtype=np.int64)
    for i in range(b):
        pool = None
        if labels[i].any() and rng.random() < p_lesion:
            pool = np.argwhere(labels[i] > 0)
        elif foreground is not None and foreground[i].any():
            pool = np.argwhere(foreground[i])
        if pool is not None:
            cy, cx = pool[rng.integers(len(pool))]
            y0, x0 = int(cy) - ch // 2, int(cx) - cw // 2
        else:
            y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out[i] = (min(max(y0, 0), h - ch), min(max(x0, 0), w - cw))
    return out


def crop_arrays(images: np.ndarray, labels: np.ndarray, origins: np.ndarray, crop: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Cut (B,3,crop,crop) / (B,crop,crop) windows at ``origins`` (B,2)."""
    h, w = labels.shape[-2:]
    ch, cw = min(crop, h), min(crop, w)
    imgs = np.stack([images[i, :, y:y + ch, x:x + cw] for i, (y, x) in enumerate(origins)])
    labs = np.stack([labels[i, y:y + ch, x:x + cw] for i, (y, x) in enumerate(origins)])
    return imgs, labs
