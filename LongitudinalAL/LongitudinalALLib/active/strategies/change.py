"""What the difference channel says without any model: change scale, saliency, label-free embedding.

Used by the difference-weighted strategies and by the round-0 cold start. All
statistics use the magnitude |follow-up - baseline| inside the foreground.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from LongitudinalALLib.active.strategies.base import QueryContext


def difference_scale(ctx: QueryContext, q: float = 99.0, max_samples: int = 500_000) -> float:
    """The pool's ``q``-th percentile of |difference| over foreground pixels (1.0 if undefined).

    One scale for the whole pool keeps slices comparable: normalising each
    slice by itself would blow registration noise on unchanged slices up to 1.
    """
    count = int(ctx.foreground.sum())
    if count == 0:
        return 1.0
    stride = max(1, count // max_samples)
    values = []  # subsample chunk by chunk: never copy every foreground pixel of a large pool
    for a in range(0, ctx.n, 64):
        values.append(np.abs(ctx.difference[a:a + 64][ctx.foreground[a:a + 64]][::stride]))
    scale = float(np.percentile(np.concatenate(values), q))
    return scale if scale > 0 else 1.0


def inner_foreground(foreground: np.ndarray, shell_px: int) -> np.ndarray:
    """(N, H, W) bool: each slice's foreground less its outer ``shell_px`` pixels (a disc erosion in-plane)."""
    if shell_px <= 0:
        return np.asarray(foreground, dtype=bool)
    r = int(shell_px)
    yy, xx = np.ogrid[-r:r + 1, -r:r + 1]
    return ndimage.binary_erosion(foreground, (yy ** 2 + xx ** 2 <= r * r)[None])


def change_saliency(ctx: QueryContext, k: int = 64, chunk: int = 64, shell_px: int = 0) -> np.ndarray:
    """(N,) mean of the ``k`` largest |difference| foreground pixels minus the slice's median.

    The top-k mean responds to a small new lesion (a few dozen pixels) without
    being set by a single noisy pixel; subtracting the median removes a global
    intensity offset left by normalisation. ``shell_px`` > 0 leaves out each
    slice's outer rim of foreground (see ``cold_start``). Slices without
    foreground get 0.
    """
    out = np.zeros(ctx.n, dtype=np.float64)
    for a in range(0, ctx.n, chunk):
        b = min(ctx.n, a + chunk)
        d = torch.from_numpy(np.abs(ctx.difference[a:b]).astype(np.float32)).flatten(1)
        m = torch.from_numpy(inner_foreground(ctx.foreground[a:b], shell_px)).flatten(1)
        count = m.sum(dim=1)
        kk = min(k, d.shape[1])
        top = torch.where(m, d, float("-inf")).topk(kk, dim=1).values
        top = torch.where(torch.isfinite(top), top, 0.0).sum(dim=1) / count.clamp(min=1, max=kk)
        med = torch.where(m, d, float("nan")).nanmedian(dim=1).values.nan_to_num(0.0)
        out[a:b] = ((top - med).clamp(min=0.0) * (count > 0)).double().numpy()
    return out


def label_free_embedding(ctx: QueryContext, grid: int = 8, chunk: int = 64) -> np.ndarray:
    """(N, 3 * grid * grid): average-pooled baseline and follow-up, max-pooled |difference|.

    Slices far apart in the volume (other anatomy) or with change in other
    places are far apart in this space, which is what k-center needs. Max
    pooling keeps a small lesion visible in its grid cell; one pool-wide scale
    (the baseline's std on tissue) makes the embedding independent of the
    intensity normalisation while keeping the channels' relative magnitudes
    (a separate scale per channel would inflate the noise of an almost
    constant |difference| channel).
    """
    parts = []
    for a in range(0, ctx.n, chunk):
        x = torch.from_numpy(np.ascontiguousarray(ctx.images[a:a + chunk], dtype=np.float32))
        pooled = F.adaptive_avg_pool2d(x[:, :2], grid)
        changed = F.adaptive_max_pool2d(x[:, 2:].abs(), grid)
        parts.append(torch.cat([pooled, changed], dim=1))
    emb = torch.cat(parts).flatten(1).numpy()
    fg = ctx.foreground
    scale = float(ctx.images[:, 0][fg].std()) if fg.any() else 1.0
    return emb / (scale if scale > 0 else 1.0)
