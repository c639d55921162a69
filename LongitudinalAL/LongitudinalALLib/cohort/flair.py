"""FLAIR-like contrast synthesised from tissue fractions.

On T2-FLAIR, CSF is suppressed (dark), white matter is slightly darker than grey
matter, and MS lesions are hyperintense. Each voxel mixes tissue levels by its
tissue fractions; lesion tissue replaces that mix by its own level (GM level x
(1 + contrast)) in proportion to its fraction, so a lesion's soft border gives
partial volume. A subject-level texture (smooth + fine) is shared by both visits.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from LongitudinalALLib.cohort.deform import smooth_random_field


def sample_subject_contrast(rng: np.random.Generator) -> dict:
    """Tissue levels relative to WM (= 1) and the scanner scale for one subject."""
    return {"wm": 1.0, "gm": float(rng.uniform(1.12, 1.35)), "csf": float(rng.uniform(0.12, 0.35)),
            "scale": float(rng.uniform(300.0, 700.0))}


def visit_contrast(base: dict, rng: np.random.Generator, jitter: bool) -> dict:
    """Per-visit tissue levels: the subject's levels with a small GM/CSF jitter (when ``jitter``)."""
    out = dict(base)
    if jitter:
        out["gm"] = float(1.0 + (base["gm"] - 1.0) * rng.uniform(0.8, 1.2))
        out["csf"] = float(base["csf"] * rng.uniform(0.85, 1.15))
    return out


def subject_texture(seed: int, shape: tuple[int, int, int]) -> np.ndarray:
    """(K, J, I) float32 multiplicative texture ~1: 4 % smooth variation and 2 % fine grain."""
    rng = np.random.default_rng(seed)
    smooth = smooth_random_field(rng, shape, 8)[0]
    fine = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 0.8)
    fine /= fine.std() + 1e-12
    return (1.0 + 0.04 * smooth + 0.02 * fine).astype(np.float32)


def synthesize(gm: np.ndarray, wm: np.ndarray, csf: np.ndarray, lesion_frac: np.ndarray,
               lesion_contrast: np.ndarray, levels: dict, texture: np.ndarray) -> np.ndarray:
    """Noise-free FLAIR-like image (K, J, I) float32 from tissue fractions and lesion maps."""
    tissue = levels["csf"] * csf + levels["gm"] * gm + levels["wm"] * wm
    lesion = np.float32(levels["gm"]) * (1.0 + lesion_contrast)
    img = tissue * (1.0 - lesion_frac) + lesion_frac * lesion
    return (img * texture * np.float32(levels["scale"])).astype(np.float32)
