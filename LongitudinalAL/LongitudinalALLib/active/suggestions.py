"""The one suggestion record: which slice to label, and where its candidate change is.

Torch-free (numpy only): the loop, the CLI, the job worker and the scene all
use it. A record carries both coordinates of a suggested slice: ``row``, its
position in the pool arrays (N, ...) and on the model grid, and
``slice_index``, the baseline voxel slice along the pairing axis (what the
user sees and the session's label key). They differ whenever pairing flips the
slice axis (coronal/sagittal runs, inferior-pointing k axes), so geometry
always uses ``row`` and labels always ``slice_index``. ``slice_ras`` is the
centre of the model window on that slice; ``ras`` the candidate change on it
(the voxel of maximal evidence, :func:`place_on_baseline`), the slice centre
until the suggestion is placed. Both in RAS mm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from LongitudinalALLib.imaging.ras import candidate_point

#: status values shown in the suggestions table
PENDING, ACCEPTED = "pending", "accepted"

_AXIS_TO_ARRAY_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}


@dataclass
class Suggestion:
    rank: int                       # 1 = most worth labelling
    case_id: str
    slice_index: int                # baseline voxel slice along the pairing axis (the session's label key)
    ras: tuple[float, float, float]  # candidate change on that slice, RAS mm (the slice centre until placed)
    slice_ras: tuple[float, float, float]  # centre of the model window on that slice, RAS mm
    score: float
    status: str = PENDING
    extra: dict = field(default_factory=dict)
    row: int | None = None          # pool row / model slice n; None only in scenes saved before rows existed
    reason: str = ""                # why it was picked, e.g. "uncertain new lesion" ("" in records before issue 27)
    rule_score: float | None = None  # the score of the rule that picked it (``score`` is the strategy's ranking)

    def why(self) -> str:
        """One line: the reason and its rule's score, e.g. 'uncertain new lesion (12.3)'."""
        if not self.reason:
            return ""
        return self.reason if self.rule_score is None else f"{self.reason} ({self.rule_score:.3g})"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ras"], d["slice_ras"] = list(self.ras), list(self.slice_ras)
        return d

    def pool_row(self, session) -> int:
        """The pool row of this suggestion in ``session`` (a SessionStore), checked against the stored row."""
        row = session.position(self.case_id, self.slice_index)
        if self.row is not None and int(self.row) != row:
            from LongitudinalALLib.core.errors import SessionError

            raise SessionError(f"Suggestion {self.rank} names row {self.row} but slice {self.slice_index}, "
                               f"which is row {row} of case {self.case_id}.",
                               "Press Retrain (or Run) for fresh suggestions.")
        return row

    @classmethod
    def from_dict(cls, d: dict) -> "Suggestion":
        """Read a stored record; sessions written before the records were unified stored ``center_ras``."""
        d = dict(d)
        if "center_ras" in d:
            d["slice_ras"] = d.pop("center_ras")
        d["slice_ras"] = tuple(float(v) for v in d["slice_ras"])
        d["ras"] = tuple(float(v) for v in d.get("ras", d["slice_ras"]))
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


def place_on_baseline(suggestions: list[Suggestion], evidence: np.ndarray, foreground: np.ndarray | None,
                      ijk_to_ras: np.ndarray, axis: str = "axial") -> list[Suggestion]:
    """Set each suggestion's ``ras`` to its candidate change: the max-evidence voxel on its baseline slice.

    evidence, foreground: (K, J, I) on the baseline grid; ijk_to_ras: (4, 4).
    """
    for s in suggestions:
        s.ras = candidate_point(evidence, foreground, ijk_to_ras, s.slice_index, axis)
    return suggestions
