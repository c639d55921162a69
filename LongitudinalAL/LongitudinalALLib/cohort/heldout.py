"""Frozen held-out pair family: assumptions the training generators never make.

Why: a test drawn from the simulator that made the training data measures how
well the model learnt that simulator. This family was written and frozen
(``FAMILY_VERSION``; a test pins a checksum of a small sample) before any new
weights were trained, and differs from the training families on purpose:

* anatomy: Colin27 only (training draws MNI ICBM152 subjects);
* contrast: per-visit tissue levels, then a per-visit power curve
  ``(I / I_max) ** gamma`` and a per-visit tissue-specific smooth heterogeneity
  (SynthSeg-like "each visit its own contrast", but a different functional form
  from training's piecewise-linear curves);
* lesions: thresholded smooth random fields inside an elongated envelope (no
  ellipsoid + satellite blobs), hard edge blurred by 0.6 mm, allowed to reach
  into grey matter; brightness relative to the brighter of GM/WM;
* acquisition (``grids``): a random head pose per visit (up to 6 deg, 8 mm),
  slice profile on the grid, bias, Rician noise, int16. Half the pairs have no
  new lesion.

Grid types (baseline grid, follow-up grid): ``iso1`` 1 mm both (follow-up slab
tilted up to 8 deg) and ``axial3`` 1x1x3 mm both (follow-up tilted up to 12 deg).
The truth is the new-lesion fraction seen on the baseline grid, >= 0.5.
"""

from __future__ import annotations

import hashlib

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from LongitudinalALLib.cohort.anatomy import load_anatomy
from LongitudinalALLib.cohort.deform import rotation_zyx, smooth_random_field
from LongitudinalALLib.cohort.grids import Grid, GridPair, scan_pair

FAMILY_VERSION = "heldout-v1"
ANATOMY = "colin27"
#: grid type -> (baseline in-plane/slice spacing, follow-up spacing, max follow-up tilt in degrees)
GRID_TYPES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], float]] = {
    "iso1": ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), 8.0),
    "axial3": ((1.0, 1.0, 3.0), (1.0, 1.0, 3.0), 12.0),
}
SEED = 13_000


HeldoutPair = GridPair


def sample_params(index: int, grid_type: str) -> dict:
    """Every random choice of pair ``index`` (JSON); lesion-free on odd indices."""
    rng = np.random.default_rng([SEED, index, list(GRID_TYPES).index(grid_type)])

    def visit() -> dict:
        return {"wm": 1.0, "gm": float(rng.uniform(1.02, 1.6)), "csf": float(rng.uniform(0.04, 0.5)),
                "gamma": float(rng.uniform(0.6, 1.7)), "hetero": float(rng.uniform(0.0, 0.06)),
                "hetero_seed": int(rng.integers(2**31 - 1)), "scale": float(rng.uniform(250, 900))}

    lesion_free = index % 2 == 1
    n_new = 0 if lesion_free else int(rng.integers(1, 5))
    lesions = [{"new": i < n_new, "radius_mm": float(np.exp(rng.uniform(np.log(1.6), np.log(7.0)))),
                "elongation": float(rng.uniform(1.0, 2.6)), "rotation_deg_zyx": [float(v) for v in rng.uniform(-90, 90, 3)],
                "roughness": float(rng.uniform(0.2, 0.5)), "brightness": float(rng.uniform(0.12, 0.7)),
                "pick": float(rng.random()), "seed": int(rng.integers(2**31 - 1))}
               for i in range(n_new + int(rng.integers(0, 5)))]
    max_tilt = GRID_TYPES[grid_type][2]
    return {
        "family": FAMILY_VERSION, "pair_id": f"{grid_type}_{index:03d}", "grid_type": grid_type,
        "visits": [visit(), visit()], "lesions": lesions,
        "pose": [{"rotation_deg_xyz": [float(v) for v in rng.uniform(-r, r, 3)],
                  "translation_mm_xyz": [float(v) for v in rng.uniform(-t, t, 3)]} for r, t in ((2, 3), (6, 8))],
        "tilt_deg": [float(rng.uniform(-max_tilt, max_tilt)), float(rng.uniform(-max_tilt, max_tilt) / 3)],
        "bias": [{"seed": int(rng.integers(2**31 - 1)), "grid": 3, "amplitude": float(rng.uniform(0.05, 0.25))}
                 for _ in range(2)],
        "noise_rel": [float(rng.uniform(0.02, 0.07)) for _ in range(2)],
        "noise_seed": [int(rng.integers(2**31 - 1)) for _ in range(2)],
    }


def _lesion_fraction(spec: dict, centre: np.ndarray, shape: tuple[int, ...], sp: np.ndarray) -> tuple:
    """Soft map of one lesion in its box: a rough smooth field thresholded inside an elongated envelope."""
    r = spec["radius_mm"]
    half = np.ceil((r * spec["elongation"] * 1.6 + 2) / sp).astype(int)
    lo = np.maximum(centre - half, 0)
    hi = np.minimum(centre + half + 1, shape)
    grids = np.meshgrid(*[(np.arange(a, b) - c) * s for a, b, c, s in zip(lo, hi, centre, sp)], indexing="ij")
    pts = np.stack([g.ravel() for g in grids])
    local = rotation_zyx(spec["rotation_deg_zyx"]).T @ pts
    local[0] /= spec["elongation"]
    dist = np.sqrt((local ** 2).sum(0)).reshape(grids[0].shape) / r
    rng = np.random.default_rng(spec["seed"])
    rough = ndimage.gaussian_filter(rng.standard_normal(dist.shape), sigma=max(1.0, 0.35 * r / float(sp.min())))
    rough /= rough.std() + 1e-9
    hard = (dist + spec["roughness"] * rough * np.minimum(dist, 1.0)) < 1.0
    soft = ndimage.gaussian_filter(hard.astype(np.float32), sigma=0.6 / sp)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi)), soft.astype(np.float32)


def lesion_maps(params: dict, wm: np.ndarray, brain: np.ndarray, sp: np.ndarray):
    """(baseline fraction, follow-up fraction, brightness) (K, J, I) float32 maps."""
    depth = ndimage.distance_transform_edt(brain, sampling=sp)
    sites = np.flatnonzero((wm >= 0.6) & (depth > 6.0))
    frac_b = np.zeros(wm.shape, np.float32)
    frac_f = np.zeros(wm.shape, np.float32)
    bright = np.zeros(wm.shape, np.float32)
    for spec in params["lesions"]:
        centre = np.array(np.unravel_index(int(sites[int(spec["pick"] * sites.size)]), wm.shape))
        box, soft = _lesion_fraction(spec, centre, wm.shape, sp)
        soft = soft * (brain[box] > 0)
        bright[box] = np.where(soft > 0.05, spec["brightness"], bright[box])
        frac_f[box] = np.maximum(frac_f[box], soft)
        if not spec["new"]:
            frac_b[box] = np.maximum(frac_b[box], soft)
    return frac_b, frac_f, bright


def _visit_image(anat, visit: dict, frac: np.ndarray, bright: np.ndarray) -> np.ndarray:
    hetero = []
    rng = np.random.default_rng(visit["hetero_seed"])
    field = smooth_random_field(rng, anat.gm.shape, 5, components=3)
    for k, name in enumerate(("csf", "gm", "wm")):
        hetero.append(visit[name] * (1.0 + visit["hetero"] * field[k]))
    tissue = anat.csf * hetero[0] + anat.gm * hetero[1] + anat.wm * hetero[2]
    lesion = max(visit["gm"], visit["wm"]) * (1.0 + bright)
    img = tissue * (1.0 - frac) + frac * lesion
    top = float(np.percentile(img[anat.brain], 99.9)) + 1e-6
    return (np.clip(img / top, 0, None) ** visit["gamma"] * visit["scale"]).astype(np.float32)


def make_pair(index: int, grid_type: str, anatomy_spacing_mm: float = 1.0) -> HeldoutPair:
    """Render held-out pair ``index`` of ``grid_type`` (deterministic)."""
    p = sample_params(index, grid_type)
    anat = load_anatomy(ANATOMY, anatomy_spacing_mm)
    sp = np.array(anat.spacing[::-1], float)
    frac_b, frac_f, bright = lesion_maps(p, anat.wm, anat.brain, sp)
    b_sp, f_sp, _ = GRID_TYPES[grid_type]
    clean = tuple(_visit_image(anat, p["visits"][v], frac, bright) for v, frac in enumerate((frac_b, frac_f)))
    wm_level = [q["scale"] * (1.0 / max(q["gm"], 1.0)) ** q["gamma"] for q in p["visits"]]
    baseline, followup, truth = scan_pair(
        anat, clean, np.clip(frac_f - frac_b, 0, 1).astype(np.float32),
        (Grid(b_sp), Grid(f_sp, tuple(p["tilt_deg"]))), tuple(p["pose"]), tuple(p["bias"]),
        (p["noise_rel"][0] * wm_level[0], p["noise_rel"][1] * wm_level[1]), tuple(p["noise_seed"]))
    return HeldoutPair(p["pair_id"], grid_type, baseline, followup, truth, p)


def checksum(pair: HeldoutPair) -> str:
    """sha256 over the voxels and grids of a pair (pins the family against silent edits)."""
    h = hashlib.sha256()
    for img in (pair.baseline, pair.followup, pair.truth):
        h.update(sitk.GetArrayViewFromImage(img).tobytes())
        h.update(np.round(np.array(img.GetOrigin() + img.GetSpacing() + img.GetDirection()), 4).tobytes())
    return h.hexdigest()
