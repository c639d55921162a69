"""Segmentation metrics for new-lesion detection, foreground only.

Dice here never counts the background class (a model that predicts nothing on a
mostly-empty volume must not score 0.99). Dice is undefined when prediction and
truth are both empty; we define it as 1 there and report those subjects apart
so that an average over lesion-bearing subjects stays honest.

Lesion-wise scores work on 3D connected components (26-connectivity by
default) and follow the detection rule of the MSSEG-2016 and MSSEG-2 (new
lesions) challenges, as implemented in Anima's ``animaSegPerfAnalyzer``
(Commowick et al., Sci Rep 8:13650, 2018; Anima-Public ``SegPerfApp``/``Analyzer``:
``getTruePositiveLesions`` and ``falsePositiveRatioTester``, defaults
alpha 0.10, beta 0.70, gamma 0.65). A true lesion L is detected when

1. the predicted voxels cover more than ``alpha`` of L, and
2. taking the predicted components that overlap L by decreasing overlap, until
   they account for ``gamma`` of that overlap, none of them lies more than
   ``beta`` outside every true lesion (background voxels / its size).

A predicted component counts as correct under the same rule with the roles of
prediction and truth swapped. So one blob over the whole brain detects nothing
(it lies almost entirely outside the lesions), where "any overlap" gave F1 = 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from LongitudinalALLib.core.errors import InputError


def _as_bool(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a if a.dtype == bool else a > 0


def dice_foreground(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of the new-lesion class only; 1.0 when both masks are empty.

    Any shape, as long as both match. Call :func:`both_empty` to tell the
    "both empty" case apart from a real overlap of 1.
    """
    p, t = _as_bool(pred), _as_bool(truth)
    if p.shape != t.shape:
        raise InputError(f"The prediction {p.shape} and the truth {t.shape} differ in shape.",
                         "Compare masks on the same grid (resample the prediction onto the truth).")
    denom = int(p.sum()) + int(t.sum())
    if denom == 0:
        return 1.0
    return 2.0 * int(np.logical_and(p, t).sum()) / denom


def both_empty(pred: np.ndarray, truth: np.ndarray) -> bool:
    return not _as_bool(pred).any() and not _as_bool(truth).any()


def _structure(ndim: int, connectivity: int | None) -> np.ndarray:
    # connectivity=None -> full (26 in 3D, 8 in 2D)
    rank = ndim if connectivity is None else connectivity
    return ndimage.generate_binary_structure(ndim, rank)


def connected_lesions(mask: np.ndarray, connectivity: int | None = None,
                      min_size: int = 1) -> tuple[np.ndarray, int]:
    """Label connected components, dropping those under ``min_size`` voxels.

    Returns (labels with 1..n, n).
    """
    lab, n = ndimage.label(_as_bool(mask), structure=_structure(np.ndim(mask), connectivity))
    if min_size > 1 and n:
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        keep = sizes >= min_size
        keep[0] = False
        remap = np.zeros(n + 1, dtype=np.int32)
        remap[keep] = np.arange(1, int(keep.sum()) + 1)
        lab = remap[lab]
        n = int(keep.sum())
    return lab, n


@dataclass
class LesionCounts:
    """Component counts behind lesion-wise precision/recall."""

    n_true: int          # true lesions
    n_detected: int      # true lesions hit by a prediction
    n_pred: int          # predicted components
    n_pred_correct: int  # predicted components hitting a true lesion

    @property
    def false_positives(self) -> int:
        return self.n_pred - self.n_pred_correct

    @property
    def recall(self) -> float:
        return self.n_detected / self.n_true if self.n_true else float("nan")

    @property
    def precision(self) -> float:
        return self.n_pred_correct / self.n_pred if self.n_pred else float("nan")

    @property
    def f1(self) -> float:
        return _f1(self.n_detected, self.n_true, self.n_pred_correct, self.n_pred)

    def __add__(self, other: "LesionCounts") -> "LesionCounts":
        return LesionCounts(self.n_true + other.n_true, self.n_detected + other.n_detected,
                            self.n_pred + other.n_pred, self.n_pred_correct + other.n_pred_correct)


def _f1(n_detected: int, n_true: int, n_pred_correct: int, n_pred: int) -> float:
    """F1 from detection counts; 1 when there is nothing to find and nothing found."""
    if n_true == 0 and n_pred == 0:
        return 1.0
    recall = n_detected / n_true if n_true else 0.0
    precision = n_pred_correct / n_pred if n_pred else 0.0
    if recall + precision == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


#: MSSEG / animaSegPerfAnalyzer defaults (see the module docstring)
ALPHA, BETA, GAMMA = 0.10, 0.70, 0.65


def lesion_counts(pred: np.ndarray, truth: np.ndarray, *, connectivity: int | None = None,
                  alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA,
                  min_size: int = 1) -> LesionCounts:
    """Match connected components of ``pred`` and ``truth`` (same shape, 2D or 3D) by the MSSEG rule."""
    p, t = _as_bool(pred), _as_bool(truth)
    if p.shape != t.shape:
        raise InputError(f"The prediction {p.shape} and the truth {t.shape} differ in shape.",
                         "Compare masks on the same grid (resample the prediction onto the truth).")
    lab_t, n_t = connected_lesions(t, connectivity)
    lab_p, n_p = connected_lesions(p, connectivity, min_size=min_size)
    return counts_from_table(overlap_table(lab_t, n_t, lab_p, n_p), alpha, beta, gamma)


def overlap_table(lab_t: np.ndarray, n_t: int, lab_p: np.ndarray, n_p: int) -> np.ndarray:
    """(n_t + 1, n_p + 1) voxel counts of true component i and predicted component j; row/column 0 = background.

    Dropping whole predicted components (a post-processing step) only drops
    columns, so one table scores every such variant of a prediction.
    """
    pairs = lab_t.ravel().astype(np.int64) * (n_p + 1) + lab_p.ravel()
    return np.bincount(pairs, minlength=(n_t + 1) * (n_p + 1)).reshape(n_t + 1, n_p + 1)


def keep_predicted(table: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The table after dropping the predicted components where ``kept`` (n_p,) is False: their voxels
    become prediction background (column 0), so every true lesion keeps its size."""
    kept = np.asarray(kept, bool)
    out = table[:, np.concatenate([[True], kept])].copy()
    out[:, 0] += table[:, 1:][:, ~kept].sum(axis=1)
    return out


def counts_from_table(table: np.ndarray, alpha: float = ALPHA, beta: float = BETA,
                      gamma: float = GAMMA) -> LesionCounts:
    """MSSEG detection counts from an :func:`overlap_table` (or one after :func:`keep_predicted`)."""
    n_t, n_p = table.shape[0] - 1, table.shape[1] - 1
    if n_t == 0 or n_p == 0:
        return LesionCounts(n_t, 0, n_p, 0)
    return LesionCounts(n_t, _detected(table, alpha, beta, gamma), n_p, _detected(table.T, alpha, beta, gamma))


def _detected(table: np.ndarray, alpha: float, beta: float, gamma: float) -> int:
    """How many reference components (rows 1..) the other side (columns 1..) detects."""
    outside = table[0, 1:] / np.maximum(table[:, 1:].sum(axis=0), 1)  # share of each column on background
    found = 0
    for row in table[1:]:
        hits = row[1:]
        covered = int(hits.sum())
        if covered <= alpha * int(row.sum()):
            continue
        weight, ok = 0.0, True
        for j in np.argsort(-hits, kind="stable"):
            if weight >= gamma or hits[j] == 0:
                break
            if outside[j] > beta:
                ok = False
                break
            weight += hits[j] / covered
        found += ok
    return found


@dataclass
class SubjectMetrics:
    """Per-subject (per-pair) scores on the baseline grid."""

    case_id: str
    dice: float
    both_empty: bool
    has_lesions: bool
    lesions: LesionCounts
    pred_voxels: int
    true_voxels: int

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lesion_f1"] = self.lesions.f1
        d["fp_lesions"] = self.lesions.false_positives
        return d


def subject_metrics(case_id: str, pred: np.ndarray, truth: np.ndarray, *,
                    connectivity: int | None = None, min_size: int = 1) -> SubjectMetrics:
    """All scores for one subject: ``pred``/``truth`` are (K, J, I) masks."""
    p, t = _as_bool(pred), _as_bool(truth)
    return SubjectMetrics(
        case_id=case_id,
        dice=dice_foreground(p, t),
        both_empty=both_empty(p, t),
        has_lesions=bool(t.any()),
        lesions=lesion_counts(p, t, connectivity=connectivity, min_size=min_size),
        pred_voxels=int(p.sum()),
        true_voxels=int(t.sum()),
    )


@dataclass
class CohortMetrics:
    """Summary over subjects. Dice is averaged over lesion-bearing subjects only;
    lesion-free subjects contribute their false-positive lesions instead."""

    dice: float                  # mean per-subject Dice, subjects with new lesions
    dice_std: float
    n_lesion_subjects: int
    lesion_f1: float             # from pooled lesion counts over all subjects
    lesion_precision: float
    lesion_recall: float
    n_lesion_free_subjects: int
    fp_lesions_lesion_free: float  # mean predicted lesions per lesion-free subject
    lesion_free_clean: float       # fraction of lesion-free subjects with no prediction (Dice=1 there)
    subjects: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(subjects: list[SubjectMetrics]) -> CohortMetrics:
    """Aggregate per-subject metrics; NaN where a group is empty."""
    with_l = [s for s in subjects if s.has_lesions]
    without = [s for s in subjects if not s.has_lesions]
    pooled = sum((s.lesions for s in subjects), LesionCounts(0, 0, 0, 0))
    dices = np.array([s.dice for s in with_l], dtype=float)
    return CohortMetrics(
        dice=float(dices.mean()) if dices.size else float("nan"),
        dice_std=float(dices.std()) if dices.size else float("nan"),
        n_lesion_subjects=len(with_l),
        lesion_f1=pooled.f1,
        lesion_precision=pooled.precision if pooled.n_pred else (1.0 if pooled.n_true == 0 else 0.0),
        lesion_recall=pooled.recall if pooled.n_true else float("nan"),
        n_lesion_free_subjects=len(without),
        fp_lesions_lesion_free=float(np.mean([s.lesions.n_pred for s in without])) if without else float("nan"),
        lesion_free_clean=float(np.mean([s.both_empty for s in without])) if without else float("nan"),
        subjects=[s.to_dict() for s in subjects],
    )


# ---------------------------------------------------------------- slice level
def slice_dice(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-slice foreground Dice for (N, H, W) masks; NaN where both are empty."""
    p = _as_bool(pred).reshape(len(pred), -1)
    t = _as_bool(truth).reshape(len(truth), -1)
    inter = np.logical_and(p, t).sum(1)
    denom = p.sum(1) + t.sum(1)
    out = np.full(len(p), np.nan)
    nz = denom > 0
    out[nz] = 2.0 * inter[nz] / denom[nz]
    return out


def slice_detection(pred: np.ndarray, truth: np.ndarray, min_pixels: int = 1) -> dict[str, float]:
    """Slice-level detection: does a slice contain new lesion? (N, H, W) masks in."""
    p = _as_bool(pred).reshape(len(pred), -1).sum(1) >= min_pixels
    t = _as_bool(truth).reshape(len(truth), -1).any(1)
    tp, fp, fn = int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())
    return {
        "tp": tp, "fp": fp, "fn": fn, "tn": int((~p & ~t).sum()),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "f1": _f1(tp, tp + fn, tp, tp + fp),
    }
