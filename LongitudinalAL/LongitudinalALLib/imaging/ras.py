"""RAS <-> LPS, once: SimpleITK geometry is LPS, Slicer and everything shown to the user is RAS.

Why one module: the flip was defined in three places (scene volumes, suggestions,
pairing). ``ras = LPS_TO_RAS @ lps`` (the matrix is its own inverse).
"""

from __future__ import annotations

import numpy as np

#: diag(-1, -1, 1): LPS -> RAS and RAS -> LPS
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def image_ijk_to_ras(image) -> np.ndarray:
    """(4, 4) IJK->RAS matrix of a SimpleITK image (its geometry is LPS)."""
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ np.array(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    matrix[:3, 3] = LPS_TO_RAS @ np.array(image.GetOrigin())
    return matrix


def slice_axis_of(ijk_to_ras: np.ndarray, axis: str) -> int:
    """Numpy axis (0=K, 1=J, 2=I) of a (K, J, I) array whose voxel axis is closest to ``axis``'s normal."""
    normal = {"axial": 2, "coronal": 1, "sagittal": 0}[axis]  # RAS component
    directions = ijk_to_ras[:3, :3] / np.linalg.norm(ijk_to_ras[:3, :3], axis=0)  # columns i, j, k
    voxel_axis = int(np.argmax(np.abs(directions[normal, :])))  # 0=i, 1=j, 2=k
    return 2 - voxel_axis


def candidate_point(evidence: np.ndarray, foreground: np.ndarray | None, ijk_to_ras: np.ndarray,
                    slice_index: int, axis: str = "axial") -> tuple[float, float, float]:
    """RAS of the max-evidence voxel on baseline slice ``slice_index``.

    evidence, foreground: (K, J, I) on the baseline grid; ijk_to_ras: (4, 4).
    Falls back to the centre of the slice when the slice holds no foreground.
    """
    array_axis = slice_axis_of(ijk_to_ras, axis)
    plane = np.abs(np.take(evidence, slice_index, axis=array_axis)).astype(np.float64)
    if foreground is not None:
        plane = np.where(np.take(foreground, slice_index, axis=array_axis) > 0, plane, -np.inf)
    if not np.isfinite(plane).any():
        flat = (np.array(plane.shape) - 1) / 2.0
    else:
        flat = np.array(np.unravel_index(int(np.argmax(plane)), plane.shape), dtype=float)
    kji = np.insert(flat, array_axis, float(slice_index))
    ras = ijk_to_ras @ np.array([kji[2], kji[1], kji[0], 1.0])
    return tuple(float(v) for v in ras[:3])
