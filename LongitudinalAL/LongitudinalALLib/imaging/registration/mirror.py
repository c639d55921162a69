"""Left-right mirrored alternative: does a mirrored follow-up fit the baseline better?

Why: a brain is nearly symmetric, so a follow-up whose voxels (or header) are
flipped left-right registers "well", and a new lesion then appears in the other
hemisphere. Refining the found transform composed with a mirror about the
follow-up's mid-sagittal plane, and comparing edge alignment, catches gross
cases (QC flags when the mirrored fit is clearly better).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.imaging.registration.engine import affine_levels
from LongitudinalALLib.imaging.registration.initial import _centroid
from LongitudinalALLib.imaging.registration.qc import alignment_scores


def mirrored(transform: sitk.AffineTransform, centre: np.ndarray) -> sitk.AffineTransform:
    """``transform`` followed by a reflection of x (L-R in LPS) about the plane x = centre[0]."""
    flip = np.diag([-1.0, 1.0, 1.0])
    a = np.asarray(transform.GetMatrix()).reshape(3, 3)
    c = np.asarray(transform.GetCenter())
    t = np.asarray(transform.GetTranslation())
    out = sitk.AffineTransform(3)
    out.SetCenter(tuple(c))
    out.SetMatrix(tuple((flip @ a).ravel()))
    out.SetTranslation(tuple(flip @ (c + t) + np.array([2 * centre[0], 0.0, 0.0]) - c))
    return out


def mirrored_edge_score(fixed, moving, transform: sitk.AffineTransform, s) -> float:
    """Edge alignment after refining the mirrored alternative on the 4 mm level (a gross check)."""
    alternative = mirrored(transform, _centroid(moving(4.0)))
    try:
        affine_levels(fixed, moving, alternative, s, [], "mirror ", None, levels=(4.0,), iterations=(60,))
    except Exception:  # the mirrored alternative lost overlap: it cannot fit better
        return float("nan")
    return alignment_scores(fixed(s.qc_level_mm), moving(s.qc_level_mm), alternative)["edge"]
