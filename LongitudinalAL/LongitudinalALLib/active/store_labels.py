"""The label book of a session: answers per slice, written before the state that lists them.

A collaborator that :class:`store.SessionStore` owns (``store.labels_book``): it
keeps the ``labels`` part of the state, reads the pool through the store's
public methods, and commits through the callables the store hands it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from LongitudinalALLib.active.records import LabelRecord, binary_mask, hash01, label_key, read_label_file
from LongitudinalALLib.core import atomic
from LongitudinalALLib.core.errors import InputError, SessionError

if TYPE_CHECKING:
    from LongitudinalALLib.active.store import SessionStore


class LabelBook:
    """Labels of a session: add, import from a volume, read, count (the budget).

    ``records``: the state's label dict (key -> LabelRecord fields), edited in place;
    ``commit`` writes the state, ``require_writer`` refuses a read-only store.
    """

    def __init__(self, store: "SessionStore", records: dict[str, dict[str, Any]],
                 commit: Callable[[], None], require_writer: Callable[[], None]) -> None:
        self.store = store
        self.root = store.root
        self._records = records
        self._save = commit
        self._check_writer = require_writer

    def labels(self) -> list[LabelRecord]:
        """Every answer, sorted by case and slice."""
        recs = [LabelRecord(**r) for r in self._records.values()]
        return sorted(recs, key=lambda r: (r.case_id, r.slice_index))

    def label_record(self, case_id: str, slice_index: int) -> LabelRecord | None:
        rec = self._records.get(label_key(case_id, slice_index))
        return LabelRecord(**rec) if rec else None

    def has_lesion_label(self) -> bool:
        """Whether some answer holds a lesion (before that, strategies mix in cold-start picks)."""
        return any(r["lesion_pixels"] for r in self._records.values())

    def record(self, case_id: str, slice_index: int, mask: np.ndarray, rel: str) -> None:
        """List the label file ``rel`` (already on disk) holding ``mask`` (H, W); no commit (recovery adopts with it)."""
        self.store.position(case_id, slice_index)
        settings = self.store.settings
        split = "val" if hash01(settings.seed, case_id, slice_index) < settings.val_fraction else "train"
        self._records[label_key(case_id, slice_index)] = asdict(LabelRecord(
            case_id, int(slice_index), rel, int(np.count_nonzero(mask)), self.store.round_number, split))

    def _write_one(self, case_id: str, slice_index: int, mask: Any) -> None:
        self.store.position(case_id, slice_index)
        grid = tuple(self.store.geometry(case_id).size)  # (H, W) from the pool's JSON: the slice arrays stay on disk
        mask = binary_mask(mask, f"The label for {case_id}:{slice_index}")
        if mask.shape != grid:
            raise InputError(f"Label for {case_id}:{slice_index} is {mask.shape}; the model grid is "
                             f"{grid}.", "Pass a mask on the model grid or a volume mask.")
        mask = mask.astype(np.uint8)
        rel = f"labels/{case_id}_{int(slice_index)}.npz"
        atomic.write_npz(self.root / rel, mask=mask, case_id=np.array(case_id), slice_index=np.array(int(slice_index)))
        self.record(case_id, slice_index, mask, rel)

    def add_label(self, case_id: str, slice_index: int, mask: Any) -> None:
        """Store the answer for one slice: mask (H, W) on the model grid; all zero = no new lesion."""
        self.add_labels([(case_id, slice_index, mask)])

    def add_labels(self, answers: Iterable[tuple[str, int, Any]]) -> None:
        """Store several answers ``(case_id, slice_index, mask (H, W))`` with one commit."""
        self._check_writer()
        for case_id, slice_index, mask in answers:
            self._write_one(case_id, slice_index, mask)
        self._save()

    def add_labels_from_volume(self, case_id: str, volume: np.ndarray,
                               slice_indices: list[int] | None = None) -> list[int]:
        """Import labels from a (K, J, I) 0/1 mask on the baseline grid.

        ``slice_indices`` None: every slice where the mask is 1. Listed slices that
        are empty in the mask are recorded as "no new lesion". Any value other than
        0/1 (NaN, -1, 255, intensities) is refused: it would become a wrong label.
        """
        case = self.store.case(case_id)
        vol = binary_mask(volume, f"The mask for {case_id}")
        try:
            slices = case.geometry.to_slices(vol.astype(np.uint8), order=0) > 0
        except (ValueError, IndexError) as err:
            raise InputError(f"Mask of shape {vol.shape} does not fit the baseline grid of {case_id} ({err}).",
                             "Give a mask saved on the baseline image's grid.") from err
        all_idx = self.store.slice_indices(case_id)
        if slice_indices is None:
            slice_indices = [all_idx[i] for i in np.flatnonzero(slices.reshape(len(slices), -1).any(1))]
        rows = [self.store.position(case_id, s) for s in slice_indices]
        self.add_labels((case_id, s, slices[row]) for s, row in zip(slice_indices, rows))
        return [int(s) for s in slice_indices]

    def label(self, case_id: str, slice_index: int) -> np.ndarray:
        """The (H, W) uint8 answer of one slice."""
        rec = self.label_record(case_id, slice_index)
        if rec is None:
            raise InputError(f"Slice {case_id}:{slice_index} has no label.", "Label it first.")
        try:
            return read_label_file(self.root / rec.file)[2].astype(np.uint8)
        except ValueError as err:
            raise SessionError(f"The label of {case_id}:{slice_index} is damaged: {err}.",
                               "Open the session again (it moves the file aside), then label that slice again.") from err

    def labelled_mask(self, case_id: str) -> np.ndarray:
        """(N,) bool: which slices of the case already have an answer."""
        out = np.zeros(self.store.n_slices(case_id), dtype=bool)
        for rec in self.labels():
            if rec.case_id == case_id:
                out[self.store.position(case_id, rec.slice_index)] = True
        return out

    def budget(self) -> dict[str, Any]:
        """Labels spent, per subject and in total; lesion-free confirmations counted apart."""
        per = {cid: {"slices": self.store.n_slices(cid), "labelled": 0, "contoured": 0, "lesion_free": 0}
               for cid in self.store.case_ids}
        for rec in self.labels():
            p = per[rec.case_id]
            p["labelled"] += 1
            p["contoured" if rec.lesion_pixels else "lesion_free"] += 1
        for p in per.values():
            p["fraction"] = p["labelled"] / p["slices"] if p["slices"] else 0.0
        tot = {k: sum(p[k] for p in per.values()) for k in ("slices", "labelled", "contoured", "lesion_free")}
        tot["fraction"] = tot["labelled"] / tot["slices"] if tot["slices"] else 0.0
        return {"per_case": per, "total": tot}
