"""Family ``real1`` (issue 24): the draws follow the numbers measured on real pairs, and shrinking
lesions exist at baseline, shrink or fade at follow-up and are never labelled new."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from LongitudinalALLib.cohort import randomise, real_stats
from LongitudinalALLib.cohort.anatomy import load_anatomy
from LongitudinalALLib.cohort.generator import make_subject
from LongitudinalALLib.cohort.lesions import lesion_maps, new_lesion_mask, sample_lesions


@pytest.fixture(scope="module")
def subject():
    return make_subject(load_anatomy("mni", 2.0), 5, 0)


def test_shrinking_lesions_fade_and_are_not_new(subject):
    rng = np.random.default_rng(3)
    specs = sample_lesions(rng, subject, 0, 0, 0, n_shrinking=4, draws=real_stats.REAL_DRAWS)
    assert len(specs) >= 3 and all(s["kind"] == "shrinking" and s["growth"] < 1 for s in specs)
    frac_b, con_b, frac_f, con_f = lesion_maps(specs, subject)
    assert frac_b.sum() > 0
    assert frac_f.sum() < 0.9 * frac_b.sum()  # smaller at follow-up
    seen = frac_f > 0.5
    assert np.all(con_f[seen] <= con_b[seen] + 1e-6)  # and fainter where it is left
    assert not new_lesion_mask(frac_b, frac_f).any()


def test_new_lesions_beside_shrinking_ones_are_still_new(subject):
    rng = np.random.default_rng(4)
    specs = sample_lesions(rng, subject, 2, 3, 1, n_shrinking=3, draws=real_stats.REAL_DRAWS)
    kinds = [s["kind"] for s in specs]
    assert {"new", "enlarging", "shrinking", "existing"} <= set(kinds)
    frac_b, _, frac_f, _ = lesion_maps(specs, subject)
    new = new_lesion_mask(frac_b, frac_f)
    assert new.any()
    shrink_box = [s for s in specs if s["kind"] == "shrinking"]
    for s in shrink_box:  # no new voxel at a shrinking lesion's centre
        assert not new[tuple(s["centre_voxel_kji"])]


def test_real1_draws_follow_the_measured_numbers(subject):
    params = [randomise.sample_params(np.random.default_rng(i), subject, f"p{i}", "real1") for i in range(30)]
    les = [les for p in params for les in p["lesions"]]
    d = np.array([x["diameter_mm"] for x in les if x["kind"] == "new"])
    lo, mid, hi = real_stats.DIAMETER_MM_P10_P50_P90
    assert lo < np.median(d) < hi and 0.7 * mid < np.median(d) < 1.3 * mid
    kinds = [x["kind"] for x in les]
    share = kinds.count("shrinking") / (kinds.count("shrinking") + kinds.count("new") + kinds.count("enlarging"))
    assert 0.3 < share < 0.7  # lesion-free pairs keep their shrinking lesions
    free = [p for p in params if not any(x["kind"] in ("new", "enlarging") for x in p["lesions"])]
    assert free and any(any(x["kind"] == "shrinking" for x in p["lesions"]) for p in free)
    thick = np.array([g["spacing"][2] for p in params for g in p["grids"]])
    assert np.mean((thick >= 2.8) & (thick <= 4.0)) > 0.4  # clinical 2D FLAIR slices dominate
    near = [abs(p["visits"][1]["gm"] / p["visits"][0]["gm"] - 1) < 0.1 for p in params]
    assert np.mean(near) > 0.5  # the protocol change is small most of the time, as measured


def test_lognormal_matches_its_quantiles():
    rng = np.random.default_rng(0)
    v = [real_stats.lognormal_from_quantiles(rng, 2.85, 4.45, 8.09) for _ in range(4000)]
    p10, p50, p90 = np.percentile(v, [10, 50, 90])
    assert abs(p50 - 4.45) < 0.25 and 2.4 < p10 < 3.2 and 7.0 < p90 < 9.2


def test_v1_family_draws_are_unchanged(subject):
    """The bundled weights' old family (seed 1313) must stay reproducible: pinned on main before issue 24."""
    p = randomise.sample_params(np.random.default_rng(7), subject, "p7")
    p.pop("family")
    digest = hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest()
    assert digest == V1_DIGEST


V1_DIGEST = "24e5c3776028b7943480ef45a62b4b81860ddb44fe942afed1be938f280a74ea"
