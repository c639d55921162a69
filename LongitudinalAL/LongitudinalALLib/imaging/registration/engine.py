"""One optimisation run of Mattes mutual information on one pyramid level.

Why a fixed number of samples (not a percentage): ITK draws ``percentage x all
voxels`` and then drops those outside the fixed mask, so a percentage means a
different sample count on every grid. Here the percentage is derived from the
mask's voxel count so every level sees about ``samples`` points, with a fixed
seed (repeatable; SimpleITK treats seed 0 as 'wall clock', so seeds are shifted).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.core.errors import RegistrationError
from LongitudinalALLib.core.progress import check_cancel
from LongitudinalALLib.imaging.registration.qc import StageRecord

Level = tuple  # (image float32, mask UInt8 | None)


@dataclass(frozen=True)
class RunResult:
    metric: float
    iterations: int
    stop: str


def _sampling_fraction(fixed: sitk.Image, mask: sitk.Image | None, samples: int) -> float:
    inside = fixed.GetNumberOfPixels() if mask is None else int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    return float(min(1.0, samples / max(1, inside)))


def method(fixed: Level, moving: Level, samples: int, bins: int, seed: int) -> sitk.ImageRegistrationMethod:
    """A Mattes MI registration method restricted to both masks, with seeded random samples."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(_sampling_fraction(fixed[0], fixed[1], samples), int(seed) + 1)
    if fixed[1] is not None:
        reg.SetMetricFixedMask(fixed[1])
    if moving[1] is not None:
        reg.SetMetricMovingMask(moving[1])
    reg.SetInterpolator(sitk.sitkLinear)
    # Gradients by finite differences at the samples: no whole-image Gaussian filter, which
    # costs seconds on a 1 mm grid and needs >= 4 voxels on every axis.
    reg.MetricUseFixedImageGradientFilterOff()
    reg.MetricUseMovingImageGradientFilterOff()
    return reg


def optimise(transform: sitk.Transform, fixed: Level, moving: Level, *, iterations: int, samples: int,
             step: float, bins: int = 32, seed: int = 0, stage: str = "registration") -> RunResult:
    """Optimise ``transform`` (fixed point -> moving point) in place by gradient descent."""
    reg = method(fixed, moving, samples, bins, seed)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=step, minStep=1e-3 * step,
                                                 numberOfIterations=int(iterations),
                                                 relaxationFactor=0.5, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(transform, inPlace=True)
    try:
        reg.Execute(fixed[0], moving[0])
    except RuntimeError as err:  # e.g. all samples fell outside the moving image
        raise RegistrationError(f"Registration failed at the {stage} stage: the scans stopped overlapping "
                                f"({str(err).strip().splitlines()[-1][:120]}).",
                                "Check that both scans show the same anatomy; pre-align the follow-up (Slicer "
                                "Transforms module) and run again with --initial-transform.") from None
    return RunResult(float(reg.GetMetricValue()), int(reg.GetOptimizerIteration()),
                     reg.GetOptimizerStopConditionDescription())


def evaluate(transform: sitk.Transform, fixed: Level, moving: Level, *, samples: int = 20000, bins: int = 32,
             seed: int = 0) -> float:
    """Mattes MI (negative, lower is better) under ``transform``; +inf when nothing overlaps."""
    reg = method(fixed, moving, samples, bins, seed)
    reg.SetInitialTransform(transform, inPlace=False)
    try:
        return float(reg.MetricEvaluate(fixed[0], moving[0]))
    except RuntimeError:
        return float("inf")


def affine_levels(fixed, moving, affine, s, stages, prefix, cancel, levels=None, iterations=None) -> None:
    """Optimise ``affine`` in place on each level (mm; 0 = native, skipped when it equals the 2 mm level)."""
    t0 = time.perf_counter()
    iters, run = 0, None
    levels = s.affine_levels_mm if levels is None else levels
    counts = iterations or s.affine_iterations[:len(levels)]
    for level, n in zip(levels, counts):
        if level <= 0 and fixed.is_native(2.0) and moving.is_native(2.0):
            continue  # coarse scans: the native grid is the 2 mm level already
        check_cancel(cancel, "Registration")
        kept = affine.GetParameters()
        before = evaluate(affine, fixed(level), moving(level), samples=s.samples_at(level), seed=s.seed + 1)
        run = optimise(affine, fixed(level), moving(level), iterations=n, samples=s.samples_at(level),
                       step=max(0.25, level / 4), seed=s.seed, stage=prefix + "affine")
        iters += run.iterations
        if evaluate(affine, fixed(level), moving(level), samples=s.samples_at(level), seed=s.seed + 1) > before:
            affine.SetParameters(kept)  # the level drifted away (e.g. scale/shear runaway): keep the start
    stages.append(StageRecord(prefix + "affine", iters, run.metric if run else float("nan"),
                              run.stop if run else "", time.perf_counter() - t0))
