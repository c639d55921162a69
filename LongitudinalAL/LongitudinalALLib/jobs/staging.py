"""Train in a staged copy of the session; only the parent commits it.

Why: a training round cancelled from the panel must commit nothing, and the
worker can be killed at any instant (also just after the store's own commit).
So the train job works on a hard-linked copy of the session (unchanged pool
and label files are shared, never rewritten in place: every write is an atomic
replace, which gives the staged file a new inode) and the parent process merges
the new round into the live session (:func:`merge_round`), ``state.json`` last,
only when it applies a finished job; labels accepted meanwhile stay live and
join the next round. A crash mid-merge leaves orphan files that
``SessionStore.recover`` reconciles.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from LongitudinalALLib.core import atomic

STATE = "state.json"
#: never shared or copied back: a writer lock file is per folder (an flock on a shared inode would
#: make the staged copy's writer block the live session's, and the reverse)
PRIVATE = frozenset({".lock"})


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not supported
        shutil.copy2(src, dst)


def stage(session_dir: Path, staged_dir: Path) -> Path:
    """A copy of ``session_dir`` at ``staged_dir`` sharing the unchanged files."""
    staged_dir = Path(staged_dir)
    if staged_dir.exists():
        shutil.rmtree(staged_dir)
    staged_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(session_dir, staged_dir, copy_function=_link_or_copy,
                    ignore=lambda folder, names: [n for n in names if n in PRIVATE])
    return staged_dir


def changed_files(staged_dir: Path, session_dir: Path) -> list[Path]:
    """Files (relative) that are new or replaced in the staged copy, ``state.json`` excluded."""
    out = []
    for path in sorted(Path(staged_dir).rglob("*")):
        rel = path.relative_to(staged_dir)
        if not path.is_file() or rel.as_posix() == STATE or ".tmp" in path.name or path.name in PRIVATE:
            continue
        original = Path(session_dir) / rel
        if not original.exists() or not os.path.samefile(path, original):
            out.append(rel)
    return out


def merge_round(staged_dir: Path, session_dir: Path, wait: float = 30.0) -> list[Path]:
    """Add the staged copy's new rounds and suggestion batches to the live session; returns the files moved.

    Labels accepted in the live session while the round trained stay as they are (they join the
    next round): only the new checkpoint and score files move, and the live ``state.json`` gets
    the new records, each round with ``trained_on``, the labels of the staged copy it trained on
    (key -> sha256 of the label file). Holds the live writer lock meanwhile (one writer at a time);
    refuses a round when the live session got another round meanwhile (another writer trained).
    """
    from LongitudinalALLib.active.store import SessionStore
    from LongitudinalALLib.core.errors import SessionError

    staged = SessionStore.open(staged_dir)
    with SessionStore.open(session_dir, write=True, wait=wait) as live:
        base, state, new = live.round_number, live._state, staged._state
        if [r["checkpoint"] for r in new["rounds"][:base]] != [r["checkpoint"] for r in state["rounds"]]:
            raise SessionError(f"Session {session_dir} got another round while this one trained, so this round "
                               "was not added.", "Press Retrain to train on every label again.")
        trained_on = {rec.key: label_digest(Path(staged_dir) / rec.file) for rec in staged.labels()}
        moved = [rel for rel in changed_files(staged_dir, session_dir) if rel.parts[0] in ("checkpoints", "scores")]
        for rel in moved:
            with atomic.atomic_path(Path(session_dir) / rel) as tmp:
                shutil.copyfile(Path(staged_dir) / rel, tmp)
        state["rounds"] += [{**r, "trained_on": trained_on} for r in new["rounds"][base:]]
        state["suggestions"] += new["suggestions"][len(state["suggestions"]):]
        live._commit()
    return moved


def label_digest(path: Path) -> str:
    """sha256 of a label file: what a round records of each label it trained on."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def discard(staged_dir: Path | None) -> None:
    if staged_dir is not None:
        shutil.rmtree(staged_dir, ignore_errors=True)
