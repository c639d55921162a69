"""Train in a staged copy of the session; only the parent commits it.

Why: a training round cancelled from the panel must commit nothing, and the
worker can be killed at any instant (also just after the store's own commit).
So the train job works on a hard-linked copy of the session (unchanged pool
and label files are shared, never rewritten in place: every write is an atomic
replace, which gives the staged file a new inode) and the parent process copies
the new files back, ``state.json`` last, only when it applies a finished job.
A crash mid-commit leaves orphan files that ``SessionStore.recover`` reconciles.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from LongitudinalALLib.active.session_lock import SessionLock
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


def commit(staged_dir: Path, session_dir: Path, wait: float = 30.0) -> list[Path]:
    """Copy the staged round into the session (atomic per file, ``state.json`` last); returns what moved.

    Holds the live session's writer lock meanwhile, so no CLI or other writer sees half a round.
    """
    lock = SessionLock(session_dir, wait)
    try:
        moved = changed_files(staged_dir, session_dir)
        for rel in moved:
            with atomic.atomic_path(Path(session_dir) / rel) as tmp:
                shutil.copyfile(Path(staged_dir) / rel, tmp)
        atomic.write_bytes(Path(session_dir) / STATE, (Path(staged_dir) / STATE).read_bytes())
    finally:
        lock.release()
    return moved


def discard(staged_dir: Path | None) -> None:
    if staged_dir is not None:
        shutil.rmtree(staged_dir, ignore_errors=True)
