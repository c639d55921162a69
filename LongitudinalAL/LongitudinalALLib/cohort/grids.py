"""Clinical acquisition grids: thick slices with a slice profile, oblique slabs, int16.

Why: a pair rendered on the anatomy's 1 mm grid hides what real scans do to the
difference image (through-plane partial volume, oblique slabs, quantisation).
Both the domain-randomised training family (``randomise``) and the frozen
held-out family (``heldout``) acquire their clean 1 mm images through here, so
the physics is shared while their contrast and lesion models differ.

``acquire`` samples a (K, J, I) float32 image given on a source grid (LPS) onto
a target grid: first onto a fine grid with the target's orientation (through a
pose transform when given), then a Gaussian slice profile (FWHM = spacing) along
each target axis, then linear sampling onto the target voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from LongitudinalALLib.cohort import acquisition as acq


@dataclass(frozen=True)
class Grid:
    """An axial acquisition grid: in-plane spacing (x, y), slice spacing (z), slab tilt (deg about x, y)."""

    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    tilt_deg: tuple[float, float] = (0.0, 0.0)

    def to_dict(self) -> dict:
        return {"spacing": list(self.spacing), "tilt_deg": list(self.tilt_deg)}


@dataclass
class GridPair:
    """One pair: int16 scans on their own grids and the uint8 new-lesion truth on the baseline grid."""

    pair_id: str
    grid_type: str
    baseline: sitk.Image
    followup: sitk.Image
    truth: sitk.Image
    params: dict

    @property
    def has_new(self) -> bool:
        return bool(sitk.GetArrayViewFromImage(self.truth).any())


def _tilt_matrix(tilt_deg: tuple[float, float]) -> np.ndarray:
    ax, ay = np.deg2rad(tilt_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    return ry @ rx


def grid_reference(source: sitk.Image, grid: Grid) -> sitk.Image:
    """An empty image on ``grid`` covering the source's field of view (its centre kept)."""
    src_dir = np.array(source.GetDirection()).reshape(3, 3)
    direction = _tilt_matrix(grid.tilt_deg) @ src_dir
    size_src = np.array(source.GetSize(), float)
    extent = size_src * np.array(source.GetSpacing())
    centre = np.array(source.TransformContinuousIndexToPhysicalPoint(list((size_src - 1) / 2.0)))
    fov = np.abs(direction.T @ src_dir) @ extent  # the tilted box's bounding box still covers the source
    spacing = np.array(grid.spacing, float)
    size = np.maximum(np.ceil(fov / spacing).astype(int), 1)
    origin = centre - direction @ ((size - 1) / 2.0 * spacing)
    ref = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    ref.SetSpacing(tuple(float(s) for s in spacing))
    ref.SetDirection(tuple(float(v) for v in direction.ravel()))
    ref.SetOrigin(tuple(float(v) for v in origin))
    return ref


def acquire(source: sitk.Image, reference: sitk.Image, transform: sitk.Transform | None = None) -> np.ndarray:
    """(K, J, I) float32 of ``source`` seen on ``reference``'s voxels with a Gaussian slice profile.

    ``transform`` maps reference points to source points (the head's pose at this visit).
    """
    t = transform if transform is not None else sitk.Transform()
    target = np.array(reference.GetSpacing(), float)
    src = float(min(source.GetSpacing()))
    fine_sp = np.minimum(target, src)
    ratio = target / fine_sp
    fine_size = [int(np.ceil(n * r)) for n, r in zip(reference.GetSize(), ratio)]
    direction = np.array(reference.GetDirection()).reshape(3, 3)
    first = np.array(reference.GetOrigin()) - direction @ ((target - fine_sp) / 2.0)
    fine = sitk.Resample(source, fine_size, t, sitk.sitkLinear, tuple(float(v) for v in first),
                         tuple(float(v) for v in fine_sp), reference.GetDirection(), 0.0, sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(fine)
    sigma_vox = np.sqrt(np.maximum(ratio ** 2 - 1.0, 0.0)) / 2.355  # FWHM of the profile = target spacing
    if np.any(sigma_vox > 0):
        arr = ndimage.gaussian_filter(arr, sigma=sigma_vox[::-1])
    fine_img = sitk.GetImageFromArray(arr)
    fine_img.CopyInformation(fine)
    out = sitk.Resample(fine_img, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def finish(clean: np.ndarray, reference: sitk.Image, bias: dict | None, noise_sigma: float,
           noise_seed: int) -> sitk.Image:
    """Bias field, Rician noise and int16 quantisation of an acquired (K, J, I) image."""
    img = clean
    if bias is not None:
        img = img * acq.bias_field(bias, img.shape)
    if noise_sigma > 0:
        img = acq.rician_noise(img, noise_sigma, noise_seed)
    out = sitk.GetImageFromArray(np.clip(np.rint(img), 0, 32767).astype(np.int16))
    out.CopyInformation(reference)
    return out


def pose_transform(rotation_deg_xyz, translation_mm_xyz, centre_lps) -> sitk.AffineTransform:
    """A rigid head pose about ``centre_lps`` (reference point -> anatomy point)."""
    return acq.misalignment_transform({"rotation_deg_xyz": list(rotation_deg_xyz),
                                       "translation_mm_xyz": list(translation_mm_xyz),
                                       "scale_xyz": [1.0, 1.0, 1.0], "shear_xy_xz_yz": [0.0, 0.0, 0.0]},
                                      tuple(float(c) for c in centre_lps))


def brain_centre_lps(image: sitk.Image, brain: np.ndarray) -> tuple[float, float, float]:
    """Physical (LPS) centre of a (K, J, I) brain mask on ``image``'s grid."""
    c = np.array(ndimage.center_of_mass(brain))[::-1]
    return image.TransformContinuousIndexToPhysicalPoint([float(v) for v in c])


def scan_pair(anat, clean: tuple[np.ndarray, np.ndarray], new_fraction: np.ndarray, grids: tuple[Grid, Grid],
              poses: tuple[dict, dict], bias: tuple[dict | None, dict | None], noise_sigma: tuple[float, float],
              noise_seed: tuple[int, int]) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """Acquire both visits' clean (K, J, I) anatomy-grid images on their own grids and poses.

    ``poses``: {"rotation_deg_xyz", "translation_mm_xyz"} about the brain centre. Returns the
    int16 baseline, int16 follow-up and the uint8 truth (``new_fraction`` seen on the baseline, >= 0.5).
    """
    src = anat.to_image(np.zeros(anat.shape, np.float32))
    centre = brain_centre_lps(src, anat.brain)
    refs = [grid_reference(src, g) for g in grids]
    tfs = [pose_transform(q["rotation_deg_xyz"], q["translation_mm_xyz"], centre) for q in poses]
    scans = [finish(acquire(anat.to_image(clean[v]), refs[v], tfs[v]), refs[v], bias[v], noise_sigma[v],
                    noise_seed[v]) for v in (0, 1)]
    truth = sitk.GetImageFromArray((acquire(anat.to_image(new_fraction), refs[0], tfs[0]) >= 0.5).astype(np.uint8))
    truth.CopyInformation(refs[0])
    return scans[0], scans[1], truth
