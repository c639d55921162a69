"""One baseline/follow-up pair of a subject: parameters drawn from a seeded RNG, then rendered.

:func:`sample_pair_params` draws every random choice of a pair into a JSON dict
(what the manifest stores); :func:`render_pair` turns a subject and that dict into
volumes, deterministically, so a pair can be regenerated from its manifest entry.
The noise-free images of both visits in baseline space are kept on the result
(``baseline_clean``, ``followup_clean``) so tests can check what changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from LongitudinalALLib.cohort import acquisition as acq
from LongitudinalALLib.cohort.flair import subject_texture, synthesize, visit_contrast
from LongitudinalALLib.cohort.lesions import lesion_maps, new_lesion_mask, sample_lesions
from LongitudinalALLib.cohort.subject import Subject


@dataclass(frozen=True)
class SimulationOptions:
    """Switches and rates of the simulation (recorded in the manifest).

    Turning ``misalign``/``bias``/``noise``/``drift``/``atrophy`` off makes the follow-up
    equal the baseline outside the new lesions (tests use this).
    """

    misalign: bool = True
    bias: bool = True
    noise: bool = True
    drift: bool = True
    atrophy: bool = True
    p_no_new: float = 0.2
    p_enlarging: float = 0.3
    atrophy_probability: float = 0.3
    min_new_lesions: int = 0
    min_existing_lesions: int = 0
    max_new_lesions: int = 6


@dataclass
class PairVolumes:
    """Rendered pair; arrays are (K, J, I) on the subject's (= baseline) grid."""

    baseline: np.ndarray          # int16, with acquisition effects
    followup: np.ndarray          # int16, with acquisition effects (misaligned grid content)
    baseline_clean: np.ndarray    # float32, noise-free, no bias
    followup_clean: np.ndarray    # float32, noise-free, no bias, no misalignment, in baseline space
    new_lesions: np.ndarray       # uint8 exact new-lesion mask in baseline space
    wm_mask: np.ndarray           # uint8 baseline white matter of the deformed subject
    brain_mask: np.ndarray        # uint8
    lesion_frac_baseline: np.ndarray
    lesion_frac_followup: np.ndarray
    registration_truth: sitk.AffineTransform  # resamples follow-up onto baseline (fixed = baseline)


def sample_pair_params(rng: np.random.Generator, subject: Subject, pair_id: str,
                       options: SimulationOptions) -> dict:
    """Draw lesions, per-visit contrast and acquisition parameters for one pair."""
    n_existing = max(int(rng.integers(1, 9)), options.min_existing_lesions)
    no_new = options.min_new_lesions == 0 and rng.random() < options.p_no_new
    if no_new:
        n_new, n_enl = 0, 0
    else:
        n_new = int(min(max(1 + rng.poisson(1.5), options.min_new_lesions), options.max_new_lesions))
        n_enl = int(rng.random() < options.p_enlarging)
    lesions = sample_lesions(rng, subject, n_existing, n_new, n_enl)
    base = subject.params["contrast"]
    levels_b = visit_contrast(base, rng, jitter=True)
    levels_f = visit_contrast(base, rng, jitter=True) if options.drift else dict(levels_b)
    gain = float(rng.uniform(0.85, 1.15))
    mis = acq.sample_misalignment(rng)
    bias_b, bias_f = acq.sample_bias(rng), acq.sample_bias(rng)
    noise = {"sigma_rel_baseline": float(rng.uniform(0.02, 0.06)), "sigma_rel_followup": float(rng.uniform(0.02, 0.06)),
             "seed_baseline": int(rng.integers(0, 2**31 - 1)), "seed_followup": int(rng.integers(0, 2**31 - 1))}
    atrophy = acq.sample_atrophy(rng, options.atrophy_probability)
    return {
        "pair_id": pair_id,
        "subject_id": subject.params["subject_id"],
        "anatomy": subject.params["anatomy"],
        "lesions": lesions,
        "levels_baseline": levels_b,
        "levels_followup": levels_f,
        "gain_followup": gain if options.drift else 1.0,
        "drift": {"enabled": options.drift},
        "misalignment": {**mis, "enabled": options.misalign},
        "bias_baseline": {**bias_b, "enabled": options.bias},
        "bias_followup": {**bias_f, "enabled": options.bias},
        "noise": {**noise, "enabled": options.noise, "model": "rician"},
        "atrophy": {**atrophy, "enabled": bool(atrophy["enabled"] and options.atrophy)},
    }


def _quantise(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 32767).astype(np.int16)


def _texture(subject: Subject) -> np.ndarray:
    if subject.texture is None:
        subject.texture = subject_texture(subject.params["texture_seed"], subject.gm.shape)
    return subject.texture


def render_pair(subject: Subject, params: dict) -> PairVolumes:
    """Render a pair from its parameters (deterministic)."""
    anat = subject.anatomy
    shape = subject.gm.shape
    sp = subject.spacing_zyx
    texture = _texture(subject)
    frac_b, con_b, frac_f, con_f = lesion_maps(params["lesions"], subject)
    gm_f, wm_f, csf_f = subject.gm, subject.wm, subject.csf
    if params["atrophy"]["enabled"] and subject.ventricles.any():
        centre = np.array(ndimage.center_of_mass(subject.ventricles)) * sp
        coords = acq.atrophy_coordinates(params["atrophy"], shape, sp, centre)
        gm_f, wm_f, csf_f = acq.apply_atrophy([subject.gm, subject.wm, subject.csf], coords)
        del coords
    clean_b = synthesize(subject.gm, subject.wm, subject.csf, frac_b, con_b, params["levels_baseline"], texture)
    clean_f = synthesize(gm_f, wm_f, csf_f, frac_f, con_f, params["levels_followup"], texture)

    centre_idx = np.array(ndimage.center_of_mass(subject.brain))[::-1]
    centre_lps = anat.to_image(np.zeros((1, 1, 1), np.uint8)).TransformContinuousIndexToPhysicalPoint(
        [float(c) for c in centre_idx])
    transform = acq.misalignment_transform(params["misalignment"], centre_lps)
    fu = clean_f * np.float32(params["gain_followup"])
    if params["misalignment"]["enabled"]:
        fu = sitk.GetArrayFromImage(acq.apply_misalignment(anat.to_image(fu), transform))
    else:
        transform = sitk.AffineTransform(3)
        transform.SetCenter(centre_lps)
    bl = clean_b
    if params["bias_baseline"]["enabled"]:
        bl = bl * acq.bias_field(params["bias_baseline"], shape)
        fu = fu * acq.bias_field(params["bias_followup"], shape)
    nz = params["noise"]
    if nz["enabled"]:
        wm_level = params["levels_baseline"]["wm"] * params["levels_baseline"]["scale"]
        bl = acq.rician_noise(bl, nz["sigma_rel_baseline"] * wm_level, nz["seed_baseline"])
        fu = acq.rician_noise(fu, nz["sigma_rel_followup"] * wm_level * params["gain_followup"], nz["seed_followup"])
    return PairVolumes(
        baseline=_quantise(bl), followup=_quantise(fu), baseline_clean=clean_b, followup_clean=clean_f,
        new_lesions=new_lesion_mask(frac_b, frac_f), wm_mask=subject.wm_mask.astype(np.uint8),
        brain_mask=subject.brain.astype(np.uint8), lesion_frac_baseline=frac_b, lesion_frac_followup=frac_f,
        registration_truth=transform.GetInverse())
