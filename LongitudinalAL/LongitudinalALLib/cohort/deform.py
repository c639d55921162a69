"""Smooth random fields and warps: subject variety without per-voxel elastic cost.

A random field is drawn on a coarse control grid (a few points per axis) and
upsampled to the image as a tensor product of 1-D Gaussian-weighted
interpolation matrices, so a 1 mm field costs three small matrix products rather
than a per-voxel B-spline evaluation. Warps sample with ``scipy.ndimage.map_coordinates``
(linear), in voxel index space of a (K, J, I) grid with physical spacing.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _interp_matrix(n_out: int, n_ctrl: int) -> np.ndarray:
    """(n_out, n_ctrl) weights: each output sample is a normalised Gaussian blend of control points."""
    ctrl = np.linspace(0.0, 1.0, n_ctrl)
    x = np.linspace(0.0, 1.0, n_out)[:, None]
    h = 1.0 / max(n_ctrl - 1, 1)
    w = np.exp(-0.5 * ((x - ctrl[None, :]) / (0.6 * h)) ** 2)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def upsample(coarse: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Upsample a (a, b, c) control grid to a smooth (K, J, I) float32 field."""
    mz, my, mx = (_interp_matrix(n, c) for n, c in zip(shape, coarse.shape))
    out = np.tensordot(coarse.astype(np.float32), mx, axes=([2], [1]))      # (a, b, I)
    out = np.tensordot(out, my, axes=([1], [1]))                            # (a, I, J)
    out = np.tensordot(out, mz, axes=([0], [1]))                            # (I, J, K)
    return np.ascontiguousarray(out.transpose(2, 1, 0))


def smooth_random_field(rng: np.random.Generator, shape: tuple[int, int, int], grid: int,
                        components: int = 1) -> np.ndarray:
    """(components, K, J, I) smooth field with roughly unit amplitude (std of control values = 1)."""
    coarse = rng.standard_normal((components, grid, grid, grid))
    return np.stack([upsample(c, shape) for c in coarse])


def sampling_coordinates(shape: tuple[int, int, int], spacing_zyx: np.ndarray, centre_zyx_mm: np.ndarray,
                         matrix_zyx: np.ndarray | None = None,
                         displacement_mm: np.ndarray | None = None) -> np.ndarray:
    """(3, K, J, I) float32 voxel coordinates to sample from for p -> c + A (p - c) + d(p).

    ``matrix_zyx`` (3, 3) acts on mm offsets in (z, y, x) order; ``displacement_mm`` is (3, K, J, I).
    """
    spacing = np.asarray(spacing_zyx, np.float32)
    axes = [np.arange(n, dtype=np.float32) * s - c for n, s, c in zip(shape, spacing, centre_zyx_mm)]
    a = np.eye(3, dtype=np.float32) if matrix_zyx is None else np.asarray(matrix_zyx, np.float32)
    coords = np.empty((3,) + tuple(shape), np.float32)
    for r in range(3):  # row r of A applied to the separable grid, without a (3, N) intermediate
        coords[r] = (a[r, 0] * axes[0][:, None, None] + a[r, 1] * axes[1][None, :, None]
                     + a[r, 2] * axes[2][None, None, :]) + centre_zyx_mm[r]
        if displacement_mm is not None:
            coords[r] += displacement_mm[r]
        coords[r] /= spacing[r]
    return coords


def warp(array: np.ndarray, coords: np.ndarray, order: int = 1) -> np.ndarray:
    """Sample a (K, J, I) array at (3, K, J, I) voxel coordinates; 0 outside."""
    return ndimage.map_coordinates(array, coords, order=order, mode="constant", cval=0.0,
                                   output=np.float32)


def rotation_zyx(angles_deg: list[float]) -> np.ndarray:
    """Rotation about the z, y then x axis (angles in degrees), acting on (z, y, x) vectors."""
    a, b, c = np.deg2rad(angles_deg)
    rz = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])  # about z: mixes y, x
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx
