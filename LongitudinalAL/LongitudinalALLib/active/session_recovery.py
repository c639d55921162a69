"""Crash recovery of a session folder; runs only in the writer that holds the lock.

Every file is written before the ``state.json`` that refers to it, so after a
crash the folder holds the last committed state plus orphan files. Recovery:
- deletes unfinished temporary writes of its own names (safe: the lock guarantees no other writer),
- adopts complete orphan label files (the annotator's work is never lost),
- moves labels that ``state.json`` lists but that cannot be read into
  ``damaged/`` and drops them from the state, saying which slices to relabel,
- removes checkpoints and scores of rounds that were never committed, when
  their names are ones the tool writes; any other file there is moved into
  ``damaged/``, never deleted (:mod:`session_files`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from LongitudinalALLib.active.records import read_label_file
from LongitudinalALLib.active.session_files import check_layout, is_own, is_own_temporary, move_aside
from LongitudinalALLib.active.store_labels import LabelBook
from LongitudinalALLib.core.errors import InputError, SessionError


def reconcile(root: Path, state: dict[str, Any], book: LabelBook, notes: list[str]) -> bool:
    """Bring files and state back in line (see module docstring); True when the state changed.

    The store hands in its folder, its state (edited in place) and its label book (which
    lists adopted orphans); ``notes`` gets one line per repair.
    """
    check_layout(root)
    changed = False
    for sub in ("", "pool", "labels", "checkpoints", "scores"):
        d = root / sub
        for f in d.glob(".*.tmp*") if d.is_dir() else []:
            if is_own_temporary(sub, f.name) and f.is_file() and not f.is_symlink():
                f.unlink()
                notes.append(f"removed unfinished write {f.name}")
    labels = state["labels"]
    for key, rec in list(labels.items()):
        f = root / rec["file"]
        if not f.is_file():
            del labels[key]
            changed = True
            notes.append(f"label {key} lost its file {rec['file']}; label slice {rec['slice_index']} again")
            continue
        try:
            read_label_file(f)
        except ValueError:
            del labels[key]
            changed = True
            move_aside(root, f)
            notes.append(f"label {key} is damaged (moved to damaged/); label slice {rec['slice_index']} again")
    known = {rec["file"] for rec in labels.values()}
    for f in sorted((root / "labels").glob("*.npz")):
        if f"labels/{f.name}" in known or f.name.startswith("."):
            continue
        try:
            case_id, idx, mask = read_label_file(f)
            book.record(case_id, idx, mask, f"labels/{f.name}")
            notes.append(f"adopted label {case_id}:{idx} written before a crash")
        except (ValueError, InputError):
            move_aside(root, f)
            notes.append(f"moved unreadable label file {f.name} to damaged/")
        changed = True
    done = {rel.split("/")[-1].split(".")[0] for rel in (r["checkpoint"] for r in state["rounds"])}
    done_scores = {s["scores"].split("/")[-1].split(".")[0] for s in state["suggestions"] if s.get("scores")}
    for sub, keep in (("checkpoints", done), ("scores", done_scores)):
        for f in sorted((root / sub).iterdir()) if (root / sub).is_dir() else []:
            if f.name.startswith(".") or f.name.split(".")[0] in keep:
                continue  # hidden files: unfinished writes (above) or not ours to judge
            if is_own(sub, f.name) and f.is_file() and not f.is_symlink():
                f.unlink()
                notes.append(f"removed {sub}/{f.name} of an unfinished round")
            else:
                notes.append(f"moved {sub}/{f.name} to {move_aside(root, f)}: LongitudinalAL did not write it")
    for case_id in state["cases"]:
        if not (root / "pool" / f"{case_id}.json").is_file():
            raise SessionError(f"Pool of case {case_id} is missing from {root / 'pool'}.",
                               "Re-create the session from the prepared pairs.")
    return changed
