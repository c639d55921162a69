"""Initialisation that does not depend on luck: several rigid starts, kept by metric.

Why: a single moments start lands in a wrong basin when the follow-up covers a
different field of view (thick 2D slabs), has a different contrast, or the head
turned by 10+ degrees. Starts combine three centre matches (intensity moments,
mask centroids, grid centres) with no rotation and +-ROTATION_DEG about each axis;
each gets a short rigid run on the coarse level, and the best few are refined on
the next level before one is kept.
"""

from __future__ import annotations

import itertools

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.imaging.registration.engine import Level, optimise

ROTATION_DEG = 15.0


def _centroid(level: Level) -> np.ndarray:
    """Physical centroid of the mask (or of the positive intensities), LPS mm."""
    image, mask = level
    weights = sitk.GetArrayViewFromImage(mask if mask is not None else image).astype(np.float64)
    weights = np.clip(weights, 0, None)
    idx = np.argwhere(weights > 0)
    w = weights[weights > 0]
    centre = (idx[:, ::-1] * w[:, None]).sum(0) / max(w.sum(), 1e-9)
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint(centre.tolist()))


def _moments(level: Level) -> np.ndarray:
    image, mask = level
    masked = image if mask is None else sitk.Mask(image, mask)
    return _centroid((sitk.Clamp(masked, lowerBound=0.0), None))


def _grid_centre(level: Level) -> np.ndarray:
    image = level[0]
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2.0 for s in image.GetSize()]))


def candidate_starts(fixed: Level, moving: Level) -> list[sitk.Euler3DTransform]:
    """Rigid starts (fixed point -> moving point): 3 centre matches x 7 rotations."""
    centre = _centroid(fixed)
    shifts = [_moments(moving) - _moments(fixed), _centroid(moving) - centre,
              _grid_centre(moving) - _grid_centre(fixed)]
    angle = np.radians(ROTATION_DEG)
    rotations = [(0.0, 0.0, 0.0)] + [tuple(s * angle if a == i else 0.0 for a in range(3))
                                     for i, s in itertools.product(range(3), (-1.0, 1.0))]
    starts = []
    for shift, rot in itertools.product(shifts, rotations):
        t = sitk.Euler3DTransform()
        t.SetCenter(tuple(centre))
        t.SetRotation(*rot)
        t.SetTranslation(tuple(shift))
        starts.append(t)
    return starts


def best_rigid_start(fixed_levels, moving_levels, *, samples: int, seed: int, keep: int = 3,
                     iterations: tuple[int, int] = (20, 40)) -> tuple[sitk.Euler3DTransform, int]:
    """Run every start briefly on the coarse level, refine the best ``keep`` on the next; return the best.

    ``fixed_levels``/``moving_levels``: (coarse, next) pyramid levels. Returns (transform, iterations run).
    """
    scored = []
    total = 0
    for start in candidate_starts(fixed_levels[0], moving_levels[0]):
        try:
            run = optimise(start, fixed_levels[0], moving_levels[0], iterations=iterations[0], samples=samples,
                           step=4.0, seed=seed, stage="initialisation")
        except Exception:  # a start that loses all overlap is simply discarded
            continue
        total += run.iterations
        scored.append((run.metric, start))
    if not scored:
        raise_no_start()
    scored.sort(key=lambda item: item[0])
    refined = []
    for _, start in scored[:keep]:
        t = sitk.Euler3DTransform(start)
        try:
            run = optimise(t, fixed_levels[1], moving_levels[1], iterations=iterations[1], samples=3 * samples,
                           step=2.0, seed=seed, stage="initialisation")
        except Exception:
            continue
        total += run.iterations
        refined.append((run.metric, t))
    if not refined:
        raise_no_start()
    return min(refined, key=lambda item: item[0])[1], total


def raise_no_start() -> None:
    from LongitudinalALLib.core.errors import RegistrationError

    raise RegistrationError("Registration could not start: no initial position keeps the scans overlapping.",
                            "Check that both scans show the same anatomy; pre-align the follow-up (Slicer "
                            "Transforms module) and run again with --initial-transform.")
