"""Suggestions shown to the user: which slice to label and where its candidate change is.

Slicer-free (numpy only) so the worker process and the tests share it. One
record carries both coordinates of a suggested slice: ``row``, its position in
the pool arrays (N, ...) and on the model grid, and ``slice_index``, the
baseline voxel slice along the pairing axis (what the user sees). They differ
whenever pairing flips the slice axis (coronal/sagittal runs, inferior-pointing
k axes), so geometry always uses ``row`` and the session's label key always
``slice_index``. ``ras`` is the candidate change on that baseline slice: the
voxel of maximal evidence (|difference| or model uncertainty, inside the
foreground), in RAS mm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

#: status values shown in the suggestions table
PENDING, ACCEPTED = "pending", "accepted"

_AXIS_TO_ARRAY_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}


@dataclass
class Suggestion:
    rank: int                       # 1 = most worth labelling
    case_id: str
    slice_index: int                # baseline voxel slice along the pairing axis (the session's label key)
    ras: tuple[float, float, float]  # candidate change, RAS mm (on the suggested slice)
    slice_ras: tuple[float, float, float]  # centre of the model window on that slice, RAS mm
    score: float
    status: str = PENDING
    extra: dict = field(default_factory=dict)
    row: int | None = None          # pool row / model slice n; None only in scenes saved before rows existed

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ras"], d["slice_ras"] = list(self.ras), list(self.slice_ras)
        return d

    def pool_row(self, session) -> int:
        """The pool row of this suggestion in ``session`` (an ALSession), checked against the stored row."""
        row = session.position(self.case_id, self.slice_index)
        if self.row is not None and int(self.row) != row:
            from LongitudinalALLib.core.errors import SessionError

            raise SessionError(f"Suggestion {self.rank} names row {self.row} but slice {self.slice_index}, "
                               f"which is row {row} of case {self.case_id}.",
                               "Press Retrain (or Run) for fresh suggestions.")
        return row

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


def build_suggestions(rows: np.ndarray, scores: np.ndarray, case_id: str, evidence: np.ndarray,
                      foreground: np.ndarray | None, ijk_to_ras: np.ndarray, provenance: list,
                      axis: str = "axial") -> list[Suggestion]:
    """Suggestions for pool ``rows`` (best first).

    scores: (N,) per row; provenance: per row, objects with ``slice_index`` (baseline slice)
    and ``center_ras`` (pairing.SliceProvenance); evidence, foreground: (K, J, I) baseline grid.
    """
    out = []
    for rank, n in enumerate(np.asarray(rows).tolist(), start=1):
        index = int(provenance[n].slice_index)
        ras = candidate_point(evidence, foreground, ijk_to_ras, index, axis)
        out.append(Suggestion(rank, case_id, index, ras, tuple(float(v) for v in provenance[n].center_ras),
                              float(scores[n]), row=int(n)))
    return out
