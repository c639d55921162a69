"""Brain extraction of a full-head T1 by affine registration of the MNI template (for training anatomies).

Why: the pycortex 1.4.0 sdist ships a real single-subject T1 (``S1``) with skull,
scalp and neck; the generator needs its brain mask. No skull-stripping tool ships
with the project, so the skull-stripped MNI ICBM152 T1 is registered to the head
(rigid, then affine; Mattes mutual information sampled only inside the template's
brain, so the skull and neck of the head do not pull) and its filled brain mask
is resampled onto the head's grid. An affine fit is enough for a training anatomy:
a millimetre of dura or CSF at the edge only becomes a little extra "CSF".
Tissue maps then come from the subject's own intensities (3-class Otsu, as for
Colin27), never from the template.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.core.errors import InputError

SHRINK = 2  # register on a 2 mm copy: ~6 s on one core for a 256^3 head


def _register(fixed: sitk.Image, moving: sitk.Image, moving_mask: sitk.Image, initial: sitk.Transform,
              shrink: list[int], sigmas: list[float]) -> sitk.Transform:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.1, seed=1)
    method.SetMetricMovingMask(moving_mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(2.0, 1e-3, 200, relaxationFactor=0.6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(shrink)
    method.SetSmoothingSigmasPerLevel(sigmas)
    method.SetInitialTransform(initial, inPlace=False)
    method.SetNumberOfThreads(1)  # reproducible: ITK's threaded metric sums in a varying order
    return method.Execute(fixed, moving)


def _as_affine(transform: sitk.Transform) -> sitk.AffineTransform:
    rigid = sitk.Euler3DTransform(transform.GetNthTransform(0) if isinstance(transform, sitk.CompositeTransform)
                                  else transform)
    affine = sitk.AffineTransform(3)
    affine.SetCenter(rigid.GetCenter())
    affine.SetMatrix(rigid.GetMatrix())
    affine.SetTranslation(rigid.GetTranslation())
    return affine


def template_brain_mask(head: sitk.Image, template: sitk.Image, template_brain: np.ndarray) -> np.ndarray:
    """(K, J, I) bool brain mask on ``head``'s grid from the skull-stripped ``template`` and its brain mask.

    ``head``: full-head T1 (float32); ``template``: skull-stripped T1; ``template_brain``: (K, J, I) bool on
    ``template``'s grid. Raises InputError when the fit is implausible (a brain of under 0.8 or over 2.2 litres).
    """
    mask = sitk.GetImageFromArray(template_brain.astype(np.uint8))
    mask.CopyInformation(template)
    fixed, moving = sitk.Shrink(head, [SHRINK] * 3), sitk.Shrink(template, [SHRINK] * 3)
    moving_mask = sitk.Shrink(mask, [SHRINK] * 3)
    initial = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                                sitk.CenteredTransformInitializerFilter.MOMENTS)
    rigid = _register(fixed, moving, moving_mask, initial, [4, 2], [2.0, 1.0])
    affine = _register(fixed, moving, moving_mask, _as_affine(rigid), [4, 2, 1], [2.0, 1.0, 0.0])
    brain = sitk.GetArrayFromImage(sitk.Resample(mask, head, affine, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)) > 0
    litres = brain.sum() * float(np.prod(head.GetSpacing())) / 1e6
    if not 0.8 <= litres <= 2.2:
        raise InputError(f"The template fit gave a brain of {litres:.2f} litres, which is not a brain.",
                         "Check that the T1 is a whole head at about 1 mm.")
    return brain
