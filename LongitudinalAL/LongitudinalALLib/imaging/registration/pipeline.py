"""Register a follow-up scan to its baseline: multi-start rigid -> affine (-> B-spline), Mattes MI.

Why this design (clinical grids: thick slices, oblique slabs, 2 x 2 x 3 mm):
- the pyramid shrinks each axis by its own spacing and never shrinks thick
  (>= 2.5 mm) axes (registration_pyramid); the last affine level is the native grid;
- initialisation tries several rigid starts and keeps the best by metric
  (registration_init), so a different field of view or a 12 degree head turn
  does not decide the result by luck;
- an independent backward registration checks the solution is stable: when the
  two disagree, the forward run is restarted from the inverted backward result
  and the better one (by metric) is kept; the disagreement left is QC evidence;
- QC (registration_qc) combines signals the optimiser does not see.

Every transform returned here is a *resampling* transform: it maps baseline
(fixed) points to follow-up (moving) points, which is what ``sitk.Resample``
and ITK ``.tfm`` files (as read by Slicer) expect.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.core.progress import CancelToken, ProgressCallback, check_cancel, report
from LongitudinalALLib.imaging.registration.edges import edge_gain
from LongitudinalALLib.imaging.registration.engine import affine_levels, evaluate, optimise
from LongitudinalALLib.imaging.registration.initial import best_rigid_start
from LongitudinalALLib.imaging.registration.mirror import mirrored_edge_score
from LongitudinalALLib.imaging.registration.pyramid import Pyramid
from LongitudinalALLib.imaging.registration.qc import (
    INVERSE_MAX_MM,
    RegistrationQC,
    StageRecord,
    alignment_scores,
    inverse_consistency,
    judge,
    linear_part,
    sample_points,
)

STAGE = "registration"
__all__ = ["RegistrationQC", "RegistrationResult", "RegistrationSettings", "StageRecord", "register"]


@dataclass
class RegistrationSettings:
    """Knobs of the stages. Levels are block sizes in mm; 0 means the native grid."""

    init_level_mm: float = 8.0
    rigid_levels_mm: tuple[float, ...] = (4.0, 2.0)  # the first also refines the best starts
    rigid_iterations: int = 60
    affine_levels_mm: tuple[float, ...] = (4.0, 2.0, 0.0)
    affine_iterations: tuple[int, ...] = (80, 60, 40)
    samples: tuple[int, ...] = (2000, 6000, 15000, 25000)  # 8 mm, 4 mm, 2 mm, native
    backward_levels_mm: tuple[float, ...] = (4.0,)  # the backward check stops here (it only has to agree)
    histogram_bins: int = 32
    backward_check: bool = True
    mirror_check: bool = True
    qc_level_mm: float = 2.0
    deformable: bool = False
    bspline_levels_mm: tuple[float, ...] = (4.0, 2.0)
    bspline_mesh_mm: float = 40.0
    bspline_iterations: int = 30
    seed: int = 0

    def samples_at(self, level_mm: float) -> int:
        index = {8.0: 0, 4.0: 1, 2.0: 2}.get(float(level_mm), 3 if level_mm <= 0 else 1)
        return self.samples[min(index, len(self.samples) - 1)]


@dataclass
class RegistrationResult:
    transform: sitk.Transform  # baseline point -> follow-up point
    followup_resampled: sitk.Image  # follow-up on the baseline grid, float32
    qc: RegistrationQC


def register(baseline: sitk.Image, followup: sitk.Image, *, baseline_mask: sitk.Image | None = None,
             followup_mask: sitk.Image | None = None, settings: RegistrationSettings | None = None,
             initial_transform: sitk.Transform | None = None, progress: ProgressCallback | None = None,
             cancel: CancelToken | None = None) -> RegistrationResult:
    """Align ``followup`` to ``baseline``; return the transform, resampled follow-up and QC.

    Both images should be intensity-normalised float32 (see preprocess); masks
    (UInt8, each on its own image's grid) restrict samples to the foreground.
    ``initial_transform`` (baseline point -> follow-up point, e.g. corrected by the
    user in Slicer) is used as it is: no optimisation, only QC and resampling.
    """
    s = settings or RegistrationSettings()
    start, cpu = time.perf_counter(), time.process_time()
    fixed, moving = Pyramid(baseline, baseline_mask), Pyramid(followup, followup_mask)
    report(progress, STAGE, 0.0, "initialising")
    stages: list[StageRecord] = []
    backward = None
    if initial_transform is None:
        final = _linear(fixed, moving, s, stages, "", lambda f: report(progress, STAGE, 0.6 * f, "forward"), cancel)
        if s.backward_check:
            check_cancel(cancel, "Registration")
            backward = _linear(moving, fixed, s, stages, "backward ",
                               lambda f: report(progress, STAGE, 0.6 + 0.2 * f, "backward check"), cancel,
                               levels=s.backward_levels_mm)
            final = _reconcile(fixed, moving, final, backward, s, stages)
        if s.deformable:
            final = _bspline(fixed, moving, final, s, stages, cancel)
    else:
        final = initial_transform
    check_cancel(cancel, "Registration")
    report(progress, STAGE, 0.85, "quality control")
    qc = _quality(fixed, moving, final, backward, s, stages, mirror=initial_transform is None and s.mirror_check)
    resampled = sitk.Resample(moving.image, fixed.image, final, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    qc.seconds = time.perf_counter() - start
    qc.cpu_seconds = time.process_time() - cpu  # all threads: shared cores inflate wall time, not this
    report(progress, STAGE, 1.0, "done")
    return RegistrationResult(final, resampled, qc)


def _linear(fixed: Pyramid, moving: Pyramid, s: RegistrationSettings, stages: list, prefix: str, on_progress,
            cancel, levels: tuple[float, ...] | None = None) -> sitk.AffineTransform:
    """Multi-start rigid, then affine coarse to fine on ``levels`` (default: the settings' affine levels)."""
    t0 = time.perf_counter()
    rigid_levels = s.rigid_levels_mm
    rigid, iters = best_rigid_start((fixed(s.init_level_mm), fixed(rigid_levels[0])),
                                    (moving(s.init_level_mm), moving(rigid_levels[0])),
                                    samples=s.samples_at(s.init_level_mm), seed=s.seed)
    metric = float("nan")
    for level in rigid_levels[1:]:
        check_cancel(cancel, "Registration")
        run = optimise(rigid, fixed(level), moving(level), iterations=s.rigid_iterations, samples=s.samples_at(level),
                       step=max(0.5, level / 2), seed=s.seed, stage=prefix + "rigid")
        iters, metric = iters + run.iterations, run.metric
    stages.append(StageRecord(prefix + "rigid", iters, metric, "multi-start", time.perf_counter() - t0))
    on_progress(0.4)
    affine = _affine_from(rigid)
    affine_levels(fixed, moving, affine, s, stages, prefix, cancel, levels=levels)
    on_progress(1.0)
    return affine


def _affine_from(t: sitk.Transform) -> sitk.AffineTransform:
    affine = sitk.AffineTransform(3)
    affine.SetCenter(t.GetCenter())
    affine.SetMatrix(t.GetMatrix())
    affine.SetTranslation(t.GetTranslation())
    return affine


def _reconcile(fixed: Pyramid, moving: Pyramid, forward: sitk.AffineTransform, backward: sitk.AffineTransform,
               s: RegistrationSettings, stages: list) -> sitk.AffineTransform:
    """Keep ``forward`` if the backward run agrees; else also refine inverse(backward) and keep the better."""
    points = sample_points(fixed(s.qc_level_mm)[1] or _ones(fixed(s.qc_level_mm)[0]), 1000, s.seed)
    if inverse_consistency(forward, backward, points) <= INVERSE_MAX_MM:
        return forward
    alternative = _affine_from(sitk.AffineTransform(backward.GetInverse()))
    affine_levels(fixed, moving, alternative, s, stages, "restart ", None, levels=s.affine_levels_mm[1:],
                   iterations=s.affine_iterations[1:])
    level = s.qc_level_mm

    def score(t: sitk.Transform) -> float:
        return evaluate(t, fixed(level), moving(level), samples=s.samples_at(level), seed=s.seed + 1)

    return alternative if score(alternative) < score(forward) else forward


def _bspline(fixed: Pyramid, moving: Pyramid, affine: sitk.AffineTransform, s: RegistrationSettings,
             stages: list, cancel) -> sitk.Transform:
    """Optional deformable stage on top of the affine one (bspline applied first, then affine)."""
    t0 = time.perf_counter()
    image = fixed.image
    extent = np.asarray(image.GetSize()) * np.asarray(image.GetSpacing())
    mesh = [max(1, int(round(e / s.bspline_mesh_mm))) for e in extent]
    bspline = sitk.BSplineTransformInitializer(image, mesh, 3)
    from LongitudinalALLib.imaging.registration.engine import method

    iters = 0
    for level in s.bspline_levels_mm:
        check_cancel(cancel, "Registration")
        reg = method(fixed(level), moving(level), s.samples_at(level), s.histogram_bins, s.seed)
        reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=s.bspline_iterations,
                                 maximumNumberOfCorrections=5,
                                 maximumNumberOfFunctionEvaluations=4 * s.bspline_iterations)
        reg.SetMovingInitialTransform(affine)
        reg.SetInitialTransform(bspline, inPlace=True)
        reg.Execute(fixed(level)[0], moving(level)[0])
        iters += reg.GetOptimizerIteration()
    stages.append(StageRecord("bspline", iters, float(reg.GetMetricValue()), reg.GetOptimizerStopConditionDescription(),
                              time.perf_counter() - t0))
    return sitk.CompositeTransform([affine, bspline])


def _ones(image: sitk.Image) -> sitk.Image:
    ones = sitk.Image(image.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(image)
    return ones


def _quality(fixed: Pyramid, moving: Pyramid, final: sitk.Transform, backward, s: RegistrationSettings,
             stages: list, mirror: bool) -> RegistrationQC:

    level = s.qc_level_mm
    f_level, m_level = fixed(level), moving(level)
    identity = sitk.Euler3DTransform()
    samples = s.samples_at(level)
    before = alignment_scores(f_level, m_level, identity)
    after = alignment_scores(f_level, m_level, final)
    points = sample_points(f_level[1] if f_level[1] is not None else _ones(f_level[0]), 1000, s.seed)
    matrix = linear_part(final, points)
    qc = RegistrationQC(evaluate(identity, f_level, m_level, samples=samples, seed=s.seed),
                        evaluate(final, f_level, m_level, samples=samples, seed=s.seed),
                        before["ncc"], after["ncc"], stages, edge_before=before["edge"], edge_after=after["edge"],
                        dice=after["dice"], determinant=float(np.linalg.det(matrix)),
                        scales=tuple(float(v) for v in np.linalg.svd(matrix, compute_uv=False)))
    qc.edge_gain = edge_gain(f_level, m_level, final, points.mean(axis=0))[1]
    if backward is not None:
        qc.inverse_consistency_mm = inverse_consistency(final, backward, points)
    if mirror and isinstance(final, sitk.AffineTransform):
        qc.mirror_edge = mirrored_edge_score(fixed, moving, final, s)
    judge(qc)
    return qc
