"""What changes between two scans of an unchanged brain: pose, coil bias, noise, gain, atrophy.

* misalignment: rigid + small affine (scale, shear) about the brain centre, as a
  SimpleITK ``AffineTransform`` in physical (LPS) space; ``followup[y] = clean[T(y)]``,
  so ``T^-1`` is the ground-truth registration (fixed = baseline, moving = follow-up);
* bias: smooth multiplicative field ``exp(a * smooth)``;
* Rician noise: magnitude of a complex signal with Gaussian noise in both channels;
* gain drift: one multiplicative factor; per-visit tissue levels live in ``flair``;
* atrophy: a smooth local expansion around the ventricles (follow-up only).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.cohort.deform import sampling_coordinates, smooth_random_field, warp


def sample_misalignment(rng: np.random.Generator) -> dict:
    """Rotation (deg, about x/y/z), translation (mm), per-axis scale and shear (LPS physical)."""
    return {
        "rotation_deg_xyz": [float(v) for v in np.clip(rng.normal(0, 1.5, 3), -4, 4)],
        "translation_mm_xyz": [float(v) for v in np.clip(rng.normal(0, 2.0, 3), -6, 6)],
        "scale_xyz": [float(v) for v in 1.0 + np.clip(rng.normal(0, 0.01, 3), -0.03, 0.03)],
        "shear_xy_xz_yz": [float(v) for v in np.clip(rng.normal(0, 0.01, 3), -0.03, 0.03)],
    }


def misalignment_transform(params: dict, centre_lps: tuple[float, float, float]) -> sitk.AffineTransform:
    """The follow-up sampling transform T (follow-up grid point -> baseline-space point)."""
    ax, ay, az = np.deg2rad(params["rotation_deg_xyz"])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    shear = np.eye(3)
    shear[0, 1], shear[0, 2], shear[1, 2] = params["shear_xy_xz_yz"]
    m = rz @ ry @ rx @ shear @ np.diag(params["scale_xyz"])
    t = sitk.AffineTransform(3)
    t.SetCenter(tuple(float(c) for c in centre_lps))
    t.SetMatrix(tuple(float(v) for v in m.ravel()))
    t.SetTranslation(tuple(float(v) for v in params["translation_mm_xyz"]))
    return t


def apply_misalignment(image: sitk.Image, transform: sitk.Transform) -> sitk.Image:
    """Resample ``image`` through ``transform`` on its own grid (linear, 0 outside)."""
    return sitk.Resample(image, image, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def sample_bias(rng: np.random.Generator) -> dict:
    return {"seed": int(rng.integers(0, 2**31 - 1)), "grid": 4, "amplitude": float(rng.uniform(0.05, 0.2))}


def bias_field(params: dict, shape: tuple[int, int, int]) -> np.ndarray:
    """(K, J, I) float32 smooth multiplicative field, ~exp(+-amplitude)."""
    rng = np.random.default_rng(params["seed"])
    return np.exp(params["amplitude"] * smooth_random_field(rng, shape, params["grid"])[0]).astype(np.float32)


def rician_noise(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """|image + N(0, sigma) + i N(0, sigma)| (float32), the magnitude-MRI noise model."""
    rng = np.random.default_rng(seed)
    re = image + np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
    im = np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.sqrt(re * re + im * im)


def sample_atrophy(rng: np.random.Generator, probability: float = 0.3) -> dict:
    on = bool(rng.random() < probability)
    return {"enabled": on, "expansion": float(rng.uniform(0.01, 0.04)) if on else 0.0, "sigma_mm": 30.0}


def atrophy_coordinates(params: dict, shape: tuple[int, int, int], spacing_zyx: np.ndarray,
                        centre_zyx_mm: np.ndarray) -> np.ndarray:
    """(3, K, J, I) sampling coordinates that expand tissue around ``centre`` by ``expansion``
    (ventricle enlargement), fading out with a Gaussian window of ``sigma_mm``."""
    axes = [np.arange(n, dtype=np.float32) * s - c for n, s, c in zip(shape, spacing_zyx, centre_zyx_mm)]
    r2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
    w = (-params["expansion"] * np.exp(-r2 / (2 * params["sigma_mm"] ** 2))).astype(np.float32)
    disp = np.stack([w * np.broadcast_to(axes[0][:, None, None], shape),
                     w * np.broadcast_to(axes[1][None, :, None], shape),
                     w * np.broadcast_to(axes[2][None, None, :], shape)])
    return sampling_coordinates(shape, spacing_zyx, centre_zyx_mm, None, disp)


def apply_atrophy(maps: list[np.ndarray], coords: np.ndarray) -> list[np.ndarray]:
    return [warp(m, coords) for m in maps]
