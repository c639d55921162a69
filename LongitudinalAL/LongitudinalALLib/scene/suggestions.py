"""Suggestions shown to the user: which slice to label and where its candidate change is.

Slicer-free (numpy only) so the worker process and the tests share it. A
suggestion's ``ras`` is the candidate change on the suggested baseline slice:
the voxel of maximal evidence (|difference| or model uncertainty, inside the
foreground) on that slice, in RAS mm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

#: status values shown in the suggestions table
PENDING, ACCEPTED, SKIPPED = "pending", "accepted", "skipped"

_AXIS_TO_ARRAY_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}


@dataclass
class Suggestion:
    rank: int                       # 1 = most worth labelling
    case_id: str
    slice_index: int                # model slice index n (= baseline slice along the axis)
    ras: tuple[float, float, float]  # candidate change, RAS mm (on the suggested slice)
    slice_ras: tuple[float, float, float]  # centre of the model window on that slice, RAS mm
    score: float
    status: str = PENDING
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ras"], d["slice_ras"] = list(self.ras), list(self.slice_ras)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Suggestion":
        d = dict(d)
        d["ras"] = tuple(float(v) for v in d["ras"])
        d["slice_ras"] = tuple(float(v) for v in d["slice_ras"])
        return cls(**d)


def image_ijk_to_ras(image) -> np.ndarray:
    """(4, 4) IJK->RAS matrix of a SimpleITK image (its geometry is LPS)."""
    flip = np.diag([-1.0, -1.0, 1.0])
    matrix = np.eye(4)
    matrix[:3, :3] = flip @ np.array(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    matrix[:3, 3] = flip @ np.array(image.GetOrigin())
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


def build_suggestions(indices: np.ndarray, scores: np.ndarray, case_id: str, evidence: np.ndarray,
                      foreground: np.ndarray | None, ijk_to_ras: np.ndarray,
                      slice_centres_ras: list[tuple[float, float, float]], axis: str = "axial"
                      ) -> list[Suggestion]:
    """Suggestions for model slice ``indices`` (best first); scores: (N,) per model slice."""
    out = []
    for rank, n in enumerate(np.asarray(indices).tolist(), start=1):
        ras = candidate_point(evidence, foreground, ijk_to_ras, int(n), axis)
        out.append(Suggestion(rank, case_id, int(n), ras, tuple(float(v) for v in slice_centres_ras[n]),
                              float(scores[n])))
    return out
