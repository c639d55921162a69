"""Cohort triage: rank the pairs of a multi-case session by how likely the follow-up has a new lesion.

Why: most follow-ups of a cohort have no new lesion. Ranking the pairs lets a
user confirm the unlikely ones as "no new lesion" quickly and spend the
contouring time on the others. The score of a pair is the mean of its ``top``
highest new-lesion probabilities over tissue, across all its slices: a real
new lesion gives a cluster of confident pixels (a 3 mm lesion at 1 mm spans
about 20 pixels), isolated noisy pixels do not lift the mean of the top 20. It
lies in [0, 1] and reads as the model's (uncalibrated) probability that the
follow-up has any new lesion; AUROC measures how well it ranks.

What a row says the model *found* (``lesions``, ``slices_flagged``) comes from
the product's lesion-mask step (``model/lesion_mask.py``: components with a
confident peak and a minimum volume in mm^3), the same mask the scene shows,
so a lone noisy pixel flags no slice. The score itself is not changed by it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.model.lesion_mask import (
    DEFAULT,
    LesionMaskConfig,
    components,
    keep,
    probability_volume,
    select,
)


@dataclass(frozen=True)
class TriageRow:
    case_id: str
    probability: float       # mean of the top pixel probabilities over tissue, in [0, 1]
    rank: int                # 1 = most likely to hold a new lesion
    slices_flagged: int      # model slices that cut a new lesion of the lesion-mask step
    slices: int
    lesions: int = 0         # new lesions (components) the lesion-mask step keeps

    def to_dict(self) -> dict:
        return asdict(self)


def pair_probability(probs: np.ndarray, foreground: np.ndarray, top: int = 20) -> float:
    """Mean of the ``top`` largest tissue probabilities of one pair: probs, foreground (N, H, W)."""
    p = torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float32))[torch.from_numpy(np.asarray(foreground, bool))]
    if p.numel() == 0:
        return 0.0
    return float(p.topk(min(int(top), p.numel())).values.mean())


def triage_cases(cases, predictor, *, top: int = 20, threshold: float = 0.5,
                 mask_config: LesionMaskConfig = DEFAULT) -> list[TriageRow]:
    """Score every case (``CaseSlices``: images (N,3,H,W), foreground (N,H,W), geometry) and rank them.

    ``threshold`` is the voxel probability of the lesion mask (its peak rule is never below it).
    """
    if top < 1:
        raise InputError(f"--top {top} uses no pixels.", "Use e.g. --top 20.")
    config = mask_config.at_threshold(threshold)
    scored = []
    for case in cases:
        probs = predictor.predict(case.images)
        found, n_lesions = found_lesions(probs, case.foreground, case.geometry, config)
        scored.append((case.case_id, pair_probability(probs, case.foreground, top), found, len(probs), n_lesions))
    scored.sort(key=lambda r: (-r[1], r[0]))
    return [TriageRow(cid, p, rank, f, n, k) for rank, (cid, p, f, n, k) in enumerate(scored, 1)]


def found_lesions(probs: np.ndarray, foreground: np.ndarray, geometry, config: LesionMaskConfig = DEFAULT):
    """(model slices that cut a kept lesion, kept lesions) of one case: probs, foreground (N, H, W).

    Kept components are distinct lesions: two of them touching would have been one component.
    """
    comps = components(probability_volume(probs, foreground, geometry), geometry.voxel_spacing, config.threshold)
    kept = keep(comps, config)
    cut = geometry.to_slices(select(comps, kept).astype(np.float32), order=0) > 0.5
    return int(cut.reshape(len(cut), -1).any(1).sum()), int(kept.sum())


def auroc(scores, positive) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); NaN without both classes."""
    s, y = np.asarray(scores, float), np.asarray(positive, bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))
