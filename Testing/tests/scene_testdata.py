"""Small real test data for the scene tests: an MNI T1 pair at 3 mm with a new bright blob.

Used until/unless the bundled sample pair (Resources/SampleData) is present; both
are real anatomy (nilearn's MNI ICBM152 2009 T1) with simulated change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def mni_t1(spacing_mm: float = 3.0) -> sitk.Image:
    """MNI T1 resampled to ``spacing_mm`` isotropic (about 66x78x63 voxels at 3 mm)."""
    from nilearn.datasets import load_mni152_template

    nii = load_mni152_template(resolution=1)
    array = np.asarray(nii.get_fdata(), dtype=np.float32)  # (x, y, z) RAS
    affine = nii.affine
    image = sitk.GetImageFromArray(np.transpose(array, (2, 1, 0)).copy())
    flip = np.diag([-1.0, -1.0, 1.0])
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple((flip @ (affine[:3, :3] / spacing)).ravel()))
    image.SetOrigin(tuple(flip @ affine[:3, 3]))
    size = [int(round(sz * sp / spacing_mm)) for sz, sp in zip(image.GetSize(), image.GetSpacing())]
    smooth = sitk.SmoothingRecursiveGaussian(image, spacing_mm / 2.0)
    return sitk.Resample(smooth, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(),
                         (spacing_mm,) * 3, image.GetDirection(), 0.0, sitk.sitkFloat32)


def blob_center_lps(image: sitk.Image) -> tuple[float, float, float]:
    """A point in deep white matter (right hemisphere), in LPS mm."""
    return (-25.0, 10.0, 25.0)  # RAS (25, -10, 25)


def make_pair(spacing_mm: float = 3.0, shift_mm: float = 2.0, blob_radius_mm: float = 7.0
              ) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """(baseline, follow-up, new-lesion mask on the baseline grid); follow-up shifted by ``shift_mm``."""
    baseline = mni_t1(spacing_mm)
    arr = sitk.GetArrayFromImage(baseline)
    idx = np.indices(arr.shape).reshape(3, -1)[::-1].T  # (N, 3) i, j, k
    origin = np.array(baseline.GetOrigin())
    direction = np.array(baseline.GetDirection()).reshape(3, 3)
    phys = origin + (direction @ (idx * np.array(baseline.GetSpacing())).T).T
    dist = np.linalg.norm(phys - np.array(blob_center_lps(baseline)), axis=1).reshape(arr.shape)
    lesion = dist <= blob_radius_mm
    follow = arr + np.where(lesion, 0.8 * float(arr.max()), 0.0).astype(np.float32)
    followup = sitk.GetImageFromArray(follow.astype(np.float32))
    followup.CopyInformation(baseline)
    # the follow-up was acquired with the head shifted: resample it through a translation
    shifted = sitk.Resample(followup, baseline, sitk.TranslationTransform(3, (shift_mm, -shift_mm, 0.0)),
                            sitk.sitkLinear, 0.0)
    mask = sitk.GetImageFromArray(lesion.astype(np.uint8))
    mask.CopyInformation(baseline)
    return baseline, shifted, mask


def write_pair(directory: Path, spacing_mm: float = 3.0) -> tuple[Path, Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    baseline, followup, mask = make_pair(spacing_mm)
    paths = directory / "baseline.nrrd", directory / "followup.nrrd", directory / "new_lesions.nrrd"
    for image, path in zip((baseline, followup, mask), paths):
        sitk.WriteImage(image, str(path), True)
    return paths


def with_registration(options, tfm):
    """``options`` (scene RunOptions) with ``tfm`` as the prepare step's initial transform (no optimisation)."""
    from dataclasses import replace

    return replace(options, prepare={**options.prepare, "initial_transform": str(tfm)})


def sample_pair_files() -> tuple[Path, Path, Path | None] | None:
    """(baseline, follow-up, new-lesion mask) of the bundled sample pair, if it is there."""
    from LongitudinalALLib.core.resources import sample_data_dir

    d = sample_data_dir()
    base, follow = d / "baseline.nii.gz", d / "followup.nii.gz"
    if base.is_file() and follow.is_file():
        mask = d / "new_lesions.nii.gz"
        return base, follow, mask if mask.is_file() else None
    return None


def assert_view_shows(app, view: str, volume_node, image: sitk.Image, min_match: float = 0.99) -> int:
    """Check that slice view ``view`` shows ``image`` (the volume in its background) pixel for pixel.

    Sets nearest-neighbour display and a full-range window, reslices through the
    view's XY->RAS, samples ``image`` at the same RAS points and compares grey
    levels; returns how many view pixels fell inside the volume.
    """
    from LongitudinalALLib.scene import viewer, volumes

    array = sitk.GetArrayFromImage(image)
    lo, hi = float(array.min()), float(array.max())
    display = volume_node.GetDisplayNode()
    display.SetInterpolate(0)
    display.AutoWindowLevelOff()
    display.SetWindowLevel(hi - lo, (hi + lo) / 2)
    rgba = viewer.resliced_rgba(app, view)
    h, w = rgba.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    ras = viewer.xy_to_ras(app, view) @ np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size), np.ones(xs.size)])
    idx = np.rint((np.linalg.inv(volumes.ijk_to_ras(volume_node)) @ ras)[:3]).astype(int)
    inside = np.all((idx >= 0) & (idx < np.array(image.GetSize())[:, None]), axis=0)
    expected = np.clip((array[idx[2, inside], idx[1, inside], idx[0, inside]] - lo) / (hi - lo) * 255.0, 0, 255)
    shown = rgba[..., 0].ravel()[inside].astype(float)
    assert inside.sum() > 500, "the view does not cross the volume"
    assert np.mean(np.abs(shown - expected) <= 2.0) >= min_match
    return int(inside.sum())
