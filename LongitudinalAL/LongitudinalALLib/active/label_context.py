"""Where the labels already given say a lesion continues: the contoured slices' masks on their neighbours.

Why: a new lesion is a 3D object. When the user contours it on slice k, the
slices k-1 and k+1 very likely hold its continuation; the current model often
misses those small lesion ends (on the simulated pools of issue 15, most lesion
slices a 5 % query missed held 1-7 pixels next to a contoured slice), yet
examples of small lesions are what the model lacks. The map is known evidence,
not a prediction; a strategy may combine it with the model's probability.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def neighbour_lesion_map(labels: dict[tuple[str, int], np.ndarray], keys: list[tuple[str, int]],
                         labelled: np.ndarray, shape: tuple[int, int], *, reach: int = 1,
                         grow_px: int = 2) -> np.ndarray:
    """(N, H, W) float32 in {0, 1}: on each unlabelled pool row, the lesion footprint of labelled neighbours.

    ``labels``: (case_id, slice_index) -> (H, W) mask of the labelled slices
    (lesion-free ones may be left out); ``keys``: (case_id, slice_index) per
    pool row; ``labelled`` (N,) bool; ``shape``: (H, W). A row within ``reach`` slices of a
    contoured slice of the same case gets that slice's mask, dilated by
    ``grow_px`` pixels (a lesion's cross-section shifts and grows between
    neighbouring slices). Labelled rows stay zero.
    """
    if len(keys) != len(labelled):
        raise ValueError(f"{len(keys)} row keys for {len(labelled)} labelled flags")
    contoured = {k: m for k, m in labels.items() if np.any(m)}
    out = np.zeros((len(keys),) + tuple(shape), dtype=np.float32)
    if not contoured:
        return out
    grown = {k: ndimage.binary_dilation(m > 0, iterations=grow_px) if grow_px else m > 0
             for k, m in contoured.items()}
    for row, (case_id, s) in enumerate(keys):
        if labelled[row]:
            continue
        for d in range(1, reach + 1):
            for nb in ((case_id, s - d), (case_id, s + d)):
                if nb in grown:
                    out[row] = np.maximum(out[row], grown[nb])
    return out
