"""What real lesion change looks like: derived numbers, measured once, that set the ``real1`` family.

Source: open_ms_data (Lesjak, Pernus, Likar, Spiclin, Neuroinformatics 14(4), 2016; CC-BY), measured
by ``Testing/benchmarks/bench_real_appearance.py`` (``results/real_appearance.json``). Only summary
numbers live here; no scan, mask or crop of the dataset is in the project, and nothing reads it at run time.

* shape bank (677 change components of the 16 masks in ``change_masks/``, 0.57-0.9 mm x 3.0-3.3 mm):
  equivalent diameter p10 / p50 / p90 = 2.85 / 4.45 / 8.09 mm; in-plane elongation (sqrt of the
  principal variances' ratio) 1.10 / 1.56 / 2.59; 60 % lie in one slice; change components per patient
  11 / 38 / 75;
* the two shared pairs (patient03, patient12): 26 + 28 new-or-enlarging and 20 + 18 shrinking
  components, so shrinking change is about 40 % of all change; at follow-up a new lesion is 9-16 %
  (median; p90 24-26 %) brighter than the tissue ring around it after thick-slice partial volume;
  a shrinking lesion is 9-14 % brighter at baseline and 1-6 % at follow-up (it mostly fades);
  normal tissue between the two protocols, each visit over its brain median: quantiles 5-99 %
  agree within 0.94-1.04 (the protocol change is small next to the training family's GM 0.85-1.6);
* after the product's ``prepare`` the mean follow-up - baseline difference in a new component is
  p50 0.07-0.11 (p90 0.24-0.26) normalised units against a mean |difference| of 0.06-0.08 elsewhere:
  real new lesions are faint, small and thick-sliced.
"""

from __future__ import annotations

import numpy as np

from LongitudinalALLib.cohort.lesions import LesionDraws, _shape_params

CITATION = ("Lesjak et al., Neuroinformatics 14(4), 2016 (open_ms_data, CC-BY); "
            "Testing/benchmarks/bench_real_appearance.py")
DIAMETER_MM_P10_P50_P90 = (2.85, 4.45, 8.09)
ELONGATION_P10_P50_P90 = (1.10, 1.56, 2.59)
CHANGES_PER_PATIENT_P10_P50_P90 = (11, 38, 75)
SHRINKING_SHARE = 0.4
#: real 2D FLAIR grids seen in the data set: 0.57-0.9 mm in plane, 3.0-3.3 mm slices (3-4 mm drawn)
CLINICAL_INPLANE_MM = (0.55, 0.95)
CLINICAL_SLICE_MM = (2.8, 4.0)
_Z90 = 1.2816


def lognormal_from_quantiles(rng: np.random.Generator, p10: float, p50: float, p90: float) -> float:
    """One draw of a log-normal with this median and the p10-p90 spread (geometric mean of both sides)."""
    sigma = (np.log(p90) - np.log(p10)) / (2 * _Z90)
    return float(np.exp(rng.normal(np.log(p50), sigma)))


def real_size(rng: np.random.Generator, kind: str) -> tuple[float, float]:
    """(diameter mm, growth): the shape bank's diameters (2.5-14 mm); enlarging x1.3-1.8; shrinking x0.3-0.9."""
    d = float(np.clip(lognormal_from_quantiles(rng, *DIAMETER_MM_P10_P50_P90), 2.5, 14.0))
    if kind == "enlarging":
        return max(d, 3.0), float(rng.uniform(1.3, 1.8))
    if kind == "shrinking":
        return max(d, 3.0), float(rng.uniform(0.3, 0.9))
    return d, 1.0


def real_shape(rng: np.random.Generator) -> dict:
    """The cohort's shape model with the measured elongation (axes 1 : 1/e : between)."""
    p = _shape_params(rng)
    e = float(np.clip(lognormal_from_quantiles(rng, *ELONGATION_P10_P50_P90), 1.0, 3.5))
    p["axes_ratio"] = [1.0, 1.0 / e, float(rng.uniform(1.0 / e, 1.0))]
    return p


def real_contrast(rng: np.random.Generator) -> float:
    """Brightness over the brighter of GM/WM before partial volume: half faint (6-20 %), half 20-60 %."""
    return float(rng.uniform(0.06, 0.2) if rng.random() < 0.5 else rng.uniform(0.2, 0.6))


def real_fade(rng: np.random.Generator) -> float:
    """Follow-up brightness factor of a shrinking lesion (it mostly fades: 0-0.7)."""
    return float(rng.uniform(0.0, 0.7))


REAL_DRAWS = LesionDraws(size=real_size, shape=real_shape, contrast=real_contrast, fade=real_fade)


def lesion_counts(rng: np.random.Generator, scale: float = 0.5) -> tuple[int, int, int]:
    """(new, enlarging, shrinking) for a lesion pair: the per-patient change count times ``scale``
    (fewer per pair keeps rendering fast; the slices still see several), 40 % of it shrinking."""
    n = max(2, int(round(scale * lognormal_from_quantiles(rng, *CHANGES_PER_PATIENT_P10_P50_P90))))
    n = min(n, 40)
    n_shrink = int(rng.binomial(n, SHRINKING_SHARE))
    n_grow = n - n_shrink
    n_enl = int(rng.binomial(n_grow, 0.35))
    return max(n_grow - n_enl, 1), n_enl, n_shrink
