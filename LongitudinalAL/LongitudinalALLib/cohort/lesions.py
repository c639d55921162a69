"""MS-like white-matter lesions: placement, irregular shapes and soft (partial-volume) edges.

A lesion is an ellipsoid (random axes and orientation) united with one or two
overlapping satellite blobs, its boundary perturbed by smooth noise, rendered
as a soft fraction map whose 0.5 contour is the lesion border and which ramps
over one voxel (partial volume). It is then confined to white matter. An
*enlarging* lesion is an existing lesion rendered with the same noise at a larger
radius: the grown part is new at follow-up. A *shrinking* lesion (``growth`` < 1,
follow-up brightness times ``fade``) is present at baseline and smaller or fainter at
follow-up: real pairs show as many of these as new ones, and they are not new.
Specs are plain JSON dicts so the manifest can store them and :func:`render_lesion`
can redraw them exactly. :class:`LesionDraws` holds the size, shape and contrast
draws, so a family can swap them (``real_stats.REAL_DRAWS``) and keep the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage

from LongitudinalALLib.cohort.deform import rotation_zyx
from LongitudinalALLib.cohort.subject import Subject

CLASSES = ("periventricular", "juxtacortical", "deep")
CLASS_P = (0.45, 0.25, 0.30)
SIZE_CLASSES_MM = ((3.0, 5.0), (5.0, 10.0), (10.0, 15.0))


def size_class(diameter_mm: float) -> str:
    """'3-5' / '5-10' / '10-15' (mm) for a lesion diameter (clamped into 3-15)."""
    for lo, hi in SIZE_CLASSES_MM:
        if diameter_mm < hi:
            return f"{lo:g}-{hi:g}"
    return "10-15"


def sample_contrast(rng: np.random.Generator) -> float:
    """Lesion brightness above GM (fraction); a quarter are faint (6-15 %)."""
    return float(rng.uniform(0.06, 0.15) if rng.random() < 0.25 else rng.uniform(0.2, 0.8))


def _shape_params(rng: np.random.Generator) -> dict:
    n_blobs = int(rng.integers(0, 3))
    return {
        "axes_ratio": [1.0] + [float(v) for v in rng.uniform(0.55, 1.0, 2)],
        "rotation_deg_zyx": [float(v) for v in rng.uniform(-90, 90, 3)],
        "blobs": [[float(v) for v in rng.uniform(-0.6, 0.6, 3)] + [float(rng.uniform(0.4, 0.7))]
                  for _ in range(n_blobs)],
        "irregularity": float(rng.uniform(0.15, 0.35)),
        "noise_seed": int(rng.integers(0, 2**31 - 1)),
    }


def render_lesion(spec: dict, shape: tuple[int, int, int], spacing_zyx: np.ndarray
                  ) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
    """Draw a lesion in its bounding box.

    Returns (box slices into the (K, J, I) volume, initial soft map, follow-up soft map), both
    float32 in [0, 1] on the box; they are equal unless ``spec['growth'] != 1`` (grown: the
    union with the larger lesion; shrunk, ``growth`` < 1: the same shape at the smaller radius).
    """
    sp = np.asarray(spacing_zyx, np.float64)
    d0 = spec["diameter_mm"]
    growth = spec.get("growth", 1.0)
    r_max = d0 * growth / 2.0
    half = np.ceil(max(r_max, d0 / 2.0) * 1.7 / sp).astype(int) + 2
    centre = np.asarray(spec["centre_voxel_kji"], int)
    lo, hi = centre - half, centre + half + 1
    full = tuple(int(h) for h in (hi - lo))
    rng = np.random.default_rng(spec["noise_seed"])
    noise = ndimage.gaussian_filter(rng.standard_normal(full), sigma=np.maximum(d0 / 4.0 / sp, 0.7))
    noise = np.clip(noise / (noise.std() + 1e-12), -2.0, 2.0)
    clo, chi = np.maximum(lo, 0), np.minimum(hi, shape)
    inner = tuple(slice(int(a - l), int(b - l)) for a, b, l in zip(clo, chi, lo))
    noise = noise[inner]
    offs = [(np.arange(a, b) - c) * s for a, b, c, s in zip(clo, chi, centre, sp)]
    grid = np.stack(np.meshgrid(*offs, indexing="ij"))            # (3, k, j, i) mm
    rot = rotation_zyx(spec["rotation_deg_zyx"])
    u = np.tensordot(rot.T, grid, axes=1)                          # lesion frame
    axes = np.asarray(spec["axes_ratio"])[:, None, None, None]
    edge = float(sp.max())

    def soft(radius: float) -> np.ndarray:
        v = u / radius
        r = np.sqrt(((v / axes) ** 2).sum(0))
        for *o, rho in spec["blobs"]:
            r = np.minimum(r, np.sqrt((((v - np.asarray(o)[:, None, None, None]) / (axes * rho)) ** 2).sum(0)))
        f = r - spec["irregularity"] * noise
        return np.clip(0.5 + (1.0 - f) * radius / edge, 0.0, 1.0).astype(np.float32)

    old = soft(d0 / 2.0)
    grown = np.maximum(old, soft(r_max)) if growth > 1.0 else soft(r_max) if growth < 1.0 else old
    box = tuple(slice(int(a), int(b)) for a, b in zip(clo, chi))
    return box, old, grown


def _size_v1(rng: np.random.Generator, kind: str) -> tuple[float, float]:
    """(diameter mm, growth) of the original cohort: new 3-15 mm log-uniform, enlarging 4-9 mm x 1.35-1.8."""
    if kind == "new":
        return float(np.exp(rng.uniform(np.log(3.0), np.log(15.0)))), 1.0
    if kind == "enlarging":
        return float(rng.uniform(4.0, 9.0)), float(rng.uniform(1.35, 1.8))
    return float(np.exp(rng.uniform(np.log(3.0), np.log(12.0)))), 1.0


@dataclass(frozen=True)
class LesionDraws:
    """The random draws of one lesion: (diameter, growth) by kind, shape, contrast, follow-up fade."""

    size: Callable[[np.random.Generator, str], tuple[float, float]] = _size_v1
    shape: Callable[[np.random.Generator], dict] = _shape_params
    contrast: Callable[[np.random.Generator], float] = sample_contrast
    fade: Callable[[np.random.Generator], float] = lambda rng: 1.0


V1_DRAWS = LesionDraws()


def sample_lesions(rng: np.random.Generator, subject: Subject, n_existing: int, n_new: int,
                   n_enlarging: int, max_tries: int = 40, n_shrinking: int = 0,
                   draws: LesionDraws = V1_DRAWS) -> list[dict]:
    """Place lesions in the subject's WM regions, at least two voxels apart from each other.

    A lesion that finds no free place after ``max_tries`` centres is dropped (rare);
    the returned list says what was actually placed. ``n_shrinking`` lesions exist at
    baseline and shrink or fade at follow-up (``draws.size`` gives growth < 1 for them).
    """
    shape = subject.gm.shape
    sp = subject.spacing_zyx
    occupied = np.zeros(shape, bool)
    wm = subject.wm_mask
    specs: list[dict] = []
    plan = (["enlarging"] * n_enlarging + ["existing"] * max(n_existing - n_enlarging, 0) + ["new"] * n_new
            + ["shrinking"] * n_shrinking)
    for kind in plan:
        klass = str(rng.choice(CLASSES, p=CLASS_P))
        region = subject.regions.get(klass)
        if region is None or region.size == 0:
            klass, region = "deep", np.flatnonzero(wm)
        diameter, growth = draws.size(rng, kind)
        shape_p = draws.shape(rng)
        contrast = draws.contrast(rng)
        extra = {"fade": draws.fade(rng)} if kind == "shrinking" else {}
        for _ in range(max_tries):
            centre = np.unravel_index(int(region[rng.integers(region.size)]), shape)
            spec = {"kind": kind, "class": klass, "centre_voxel_kji": [int(c) for c in centre],
                    "diameter_mm": diameter, "growth": growth, "contrast": contrast, **extra, **shape_p}
            box, old, grown = render_lesion(spec, shape, sp)
            foot = (np.maximum(old, grown) > 0) & wm[box]
            if not foot[tuple(np.asarray(centre) - [b.start for b in box])]:
                continue
            if (occupied[box] & foot).any():
                continue
            occupied[box] |= ndimage.binary_dilation(foot, iterations=2)
            spec["id"] = f"L{len(specs):02d}"
            specs.append(spec)
            break
    return specs


def _paint(frac: np.ndarray, con: np.ndarray, box, soft: np.ndarray, contrast: float) -> None:
    """Where ``soft`` is larger than the lesion fraction already there, it wins (fraction and contrast)."""
    upd = soft > frac[box]
    frac[box] = np.where(upd, soft, frac[box])
    con[box] = np.where(upd, np.float32(contrast), con[box])


def lesion_maps(specs: list[dict], subject: Subject) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Soft lesion fraction and contrast maps at baseline and follow-up (all (K, J, I) float32).

    Lesions are confined to WM (the subject's WM mask); where lesions overlap the
    larger fraction wins. Follow-up keeps every baseline lesion except the shrinking ones,
    which it draws smaller and with ``fade`` times their contrast, and adds the grown parts
    of enlarging lesions and the new lesions.
    """
    shape = subject.gm.shape
    wm = subject.wm_mask
    frac_b = np.zeros(shape, np.float32)
    con_b = np.zeros(shape, np.float32)
    Paint = tuple[tuple[slice, ...], np.ndarray, float]
    later: list[Paint] = []
    shrunk: list[Paint] = []
    kept: list[Paint] = []  # baseline lesions the follow-up keeps at full size (rendered once)
    for spec in specs:
        box, old, grown = render_lesion(spec, shape, subject.spacing_zyx)
        gate = wm[box]
        if spec["kind"] in ("existing", "enlarging", "shrinking"):
            _paint(frac_b, con_b, box, old * gate, spec["contrast"])
        if spec["kind"] in ("existing", "enlarging"):
            kept.append((box, old * gate, spec["contrast"]))
        if spec["kind"] == "shrinking":
            shrunk.append((box, grown * gate, spec["contrast"] * spec.get("fade", 1.0)))
        if spec["kind"] in ("new", "enlarging"):
            later.append((box, grown * gate, spec["contrast"]))
    if shrunk:  # redraw the follow-up's baseline lesions without the shrinking ones at full size
        frac_f, con_f = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        for box, soft, c in kept:
            _paint(frac_f, con_f, box, soft, c)
        for box, soft, c in shrunk:
            _paint(frac_f, con_f, box, soft, c)
    else:
        frac_f, con_f = frac_b.copy(), con_b.copy()
    for box, soft, c in later:
        _paint(frac_f, con_f, box, soft, c)
    return frac_b, con_b, frac_f, con_f


def new_lesion_mask(frac_b: np.ndarray, frac_f: np.ndarray) -> np.ndarray:
    """(K, J, I) uint8: voxels that gained at least half a voxel of lesion between visits."""
    return ((frac_f - frac_b) >= 0.5).astype(np.uint8)
