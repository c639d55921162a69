"""Quality control of a registration from signals that do not share the optimiser's blind spots.

Why several signals: the optimiser only sees Mattes MI on random samples, so a
wrong local optimum can look converged. The QC adds (1) inverse consistency with
an independent backward registration, (2) foreground-mask overlap after warping,
(3) alignment of tissue edges (normalised gradient fields: contrast-invariant,
1/3 for unrelated images in 3D, near 1 for aligned edges), (4) correlation,
(5) plausibility of the recovered linear part (reflection, scale, shear), and
(6) a left-right mirrored alternative. Thresholds were set on tuning seeds
(clinical_grids seeds < 1000), never on the reported ones.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk

EDGE_MIN = 0.75  # normalised-gradient alignment on baseline edges (good pairs 0.9-0.97, random ~0.4)
EDGE_GAIN_MAX = 0.015  # a 2 mm / 2 degree nudge must not improve edge alignment by more than this
DICE_MIN = 0.85  # foreground overlap inside both fields of view
NCC_MIN = 0.50
INVERSE_MAX_MM = 1.5
SCALE_RANGE = (0.8, 1.25)
ANISOTROPY_MAX = 1.15  # largest / smallest singular value of the linear part
MIRROR_MARGIN = 0.02  # mirrored alternative must beat the edge score by this much to flag
FIX = ("Correct the transform in Slicer (Transforms module, edit followup_to_baseline.tfm, save it) and run again "
       "with --initial-transform, give a foreground mask, or keep it with --accept-qc-failure.")


@dataclass
class StageRecord:
    name: str
    iterations: int
    metric: float
    stop: str
    seconds: float


@dataclass
class RegistrationQC:
    """What the user needs to judge a registration (stored as qc.json)."""

    mattes_before: float
    mattes_after: float
    ncc_before: float
    ncc_after: float
    stages: list[StageRecord] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    failed: bool = False
    message: str = "Registration improved the alignment."
    edge_before: float = float("nan")
    edge_after: float = float("nan")
    dice: float = float("nan")
    inverse_consistency_mm: float = float("nan")
    determinant: float = 1.0
    scales: tuple[float, float, float] = (1.0, 1.0, 1.0)
    mirror_edge: float = float("nan")
    edge_gain: float = float("nan")  # best edge alignment among nudged transforms, minus edge_after
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}

    @property
    def iterations(self) -> dict[str, int]:
        return {s.name: s.iterations for s in self.stages}


def sample_points(mask: sitk.Image, n: int = 3000, seed: int = 0) -> np.ndarray:
    """(n, 3) LPS physical centres of random voxels inside ``mask``."""
    idx = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)[:, ::-1].astype(float)
    if len(idx) > n:
        idx = idx[np.random.default_rng(seed).choice(len(idx), n, replace=False)]
    d = np.asarray(mask.GetDirection()).reshape(3, 3)
    return np.asarray(mask.GetOrigin()) + (idx * np.asarray(mask.GetSpacing())) @ d.T


def map_points(transform: sitk.Transform, points: np.ndarray) -> np.ndarray:
    return np.array([transform.TransformPoint(tuple(map(float, p))) for p in points])


def linear_part(transform: sitk.Transform, points: np.ndarray) -> np.ndarray:
    """3x3 least-squares linear part of any transform over ``points`` (n, 3)."""
    mapped = map_points(transform, points)
    design = np.c_[points - points.mean(0), np.ones(len(points))]
    coef, *_ = np.linalg.lstsq(design, mapped, rcond=None)
    return coef[:3].T


def inverse_consistency(forward: sitk.Transform, backward: sitk.Transform, points: np.ndarray) -> float:
    """Mean |backward(forward(p)) - p| in mm: 0 when the two registrations agree."""
    return float(np.linalg.norm(map_points(backward, map_points(forward, points)) - points, axis=1).mean())


def coverage(moving: sitk.Image, fixed: sitk.Image, transform: sitk.Transform) -> np.ndarray:
    """(K, J, I) bool on ``fixed``'s grid: voxels whose mapped point lies inside the moving field of view."""
    ones = sitk.Image(moving.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(moving)
    return sitk.GetArrayFromImage(sitk.Resample(ones, fixed, transform, sitk.sitkNearestNeighbor, 0)) > 0


def _gradients(array: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    return np.stack(np.gradient(array.astype(np.float32), *spacing[::-1]))


def alignment_scores(fixed: tuple, moving: tuple, transform: sitk.Transform) -> dict[str, float]:
    """Edge alignment, NCC and mask Dice of ``moving`` warped onto ``fixed`` (one QC pyramid level each)."""
    f_img, f_mask = fixed
    m_img, m_mask = moving
    warped = sitk.GetArrayFromImage(sitk.Resample(m_img, f_img, transform, sitk.sitkLinear, 0.0))
    inside = coverage(m_img, f_img, transform)
    fmask = np.ones(inside.shape, bool) if f_mask is None else sitk.GetArrayViewFromImage(f_mask) > 0
    region = fmask & inside
    if region.sum() < 50:
        return {"edge": float("nan"), "ncc": float("nan"), "dice": float("nan")}
    f_arr = sitk.GetArrayViewFromImage(f_img)
    gf = _gradients(f_arr, f_img.GetSpacing())
    gm = _gradients(warped, f_img.GetSpacing())
    nf = (gf ** 2).sum(0)
    nm = (gm ** 2).sum(0)
    edges = region & (nf >= np.percentile(nf[region], 75)) & (nm > 0)
    cos2 = (gf * gm).sum(0)[edges] ** 2 / (nf[edges] * nm[edges])
    x = f_arr[region].astype(np.float64) - f_arr[region].mean()
    y = warped[region].astype(np.float64) - warped[region].mean()
    denom = math.sqrt(float((x * x).sum() * (y * y).sum()))
    dice = float("nan")
    if f_mask is not None and m_mask is not None:
        wm = sitk.GetArrayFromImage(sitk.Resample(m_mask, f_img, transform, sitk.sitkNearestNeighbor, 0)) > 0
        a, b = fmask & inside, wm & inside
        dice = float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))
    return {"edge": float(cos2.mean()) if cos2.size else float("nan"),
            "ncc": float((x * y).sum() / denom) if denom > 0 else 0.0, "dice": dice}


def judge(qc: RegistrationQC) -> None:
    """Collect every failed check into ``qc.problems``; set ``failed`` and one-line ``message``."""
    p = []
    if not np.isfinite([qc.ncc_after, qc.edge_after]).all():
        p.append("the scans no longer overlap after registration")
    if not math.isfinite(qc.ncc_before):  # reliability N4: a mirrored or misplaced header reported "NCC nan" as ok
        p.append("the scans hardly overlap where their headers place them (no correlation before registration): "
                 "check both headers' origin and orientation")
    if qc.determinant <= 0:
        p.append(f"the transform mirrors the follow-up (determinant {qc.determinant:.2f})")
    lo, hi = min(qc.scales), max(qc.scales)
    if qc.determinant > 0 and (lo < SCALE_RANGE[0] or hi > SCALE_RANGE[1] or hi / lo > ANISOTROPY_MAX):
        p.append(f"implausible scaling or shear (axis scales {lo:.2f}..{hi:.2f})")
    if qc.inverse_consistency_mm > INVERSE_MAX_MM:
        p.append(f"forward and backward registrations disagree by {qc.inverse_consistency_mm:.1f} mm")
    if qc.dice < DICE_MIN:
        p.append(f"the foreground masks overlap poorly (Dice {qc.dice:.2f})")
    if qc.edge_after < EDGE_MIN:
        p.append(f"tissue edges do not line up (edge alignment {qc.edge_after:.2f}, good pairs > {EDGE_MIN:.2f})")
    if qc.edge_gain > EDGE_GAIN_MAX:
        p.append(f"a transform nudged by 2 mm or 2 degrees lines tissue edges up better (+{qc.edge_gain:.3f}): "
                 "the optimiser stopped short of the alignment")
    if qc.ncc_after < NCC_MIN:
        p.append(f"low correlation inside the mask ({qc.ncc_before:.2f} -> {qc.ncc_after:.2f})")
    if qc.mirror_edge > qc.edge_after + MIRROR_MARGIN:
        p.append("a left-right mirrored follow-up fits better (check the follow-up's orientation header)")
    qc.problems = p
    qc.failed = bool(p)
    if p:
        qc.message = "Registration looks wrong: " + "; ".join(p) + ". " + FIX
