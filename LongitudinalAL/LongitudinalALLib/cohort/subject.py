"""A simulated subject: one real anatomy under its own smooth random deformation.

"Subject" is the unit the train/validation/test split keeps together: with only
three real brains available, each subject is an anatomy (MNI, Colin27 or pycortex S1) warped by
a random global scaling/shear plus a smooth displacement field drawn on a coarse
grid. The deformed tissue maps define the baseline space of every pair of the
subject, and the white-matter regions where lesions are placed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from LongitudinalALLib.cohort.anatomy import Anatomy
from LongitudinalALLib.cohort.deform import rotation_zyx, sampling_coordinates, smooth_random_field, warp

WM_THRESHOLD = 0.5  # a voxel is white matter when its WM probability is at least this


@dataclass
class Subject:
    """Deformed tissue maps (K, J, I) float32 and lesion placement regions (flat voxel indices)."""

    anatomy: Anatomy
    params: dict
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray          # bool
    ventricles: np.ndarray     # bool, deep CSF
    regions: dict[str, np.ndarray] = field(default_factory=dict)  # class -> flat indices into WM
    texture: np.ndarray | None = None  # (K, J, I) float32 FLAIR texture, made on first use

    @property
    def wm_mask(self) -> np.ndarray:
        """(K, J, I) bool: where lesions may lie."""
        return self.wm >= WM_THRESHOLD

    @property
    def spacing_zyx(self) -> np.ndarray:
        return np.array(self.anatomy.spacing[::-1], np.float64)


def sample_subject_params(rng: np.random.Generator, anatomy_name: str, index: int) -> dict:
    """Draw one subject's deformation: global scale/shear/rotation and a smooth field (seeded)."""
    return {
        "subject_id": f"s{index:03d}",
        "anatomy": anatomy_name,
        "scale_zyx": [float(v) for v in rng.uniform(0.92, 1.08, 3)],
        "shear": [float(v) for v in rng.normal(0.0, 0.03, 3)],
        "rotation_deg_zyx": [float(v) for v in rng.uniform(-4.0, 4.0, 3)],
        "field_grid": 6,
        "field_amplitude_mm": float(rng.uniform(1.5, 4.0)),
        "field_seed": int(rng.integers(0, 2**31 - 1)),
        "texture_seed": int(rng.integers(0, 2**31 - 1)),
    }


def subject_matrix(params: dict) -> np.ndarray:
    """(3, 3) zyx matrix mapping subject offsets to anatomy offsets (scale, shear, rotation)."""
    s = np.diag(params["scale_zyx"])
    sh = np.eye(3)
    sh[0, 1], sh[0, 2], sh[1, 2] = params["shear"]
    return rotation_zyx(params["rotation_deg_zyx"]) @ sh @ s


def build_subject(anatomy: Anatomy, params: dict) -> Subject:
    """Warp the anatomy's tissue maps by the subject's deformation and find lesion regions."""
    shape = anatomy.shape
    spacing = np.array(anatomy.spacing[::-1])
    centre = _brain_centre_mm(anatomy.brain, spacing)
    rng = np.random.default_rng(params["field_seed"])
    disp = smooth_random_field(rng, shape, params["field_grid"], components=3) * params["field_amplitude_mm"]
    coords = sampling_coordinates(shape, spacing, centre, subject_matrix(params), disp)
    del disp
    gm, wm, csf = (warp(m, coords) for m in (anatomy.gm, anatomy.wm, anatomy.csf))
    brain = warp(anatomy.brain.astype(np.float32), coords) >= 0.5
    del coords
    gm, wm, csf = (np.clip(m, 0, 1) * brain for m in (gm, wm, csf))
    subj = Subject(anatomy=anatomy, params=params, gm=gm, wm=wm, csf=csf, brain=brain,
                   ventricles=_ventricles(csf, brain, spacing))
    subj.regions = lesion_regions(subj)
    return subj


def _brain_centre_mm(brain: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    return np.array(ndimage.center_of_mass(brain)) * spacing_zyx


def _stride(spacing_zyx: np.ndarray) -> int:
    """Distance maps only classify lesion sites, so below 1.5 mm they run on every 2nd voxel."""
    return 2 if float(np.min(spacing_zyx)) < 1.5 else 1


def _upsample_nearest(a: np.ndarray, step: int, shape: tuple[int, ...]) -> np.ndarray:
    if step == 1:
        return a
    for axis in range(3):
        a = np.repeat(a, step, axis=axis)
    return a[: shape[0], : shape[1], : shape[2]]


def _ventricles(csf: np.ndarray, brain: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    """Deep CSF (at least 15 mm inside the brain): the lateral/third ventricles, not sulci."""
    st = _stride(spacing_zyx)
    depth = ndimage.distance_transform_edt(brain[::st, ::st, ::st], sampling=spacing_zyx * st)
    vent = (csf >= 0.5) & (_upsample_nearest(depth, st, csf.shape) >= 15.0)
    lab, n = ndimage.label(vent)
    if n == 0:
        return vent
    sizes = ndimage.sum_labels(vent, lab, index=np.arange(1, n + 1))
    keep = np.flatnonzero(sizes >= max(sizes.max() * 0.05, 1)) + 1
    return np.isin(lab, keep)


def lesion_regions(subj: Subject) -> dict[str, np.ndarray]:
    """MS lesion sites inside WM, as flat indices into the (K, J, I) grid: periventricular
    (<= 6 mm from a ventricle), juxtacortical (<= 3 mm from cortical GM, > 8 mm from a
    ventricle) and deep (> 8 mm from a ventricle and > 5 mm from GM). Sites are at least
    4 mm inside the brain; below 1.5 mm spacing they lie on every second voxel."""
    st = _stride(subj.spacing_zyx)
    sp = subj.spacing_zyx * st
    view = (slice(None, None, st),) * 3
    wm = subj.wm_mask[view]
    vent = subj.ventricles[view]
    d_vent = ndimage.distance_transform_edt(~vent, sampling=sp) if vent.any() else np.full(wm.shape, np.inf)
    d_gm = ndimage.distance_transform_edt(~(subj.gm[view] >= 0.5), sampling=sp)
    d_edge = ndimage.distance_transform_edt(subj.brain[view], sampling=sp)
    inner = wm & (d_edge > 4.0)
    regions = {
        "periventricular": inner & (d_vent <= 6.0),
        "juxtacortical": inner & (d_gm <= 3.0) & (d_vent > 8.0),
        "deep": inner & (d_vent > 8.0) & (d_gm > 5.0),
    }
    out = {}
    for k, v in regions.items():
        idx = np.nonzero(v)
        out[k] = np.ravel_multi_index(tuple(i * st for i in idx), subj.gm.shape)
    return out
