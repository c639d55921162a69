"""What a query's model pass shows of one case: probability, uncertainty and lesion mask on its baseline grid.

The loop's :class:`.loop.RoundResult` keeps the pool's model outputs (``keep_outputs``);
this turns the rows of one case into volumes a viewer shows, plus the triage score
of the pair. The Slicer jobs only write what it returns (``jobs.job_suggest``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from LongitudinalALLib.active.loop import RoundResult
from LongitudinalALLib.active.store import SessionStore


@dataclass(frozen=True)
class CaseMaps:
    """``volumes``: name -> (K, J, I) on the case's baseline grid: probability and uncertainty
    (float32, the uncertainty is the deterministic binary entropy inside the foreground) and
    lesion_mask (uint8); ``pair_probability``: the triage score of the pair (:mod:`.triage`)."""

    case_id: str
    volumes: dict[str, np.ndarray]
    pair_probability: float


def case_rows(store: SessionStore, case_id: str) -> slice:
    """The rows of ``case_id`` in ``store.pool_arrays()`` (cases in ``case_ids`` order)."""
    ids = store.case_ids
    store.n_slices(case_id)  # the clear error for a case the session does not hold
    start = sum(store.n_slices(c) for c in ids[: ids.index(case_id)])
    return slice(start, start + store.n_slices(case_id))


def case_maps(result: RoundResult, store: SessionStore, case_id: str | None = None) -> CaseMaps:
    """Map ``result.outputs.probs`` (M, H, W) of one case (default: the first, the scene's pair)."""
    import torch

    from LongitudinalALLib.active import triage
    from LongitudinalALLib.model import binary_entropy
    from LongitudinalALLib.model.lesion_mask import lesion_mask_from_slices

    if result.outputs is None:
        raise ValueError("The query kept no model outputs: call suggest with keep_outputs=True.")
    case_id = case_id or store.case_ids[0]
    case = store.case(case_id)
    probs = result.outputs.probs[case_rows(store, case_id)]  # (N, H, W)
    uncertainty = binary_entropy(torch.from_numpy(probs)).numpy() * case.foreground
    volumes = {name: case.geometry.to_volume(slices.astype(np.float32), order=1).astype(np.float32)
               for name, slices in (("probability", probs), ("uncertainty", uncertainty))}
    volumes["lesion_mask"] = lesion_mask_from_slices(probs, case.foreground, case.geometry).astype(np.uint8)
    return CaseMaps(case_id, volumes, triage.pair_probability(probs, case.foreground))
