"""What the false lesions on a lesion-free pair are: size (mm^3), peak probability, location.

Why: issue 13 asks whether the false lesions are specks a size rule removes or
confident blobs at a structure's edge (a registration or contrast effect),
before anything is tuned. Location comes from the prepared baseline alone (no
anatomy labels exist on a real pair), by the distance of the component's
nearest voxel, in mm on the baseline grid:

* ``brain_edge``: <= ``EDGE_MM`` from the outside of the foreground mask;
* ``ventricle_edge``: <= ``EDGE_MM`` from deep dark tissue (baseline below
  ``DARK`` x the median brain intensity and more than ``DEEP_MM`` inside the brain:
  ventricular CSF on these FLAIR-like images);
* ``cortex``: within ``RIBBON_MM`` of the brain edge (cortical ribbon and the
  white matter just below it);
* ``deep_white_matter``: the rest.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

EDGE_MM, RIBBON_MM, DEEP_MM, DARK = 3.0, 12.0, 15.0, 0.6
LOCATIONS = ("brain_edge", "ventricle_edge", "cortex", "deep_white_matter")


def distance_maps(baseline: np.ndarray, foreground: np.ndarray, spacing_xyz) -> tuple[np.ndarray, np.ndarray]:
    """(K, J, I) distances in mm to the outside of the brain and to the ventricles."""
    sampling = tuple(float(v) for v in np.asarray(spacing_xyz)[::-1])
    fg = foreground > 0
    edge = ndimage.distance_transform_edt(fg, sampling=sampling)
    dark = fg & (baseline < DARK * np.median(baseline[fg])) & (edge > DEEP_MM)
    vent = ndimage.distance_transform_edt(~dark, sampling=sampling) if dark.any() else np.full(fg.shape, np.inf)
    return edge, vent


def location(edge_mm: float, vent_mm: float) -> str:
    if edge_mm <= EDGE_MM:
        return "brain_edge"
    if vent_mm <= EDGE_MM:
        return "ventricle_edge"
    return "cortex" if edge_mm <= RIBBON_MM else "deep_white_matter"


def describe(mask: np.ndarray, probability: np.ndarray, maps: tuple[np.ndarray, np.ndarray], spacing_xyz) -> list[dict]:
    """One row per 26-connected component of ``mask`` (K, J, I): volume, peak probability, location."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return []
    idx = np.arange(1, n + 1)
    size = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    peak = ndimage.maximum(probability, lab, idx)
    edge, vent = (ndimage.minimum(m, lab, idx) for m in maps)
    voxel = float(np.prod(spacing_xyz))
    return [{"volume_mm3": round(float(s) * voxel, 1), "peak": round(float(p), 3), "edge_mm": round(float(e), 1),
             "ventricle_mm": round(float(v), 1) if np.isfinite(v) else None, "location": location(e, v)}
            for s, p, e, v in zip(size, peak, edge, vent)]


def table(rows: list[dict]) -> dict:
    """Count, median volume and median peak per location over all described components."""
    out = {}
    for loc in LOCATIONS:
        sel = [r for r in rows if r["location"] == loc]
        out[loc] = {"n": len(sel),
                    "volume_mm3_median": float(np.median([r["volume_mm3"] for r in sel])) if sel else None,
                    "peak_median": float(np.median([r["peak"] for r in sel])) if sel else None}
    vols = np.array([r["volume_mm3"] for r in rows], float)
    out["all"] = {"n": len(rows), "under_15_mm3": int((vols < 15).sum()), "under_100_mm3": int((vols < 100).sum()),
                  "peak_under_0.9": sum(r["peak"] < 0.9 for r in rows)}
    return out
