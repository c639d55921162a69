"""Domain-randomised training pairs (SynthSeg-like): every visit draws its own contrast and grid.

Why: a model trained on one contrast model and 1 mm grids fires on any
tissue-structured difference (a grey/white contrast change between visits, a
thick-slice partial-volume pattern). Here such differences are common and are
never labelled, so the model must learn that only new lesions count:

* anatomy: deformed subjects (``subject.py``) of MNI ICBM152 and pycortex's real S1 T1, taking turns
  (``TRAIN_ANATOMIES``; Colin27 stays held out for the frozen evaluation family);
* lesions: the cohort's lesion model (``lesions.py``); ``P_LESION_FREE`` of the pairs have none;
* contrast per visit: GM/WM/CSF levels (GM 0.85-1.6 x WM, CSF 0.03-0.6) then a random smooth
  monotone curve (piecewise linear through 6 random increments, Gaussian-smoothed);
* grid per visit: slices 1 mm (30 %) or 1.5-6 mm with a slice profile, in-plane 0.5-1.2 mm,
  slab tilt up to 15 deg; head pose up to 8 deg / 10 mm at follow-up;
* bias (amplitude 0-0.3), Rician noise (1-8 % of WM), int16;
* ``residual``: a rigid error (<= 2 deg, <= 1.5 mm) applied after the product's registration
  (:func:`misregister`), as registration leaves on real pairs.

Family ``real1`` (issue 24) keeps all of that and moves the draws towards what the real pairs of
open_ms_data show (``real_stats.py``, Lesjak et al., Neuroinformatics 2016): lesion sizes and
elongation of the real change masks, many small changes per pair of which 40 % shrink or fade
(present at baseline, smaller or fainter at follow-up, never labelled new; lesion-free pairs
have them too), fainter lesions, 60 % of the grids clinical 2D FLAIR (0.55-0.95 mm in plane,
2.8-4 mm slices) with a protocol change at follow-up, and in 70 % of the pairs a follow-up contrast
close to the baseline's (the real protocol change is small), the rest as ``v1``.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from LongitudinalALLib.cohort.anatomy import load_anatomy
from LongitudinalALLib.cohort.flair import subject_texture, synthesize
from LongitudinalALLib.cohort.generator import make_subject
from LongitudinalALLib.cohort.grids import Grid, GridPair, brain_centre_lps, pose_transform, scan_pair
from LongitudinalALLib.cohort import real_stats
from LongitudinalALLib.cohort.lesions import lesion_maps, new_lesion_mask, sample_lesions
from LongitudinalALLib.cohort.subject import Subject

#: subject ``s`` is drawn from ``TRAIN_ANATOMIES[s % 2]``; Colin27 is never used (held out)
TRAIN_ANATOMIES: tuple[str, ...] = ("mni", "pycortex_s1")
P_LESION_FREE = 0.4
PAIRS_PER_SUBJECT = 3
FAMILIES: tuple[str, ...] = ("v1", "real1")


def _visit(rng: np.random.Generator) -> dict:
    inc = rng.dirichlet(np.full(6, 3.0))
    return {"wm": 1.0, "gm": float(rng.uniform(0.85, 1.6)), "csf": float(rng.uniform(0.03, 0.6)),
            "scale": float(rng.uniform(200.0, 1000.0)), "curve": [float(v) for v in np.cumsum(inc)]}


def _grid(rng: np.random.Generator, max_tilt: float) -> dict:
    thick = 1.0 if rng.random() < 0.3 else float(rng.uniform(1.5, 6.0))
    inplane = float(rng.uniform(0.5, 1.2))
    return {"spacing": [inplane, inplane, thick],
            "tilt_deg": [float(rng.uniform(-max_tilt, max_tilt)), float(rng.uniform(-max_tilt, max_tilt) / 3)]}


def _near_visit(rng: np.random.Generator, base: dict) -> dict:
    """A follow-up contrast close to the baseline's (``real1``): GM contrast x0.9-1.1, CSF x0.85-1.15, curve 80/20."""
    inc = np.diff(np.concatenate([[0.0], base["curve"]]))
    inc = 0.8 * inc + 0.2 * rng.dirichlet(np.full(6, 3.0))
    return {"wm": 1.0, "gm": float(1.0 + (base["gm"] - 1.0) * rng.uniform(0.9, 1.1)),
            "csf": float(base["csf"] * rng.uniform(0.85, 1.15)), "scale": float(rng.uniform(200.0, 1000.0)),
            "curve": [float(v) for v in np.cumsum(inc)]}


def _clinical_grid(rng: np.random.Generator, max_tilt: float) -> dict:
    """``real1``: 60 % a clinical 2D FLAIR grid (real_stats ranges), else a ``v1`` grid."""
    if rng.random() >= 0.6:
        return _grid(rng, max_tilt)
    inplane = float(rng.uniform(*real_stats.CLINICAL_INPLANE_MM))
    return {"spacing": [inplane, inplane, float(rng.uniform(*real_stats.CLINICAL_SLICE_MM))],
            "tilt_deg": [float(rng.uniform(-max_tilt, max_tilt)), float(rng.uniform(-max_tilt, max_tilt) / 3)]}


def _real1_draws(rng: np.random.Generator, subject: Subject) -> tuple[list, list, list]:
    """Lesions, visits and grids of a ``real1`` pair."""
    free = rng.random() < P_LESION_FREE
    n_new, n_enl, n_shrink = real_stats.lesion_counts(rng)
    if free:
        n_new, n_enl = 0, 0
    lesions = sample_lesions(rng, subject, int(rng.integers(0, 7)) + n_enl, n_new, n_enl, n_shrinking=n_shrink,
                             draws=real_stats.REAL_DRAWS)
    v_b = _visit(rng)
    visits = [v_b, _near_visit(rng, v_b) if rng.random() < 0.7 else _visit(rng)]
    g_b = _clinical_grid(rng, 6.0)
    grids = [g_b, g_b if rng.random() < 0.3 else _clinical_grid(rng, 15.0)]
    return lesions, visits, grids


def sample_params(rng: np.random.Generator, subject: Subject, pair_id: str, family: str = "v1") -> dict:
    """Every random choice of one training pair (JSON) of ``family`` (``FAMILIES``)."""
    if family == "real1":
        lesions, visits, grids = _real1_draws(rng, subject)
    else:
        free = rng.random() < P_LESION_FREE
        n_new = 0 if free else int(1 + rng.poisson(1.5))
        lesions = sample_lesions(rng, subject, int(rng.integers(0, 7)), n_new, 0 if free else int(rng.random() < 0.3))
        g_b = _grid(rng, 6.0)
        grids = [g_b, g_b if rng.random() < 0.5 else _grid(rng, 15.0)]
        visits = [_visit(rng), _visit(rng)]
    return {
        "pair_id": pair_id, "subject_id": subject.params["subject_id"], "family": family, "lesions": lesions,
        "visits": visits, "grids": grids,
        "pose": [{"rotation_deg_xyz": [float(v) for v in rng.uniform(-r, r, 3)],
                  "translation_mm_xyz": [float(v) for v in rng.uniform(-t, t, 3)]} for r, t in ((3, 4), (8, 10))],
        "bias": [{"seed": int(rng.integers(2**31 - 1)), "grid": 4, "amplitude": float(rng.uniform(0.0, 0.3))}
                 for _ in range(2)],
        "noise_rel": [float(rng.uniform(0.01, 0.08)) for _ in range(2)],
        "noise_seed": [int(rng.integers(2**31 - 1)) for _ in range(2)],
        "residual": {"rotation_deg_xyz": [float(v) for v in np.clip(rng.normal(0, 0.7, 3), -2, 2)],
                     "translation_mm_xyz": [float(v) for v in np.clip(rng.normal(0, 0.5, 3), -1.5, 1.5)]},
    }


def apply_curve(image: np.ndarray, brain: np.ndarray, visit: dict) -> np.ndarray:
    """Map intensities through the visit's monotone curve (knots on [0, 99.9th percentile])."""
    top = float(np.percentile(image[brain], 99.9)) + 1e-6
    knots_y = np.concatenate([[0.0], visit["curve"]])
    xs = np.linspace(0.0, 1.0, 401)
    ys = ndimage.gaussian_filter1d(np.interp(xs, np.linspace(0, 1, len(knots_y)), knots_y), 8, mode="nearest")
    ys = np.maximum.accumulate(ys - ys[0])
    slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    x = image / top
    out = np.where(x <= 1.0, np.interp(x, xs, ys), ys[-1] + slope * (x - 1.0))
    return (out * visit["scale"]).astype(np.float32)


def pair_anatomy(index: int, anatomies: tuple[str, ...] = TRAIN_ANATOMIES) -> str:
    """The anatomy of training pair ``index`` (whole subjects take turns)."""
    return anatomies[(index // PAIRS_PER_SUBJECT) % len(anatomies)]


def pair_name(seed: int, index: int, family: str = "v1") -> str:
    """``r<seed>_<index>`` (``v1``, as before) or ``<family>_<seed>_<index>``."""
    return f"r{seed}_{index:04d}" if family == "v1" else f"{family}_{seed}_{index:04d}"


def make_pair(seed: int, index: int, anatomy_spacing_mm: float = 1.0,
              subjects: dict | None = None, anatomies: tuple[str, ...] = TRAIN_ANATOMIES,
              family: str = "v1") -> GridPair:
    """Training pair ``index`` of family ``family`` and data seed ``seed`` (deterministic); ``subjects``
    caches deformed subjects.

    Raises InputError (with the set-up command) when the pair's anatomy has not been fetched.
    """
    anat = load_anatomy(pair_anatomy(index, anatomies), anatomy_spacing_mm)
    s_index = index // PAIRS_PER_SUBJECT
    cache = subjects if subjects is not None else {}
    if s_index not in cache:
        cache.clear()
        cache[s_index] = make_subject(anat, seed, s_index)
    subject = cache[s_index]
    rng = np.random.default_rng([seed, 1, index])
    p = sample_params(rng, subject, pair_name(seed, index, family), family) | {"anatomy": anat.name}
    if subject.texture is None:
        subject.texture = subject_texture(subject.params["texture_seed"], subject.gm.shape)
    frac_b, con_b, frac_f, con_f = lesion_maps(p["lesions"], subject)
    clean = []
    for v, (frac, con) in enumerate(((frac_b, con_b), (frac_f, con_f))):
        gm = p["visits"][v]["gm"]  # lesions stay brighter than both GM and WM whichever is brighter
        con = (max(gm, 1.0) * (1.0 + con) / gm - 1.0).astype(np.float32)
        img = synthesize(subject.gm, subject.wm, subject.csf, frac, con, {**p["visits"][v], "scale": 1.0},
                         subject.texture)
        clean.append(apply_curve(img, subject.brain, p["visits"][v]))
    new = new_lesion_mask(frac_b, frac_f).astype(np.float32)
    wm_level = [float(np.median(c[subject.wm_mask])) for c in clean]
    grids = tuple(Grid(tuple(g["spacing"]), tuple(g["tilt_deg"])) for g in p["grids"])
    subj_anat = _subject_anatomy(anat, subject)
    baseline, followup, truth = scan_pair(
        subj_anat, tuple(clean), new, grids, tuple(p["pose"]), tuple(p["bias"]),
        (p["noise_rel"][0] * wm_level[0], p["noise_rel"][1] * wm_level[1]), tuple(p["noise_seed"]))
    return GridPair(p["pair_id"], "randomised", baseline, followup, truth, p)


def _subject_anatomy(anat, subject: Subject):
    """The anatomy's geometry with the deformed subject's brain (what ``scan_pair`` centres on)."""
    from dataclasses import replace

    return replace(anat, brain=subject.brain)


def misregister(baseline: sitk.Image, registered: sitk.Image, foreground: sitk.Image, residual: dict) -> sitk.Image:
    """The registered follow-up moved by a small rigid ``residual`` about the brain centre (baseline grid)."""
    centre = brain_centre_lps(baseline, sitk.GetArrayViewFromImage(foreground) > 0)
    t = pose_transform(residual["rotation_deg_xyz"], residual["translation_mm_xyz"], centre)
    return sitk.Resample(registered, baseline, t, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
