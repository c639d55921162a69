"""The session directory of one active-learning run: torch-free, typed, the only reader of its JSON.

Layout::

    state.json                      written last, after every change (the commit point)
    .lock                           the writer lock (session_lock); names the holder
    pool/<case>.npz|json            slice pairs, provenance, geometry (pool_store)
    labels/<case>_<slice>.npz       one answer per slice; all zero = "no new lesion"
    checkpoints/round_<r>_<id>.safetensors (+ .json sidecar, model/weights)
    scores/round_<r>_<n>.npz        strategy scores behind each suggestion
    damaged/                        files recovery could not read (kept for inspection)

Every file is written atomically and before the ``state.json`` that refers to
it, so a crash at any moment leaves either the old state or the new one plus
orphan files. Opening never changes a file: :meth:`SessionStore.open` is
read-only unless ``write=True`` takes the folder's lock, and crash recovery
(:mod:`session_recovery`) runs only when a writer calls :meth:`recover`.
Callers see typed records (:class:`LabelRecord`, :class:`RoundRecord`,
:class:`SuggestionBatch`, :class:`SessionSettings`), never the JSON.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from LongitudinalALLib.active import pool_store
from LongitudinalALLib.active.policy import DEFAULT_STRATEGY
from LongitudinalALLib.active.records import LabelRecord, RoundRecord, SessionSettings, SuggestionBatch
from LongitudinalALLib.active.session_files import SUBFOLDERS, check_layout, foreign_entries, is_own
from LongitudinalALLib.active.session_lock import SessionLock
from LongitudinalALLib.active.session_recovery import reconcile
from LongitudinalALLib.active.session_state import STATE_VERSION, validate_state
from LongitudinalALLib.active.store_labels import LabelBook
from LongitudinalALLib.active.suggestions import Suggestion
from LongitudinalALLib.core import atomic
from LongitudinalALLib.core.errors import InputError, SessionError
from LongitudinalALLib.core.json_file import read_json


def _read_state(root: Path) -> dict[str, Any]:
    path = root / "state.json"
    if not path.is_file():
        raise SessionError(f"{root} is not an active-learning session (no state.json).",
                           "Create one with `longitudinal-al suggest` or SessionStore.create().")
    state = read_json(path, lambda why: SessionError(f"{path} cannot be read ({why}).",
                                                     "Restore it from a backup or re-create the session."))
    return validate_state(state, root)


def _entries(root: Path) -> list[tuple[str, Path]]:
    """(sub-folder or "", path) of every entry at the top of ``root`` and in its sub-folders."""
    out = [("", p) for p in sorted(root.iterdir())] if root.is_dir() else []
    for sub in SUBFOLDERS:
        if (root / sub).is_dir():
            out += [(sub, p) for p in sorted((root / sub).iterdir())]
    return out


def _remove_own_files(root: Path) -> None:
    """Delete the files of the session at ``root`` that the tool wrote (``state.json`` first); keep the rest."""
    for sub, f in _entries(root):
        if sub != "damaged" and is_own(sub, f.name) and f.is_file() and not f.is_symlink():
            f.unlink()


class SessionStore:
    """Pool, labels, rounds and suggestions of one session folder (see module docstring)."""

    def __init__(self, root: Path, state: dict[str, Any], lock: SessionLock | None = None) -> None:
        self.root = root
        self._state = state
        self._cases: dict[str, Any] = {}
        self._lock = lock
        self.labels_book = LabelBook(self, state["labels"], self._commit, self._require_writer)

    # ------------------------------------------------------------ create / open / recover
    @classmethod
    def create(cls, directory: str | Path, cases: list, *, strategy: str = DEFAULT_STRATEGY, seed: int = 0,
               model_config: dict | None = None, init_weights: str = "bundled",
               val_fraction: float = 0.2, overwrite: bool = False, wait: float = 0.0) -> "SessionStore":
        """Start a session on ``cases`` (list of CaseSlices), open for writing; ``init_weights``: see settings."""
        root = Path(directory)
        if cls.exists(root) and not overwrite:
            raise SessionError(f"{root} already holds a session.",
                               "Open it to continue, or choose another directory (or pass overwrite).")
        if not cases:
            raise InputError("No cases were given for the session pool.", "Prepare at least one pair first.")
        ids = [pool_store.check_case_id(c.case_id) for c in cases]
        if len(set(ids)) != len(ids):
            raise InputError(f"Case ids repeat in the pool: {ids}.", "Give every pair its own case id.")
        sizes = {tuple(np.shape(c.images)[2:]) for c in cases}
        if len(sizes) != 1:
            raise InputError(f"Cases have different slice sizes {sorted(sizes)}.", "Prepare all pairs with one --size.")
        cls.check_new_folder(root, overwrite)
        lock = SessionLock(root, wait)
        try:
            cls.check_new_folder(root, overwrite)  # again under the lock: another writer may have been first
            if overwrite:
                _remove_own_files(root)
            for c in cases:
                pool_store.save_case(root / "pool", c)
        except BaseException:
            lock.release()
            raise
        state = {
            "version": STATE_VERSION, "created": time.time(), "strategy": strategy, "seed": int(seed),
            "init_weights": str(init_weights), "model_config": model_config, "val_fraction": float(val_fraction),
            "cases": {c.case_id: {"n_slices": int(len(c.images)),
                                  "slice_indices": [int(p.slice_index) for p in c.provenance]} for c in cases},
            "labels": {}, "rounds": [], "suggestions": [], "generation": 0,
        }
        store = cls(root, state, lock)
        store._cases = {c.case_id: c for c in cases}
        store._commit()
        return store

    @staticmethod
    def check_new_folder(directory: str | Path, overwrite: bool = False) -> None:
        """Refuse (one line) a folder a new session may not be created in: only a missing or empty one
        (or, with ``overwrite``, one that holds just a session's own files) is used; nothing is deleted here."""
        root = Path(directory)
        if root.is_symlink() and not root.is_dir():
            raise SessionError(f"{root} is a link to nothing.", "Choose another --session folder.")
        if root.exists() and not root.is_dir():
            raise SessionError(f"{root} is a file, not a folder.", "Choose a new or empty folder for the session.")
        check_layout(root)
        if overwrite and SessionStore.exists(root):
            foreign = [f"{sub}/{f.name}" if sub else f.name for sub, f in _entries(root) if not is_own(sub, f.name)
                       and not (sub == "" and (f.name in (*SUBFOLDERS, ".lock") or f.name == "prepared"))]
            if foreign:
                raise SessionError(f"{root} holds files a session does not write ({', '.join(foreign[:3])}"
                                   f"{' ...' if len(foreign) > 3 else ''}); nothing was deleted.",
                                   "Move them away, or choose a new folder.")
            return
        found = foreign_entries(root)
        if not found:
            return
        labels = sorted((root / "labels").glob("*.npz")) if (root / "labels").is_dir() else []
        if labels and not SessionStore.exists(root):
            raise SessionError(f"{root} holds {len(labels)} label files of an earlier session, but no state.json.",
                               "Restore state.json from a backup (the labels are kept), or move the folder away "
                               "and start the session in a new one.")
        raise SessionError(f"{root} is not empty ({', '.join(found[:3])}{' ...' if len(found) > 3 else ''}); "
                           "a new session is created only in a new or empty folder.",
                           "Choose a new folder for --session (nothing was changed).")

    @classmethod
    def open(cls, directory: str | Path, *, write: bool = False, wait: float = 0.0) -> "SessionStore":
        """Open read-only (no lock, no change), or with ``write`` take the writer lock (no repair: see recover).

        ``wait``: seconds to queue behind another writer before giving up with a SessionError.
        """
        root = Path(directory)
        check_layout(root)
        if not write:
            return cls(root, _read_state(root))
        if not cls.exists(root):
            _read_state(root)  # the clear "not a session" error, before a lock file is made
        lock = SessionLock(root, wait)
        try:
            return cls(root, _read_state(root), lock)
        except BaseException:
            lock.release()
            raise

    @staticmethod
    def exists(directory: str | Path) -> bool:
        """Whether ``directory`` holds a session (its commit point is there)."""
        return (Path(directory) / "state.json").is_file()

    @classmethod
    def open_recovered(cls, directory: str | Path, *, wait: float = 0.0) -> tuple["SessionStore", list[str]]:
        """Open for writing and run crash recovery: (the store, one line per repair)."""
        store = cls.open(directory, write=True, wait=wait)
        try:
            return store, store.recover()
        except BaseException:
            store.close()
            raise

    def recover(self) -> list[str]:
        """Repair what a crash left behind (writer only); returns what was done, one line each."""
        self._require_writer()
        notes: list[str] = []
        if reconcile(self.root, self._state, self.labels_book, notes):
            self._commit()
        return notes

    def discard_new(self, extra_files: tuple[Path, ...] = (), remove_folder: bool = False) -> None:
        """Undo a session this process just created whose first step failed (no label, no round yet).

        Removes only what the tool wrote: its own names, ``extra_files`` (e.g. the prepared
        volumes written for it), then the folders left empty; the lock goes last.
        """
        self._require_writer()
        if self._state["labels"] or self._state["rounds"]:
            raise SessionError(f"Session {self.root} already holds labels or rounds.", "It is kept as it is.")
        _remove_own_files(self.root)
        for f in extra_files:
            if f.is_file() and not f.is_symlink():
                f.unlink()
        for folder in {f.parent for f in extra_files} | {self.root / sub for sub in SUBFOLDERS}:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
        self.close()
        lock = self.root / ".lock"
        if lock.is_file() and not lock.is_symlink():
            lock.unlink()
        if remove_folder:
            with contextlib.suppress(OSError):
                self.root.rmdir()

    def close(self) -> None:
        """Release the writer lock (also released when the process ends)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "SessionStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def writable(self) -> bool:
        return self._lock is not None

    def _require_writer(self) -> None:
        if self._lock is None:
            raise SessionError(f"Session {self.root} was opened read-only or closed.", "Open it for writing.")

    def _commit(self) -> None:
        """Write state.json; refuses a read-only store and a state another writer changed since."""
        self._require_writer()
        path = self.root / "state.json"
        loaded = self._state.get("generation", 0)
        if path.is_file():
            try:
                on_disk = json.loads(path.read_text(encoding="utf-8")).get("generation", 0)
            except (OSError, ValueError, AttributeError):
                on_disk = loaded
            if on_disk != loaded:
                raise SessionError(f"Session {self.root} was changed by another writer since it was opened.",
                                   "Open it again and repeat the step.")
        self._state["generation"] = loaded + 1
        self._state["updated"] = time.time()
        try:
            atomic.write_json(path, self._state)
        except BaseException:
            self._state["generation"] = loaded
            raise

    # ------------------------------------------------------------ settings
    @property
    def settings(self) -> SessionSettings:
        s = self._state
        return SessionSettings(s["strategy"], int(s["seed"]), s["init_weights"], s.get("model_config"),
                               float(s.get("val_fraction", 0.2)))

    def set_strategy(self, name: str) -> None:
        """The strategy later suggestions use when none is named (a forked simulation changes it)."""
        self._state["strategy"] = name
        self._commit()

    @property
    def prepared(self) -> dict[str, str]:
        """case id -> its prepared folder (relative to the session, or absolute on another drive)."""
        return dict(self._state.get("prepared") or {})

    def set_prepared(self, case_id: str, folder: str) -> None:
        self._check_case(case_id)
        self._state["prepared"] = {**self.prepared, case_id: str(folder)}
        self._commit()

    # ------------------------------------------------------------ pool
    @property
    def case_ids(self) -> list[str]:
        return list(self._state["cases"])

    def _check_case(self, case_id: str) -> None:
        if case_id not in self._state["cases"]:
            raise InputError(f"Case {case_id!r} is not in this session.", f"Use one of {self.case_ids}.")

    def case(self, case_id: str):
        """The CaseSlices of ``case_id`` (loaded from disk once)."""
        self._check_case(case_id)
        if case_id not in self._cases:
            case = pool_store.load_case(self.root / "pool", case_id)
            if [int(p.slice_index) for p in case.provenance] != self.slice_indices(case_id):
                raise SessionError(f"Pool record {self.root / 'pool' / (case_id + '.json')} does not match the "
                                   "slices state.json lists for the case.", "Re-create the session from the prepared pairs.")
            self._cases[case_id] = case
        return self._cases[case_id]

    def geometry(self, case_id: str):
        """The SliceGeometry of ``case_id``, read from the pool's JSON (the slice arrays are not loaded)."""
        from LongitudinalALLib.imaging.pairing import SliceGeometry

        self._check_case(case_id)
        if case_id in self._cases:
            return self._cases[case_id].geometry
        return SliceGeometry.from_dict(pool_store.read_case_meta(self.root / "pool", case_id).get("geometry", {}))

    def n_slices(self, case_id: str) -> int:
        self._check_case(case_id)
        return int(self._state["cases"][case_id]["n_slices"])

    def slice_indices(self, case_id: str) -> list[int]:
        """Baseline slice index of every pool row of the case, in row order."""
        self._check_case(case_id)
        return list(self._state["cases"][case_id]["slice_indices"])

    def position(self, case_id: str, slice_index: int) -> int:
        """Row of ``slice_index`` in the case's (N,...) arrays."""
        idx = self.slice_indices(case_id)
        try:
            return idx.index(int(slice_index))
        except ValueError:
            raise InputError(f"Slice {slice_index} does not exist in case {case_id} "
                             f"(slices {idx[0]}..{idx[-1]}).", "Pick a slice index inside that range.") from None

    def pool_arrays(self) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int]]]:
        """All cases stacked: images (M,3,H,W), foreground (M,H,W), (case_id, slice_index) per row."""
        cases = [self.case(c) for c in self.case_ids]
        keys = [(c.case_id, int(p.slice_index)) for c in cases for p in c.provenance]
        return (np.concatenate([c.images for c in cases]).astype(np.float32, copy=False),
                np.concatenate([c.foreground for c in cases]), keys)

    # ------------------------------------------------------------ labels (the book's, one line each)
    def labels(self) -> list[LabelRecord]:
        return self.labels_book.labels()

    def label_record(self, case_id: str, slice_index: int) -> LabelRecord | None:
        return self.labels_book.label_record(case_id, slice_index)

    def has_lesion_label(self) -> bool:
        return self.labels_book.has_lesion_label()

    def add_label(self, case_id: str, slice_index: int, mask: Any) -> None:
        self.labels_book.add_label(case_id, slice_index, mask)

    def add_labels(self, answers: Iterable[tuple[str, int, Any]]) -> None:
        self.labels_book.add_labels(answers)

    def add_labels_from_volume(self, case_id: str, volume: np.ndarray,
                               slice_indices: list[int] | None = None) -> list[int]:
        return self.labels_book.add_labels_from_volume(case_id, volume, slice_indices)

    def label(self, case_id: str, slice_index: int) -> np.ndarray:
        return self.labels_book.label(case_id, slice_index)

    def labelled_mask(self, case_id: str) -> np.ndarray:
        return self.labels_book.labelled_mask(case_id)

    def budget(self) -> dict[str, Any]:
        return self.labels_book.budget()

    # ------------------------------------------------------------ rounds
    @property
    def rounds(self) -> list[RoundRecord]:
        return [RoundRecord.from_dict(r) for r in self._state["rounds"]]

    @property
    def round_number(self) -> int:
        """Rounds trained so far (0 = the starting model is current)."""
        return len(self._state["rounds"])

    def commit_round(self, write_checkpoint: Callable[[Path], None], **record: Any) -> RoundRecord:
        """Add round ``round_number + 1``: ``write_checkpoint(path)`` writes its weights, then the record commits.

        The checkpoint name is unique, so two trainings never write one file.
        """
        self._require_writer()
        r = self.round_number + 1
        rel = f"checkpoints/round_{r}_{secrets.token_hex(4)}.safetensors"
        (self.root / "checkpoints").mkdir(exist_ok=True)
        write_checkpoint(self.root / rel)
        rec = RoundRecord(round=r, checkpoint=rel, time=time.time(), **record)
        self._state["rounds"].append(asdict(rec))
        self._commit()
        return rec

    def records_beyond(self, staged: "SessionStore") -> tuple[list[dict], list[dict]]:
        """(rounds, suggestion batches) that ``staged``, a copy of this session trained elsewhere, added.

        Refused when this session got another round meanwhile (another writer trained): the staged
        history would no longer follow this one.
        """
        base, mine, theirs = self.round_number, self._state, staged._state
        if [r["checkpoint"] for r in theirs["rounds"][:base]] != [r["checkpoint"] for r in mine["rounds"]]:
            raise SessionError(f"Session {self.root} got another round while this one trained, so this round "
                               "was not added.", "Press Retrain to train on every label again.")
        return ([dict(r) for r in theirs["rounds"][base:]],
                [dict(b) for b in theirs["suggestions"][len(mine["suggestions"]):]])

    def append_records(self, rounds: list[dict], batches: list[dict]) -> None:
        """Commit rounds and suggestion batches whose files are already in this folder (a merged round)."""
        self._require_writer()
        self._state["rounds"] += rounds
        self._state["suggestions"] += batches
        self._commit()

    def rollback(self, to_round: int | None = None, *, loads: Callable[[Path], bool] | None = None) -> int:
        """Drop the rounds after ``to_round`` (default: the newest whose checkpoint ``loads``); labels stay.

        Returns the round now current (0 = the starting model). The dropped
        rounds' checkpoints are deleted after the commit.
        """
        rounds = self._state["rounds"]
        if to_round is None:
            to_round = next((r["round"] for r in reversed(rounds) if loads is None or loads(self.root / r["checkpoint"])), 0)
        if not 0 <= to_round <= len(rounds):
            raise InputError(f"Round {to_round} does not exist (rounds 0..{len(rounds)}).",
                             "Pick a round from `longitudinal-al train` output, or 0 for the starting model.")
        dropped = rounds[to_round:]
        self._state["rounds"] = rounds[:to_round]
        self._commit()
        for r in dropped:
            stem = Path(r["checkpoint"]).stem
            for f in (self.root / "checkpoints" / f"{stem}{ext}" for ext in (".safetensors", ".json")):
                if is_own("checkpoints", f.name) and f.is_file() and not f.is_symlink():
                    f.unlink()
        return to_round

    # ------------------------------------------------------------ suggestions
    @property
    def suggestion_count(self) -> int:
        """Queries recorded so far (each seeds the next one's random draws)."""
        return len(self._state["suggestions"])

    def suggestion_batches(self) -> list[SuggestionBatch]:
        return [SuggestionBatch(b["round"], b["strategy"], b.get("scores", ""),
                                tuple(Suggestion.from_dict(s) for s in b["slices"]))
                for b in self._state["suggestions"]]

    def record_suggestions(self, strategy: str, suggestions: list[Suggestion], scores: np.ndarray,
                           chosen: np.ndarray) -> SuggestionBatch:
        """Keep a query with the (N,) scores behind it, for this round."""
        self._require_writer()
        r, n = self.round_number, self.suggestion_count
        rel = f"scores/round_{r}_{n}.npz"
        atomic.write_npz(self.root / rel, scores=scores, chosen=chosen)
        self._state["suggestions"].append({"round": r, "strategy": strategy, "scores": rel,
                                           "slices": [s.to_dict() for s in suggestions]})
        self._commit()
        return SuggestionBatch(r, strategy, rel, tuple(suggestions))
