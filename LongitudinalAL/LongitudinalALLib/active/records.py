"""Typed records of a session folder: what the store hands out instead of its JSON.

Torch-free. ``binary_mask`` and ``split_of`` are the rules a label is stored by.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from LongitudinalALLib.active.pool_store import MAX_SLICE_SIDE
from LongitudinalALLib.active.suggestions import Suggestion
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.core.npz_header import npz_shapes


@dataclass(frozen=True)
class SessionSettings:
    strategy: str
    seed: int
    init_weights: str               # "bundled", "scratch" or a weights path
    model_config: dict | None       # ModelConfig fields; None: the default network
    val_fraction: float


@dataclass(frozen=True)
class LabelRecord:
    case_id: str
    slice_index: int                # baseline slice (the label key)
    file: str                       # relative to the session folder
    lesion_pixels: int              # 0 = the user confirmed "no new lesion"
    round: int                      # rounds trained when it was given
    split: str                      # "train" or "val" (hashed, stable)

    @property
    def key(self) -> str:
        return label_key(self.case_id, self.slice_index)


@dataclass(frozen=True)
class RoundRecord:
    round: int
    checkpoint: str                 # relative path of the round's weights
    time: float = 0.0
    budget: dict | None = None      # budget()["total"] when it was trained
    n_train: int = 0
    n_val: int = 0
    warm_start: str = ""
    train: dict | None = None       # TrainResult.summary()
    history: list | None = None
    config: dict | None = None      # TrainConfig.to_dict()
    trained_on: dict | None = None  # label key -> sha256 of the label file it trained on (background rounds)

    @classmethod
    def from_dict(cls, d: dict) -> "RoundRecord":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class SuggestionBatch:
    round: int
    strategy: str
    scores: str                     # relative path of the (N,) scores behind it
    slices: tuple[Suggestion, ...]


def label_key(case_id: str, slice_index: int) -> str:
    """How a label is keyed in the session's state: ``case:slice``."""
    return f"{case_id}:{int(slice_index)}"


def hash01(*parts: Any) -> float:
    """A stable pseudo-random number in [0, 1) from ``parts`` (the train/val split of a label)."""
    h = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def binary_mask(mask: Any, what: str) -> np.ndarray:
    """``mask`` as an array of 0/1; any other value (NaN, -1, 255, intensities) would become a wrong label."""
    arr = np.asarray(mask)
    if arr.dtype != bool and arr.size and (not np.isfinite(arr).all() or not np.isin(arr, (0, 1)).all()):
        raise InputError(f"{what} holds values other than 0 and 1 (e.g. {arr[~np.isin(arr, (0, 1))].flat[0]}).",
                         "Give a lesion mask of 0 (background) and 1 (lesion), e.g. via label_masks.")
    return arr


def read_label_file(path) -> tuple[str, int, np.ndarray]:
    """(case_id, slice_index, mask) of a label file; ValueError when it is damaged."""
    shapes = npz_shapes(path)  # declared shapes first: np.load allocates whatever a header names
    if set(shapes) != {"mask", "case_id", "slice_index"}:
        raise ValueError(f"{path.name} cannot be read (it holds {sorted(shapes)})")
    (mask_shape, _), (id_shape, id_dtype) = shapes["mask"], shapes["case_id"]
    if len(mask_shape) != 2 or max(mask_shape) > MAX_SLICE_SIDE or id_shape or id_dtype.itemsize > 1024 \
            or shapes["slice_index"][0]:
        raise ValueError(f"{path.name} cannot be read (it declares a mask of shape {mask_shape})")
    try:
        with np.load(path, allow_pickle=False) as z:
            return str(z["case_id"]), int(z["slice_index"]), np.asarray(z["mask"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path.name} cannot be read ({err})") from err
