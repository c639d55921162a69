"""Where sessions live on disk, and when a folder named by a scene may be trusted.

A scene file is untrusted input: the ``sessionDir`` it names is reused only when
it lies inside this logic's work root *and* its content is exactly what the
scene's archive holds (same content digest); otherwise a fresh copy is
unpacked. New work folders never reuse an existing name, so no run can ever
overwrite someone's session.

Inside Slicer the work root is stable (beside Slicer's user settings, not in the
temp folder), so sessions survive temp cleaning; :func:`stored_sessions` and
:func:`remove_stored_session` let the user see and delete them.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.core.errors import LongitudinalALError, SessionError
from LongitudinalALLib.scene import archive, session_scene

#: environment variable naming a fixed work root (all sessions of this user go there)
WORK_ROOT_ENV = "LONGITUDINALAL_WORK_ROOT"
_FOLDER = re.compile(r"^session-(\d+)$")
_STORED = re.compile(r"^(session-\d+|restored-[A-Za-z0-9_-]+)$")
_process_root: Path | None = None


def default_work_root() -> Path:
    """``$LONGITUDINALAL_WORK_ROOT``; in Slicer ``<user settings folder>/LongitudinalAL/sessions``
    (on Windows under ``%LOCALAPPDATA%``: the settings folder lies in the roaming profile, which must
    not carry hundreds of MB per session); elsewhere one temporary root shared by every logic of this process."""
    global _process_root
    if os.environ.get(WORK_ROOT_ENV):
        return Path(os.environ[WORK_ROOT_ENV])
    settings = _slicer_settings_file()
    if settings:
        folder = Path(settings).parent  # e.g. %APPDATA%/slicer.org (Roaming) on Windows
        if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
            folder = Path(os.environ["LOCALAPPDATA"]) / folder.name
        return folder / "LongitudinalAL" / "sessions"
    if _process_root is None or not _process_root.is_dir():
        _process_root = Path(tempfile.mkdtemp(prefix="lal-work-"))
    return _process_root


def new_work_folder(work_root: Path) -> Path:
    """Create and return ``work_root/session-NNN`` with a number no folder has used (never an existing one)."""
    work_root = Path(work_root)
    work_root.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in work_root.iterdir() if (m := _FOLDER.match(p.name))]
    number = max(numbers, default=0) + 1
    for _ in range(1000):
        folder = work_root / f"session-{number:03d}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:  # another process took it meanwhile
            number += 1
    raise SessionError(f"Could not create a new session folder in {work_root}.", "Remove old session folders.")


def reusable_session_dir(param, work_root: Path, exclude: tuple[str, ...]) -> Path | None:
    """The scene's ``sessionDir`` when it is ours and matches the archive exactly; else None (unpack afresh)."""
    value = session_scene.get_value(param, "sessionDir")
    digest = session_scene.archive_digest(param)
    if not value or not digest:
        return None
    try:
        folder = archive.confined(work_root, Path(value))
    except SessionError:
        return None  # a folder outside our work root: never touched
    if not SessionStore.exists(folder / "session"):
        return None
    return folder if session_scene.session_digest(folder, exclude) == digest else None


def _slicer_settings_file() -> str:
    """Slicer's user settings file path, or "" outside the Slicer application."""
    import slicer

    app = getattr(slicer, "app", None)
    return str(getattr(app, "slicerUserSettingsFilePath", "") or "")


@dataclass(frozen=True)
class StoredSession:
    """One work folder under the root, as listed to the user."""

    folder: Path
    size_bytes: int
    modified: float      # seconds since the epoch
    labels: int
    rounds: int


def stored_sessions(work_root: Path) -> list[StoredSession]:
    """The work folders under ``work_root`` (newest first), with size, labels and rounds."""
    out = []
    root = Path(work_root)
    for folder in (p for p in root.iterdir() if p.is_dir() and _STORED.match(p.name)) if root.is_dir() else ():
        files = [p for p in folder.rglob("*") if p.is_file()]
        try:
            store = SessionStore.open(folder / "session")
            labels, rounds = len(store.labels()), store.round_number
        except LongitudinalALError:  # not a session, or a damaged one: listed so it can be removed
            labels = rounds = 0
        out.append(StoredSession(folder, sum(p.stat().st_size for p in files),
                                 max((p.stat().st_mtime for p in files), default=folder.stat().st_mtime),
                                 labels, rounds))
    return sorted(out, key=lambda s: s.modified, reverse=True)


def remove_stored_session(work_root: Path, folder: Path, in_use: Path | None = None) -> int:
    """Delete one work folder directly under ``work_root``; returns the bytes freed.

    Refuses anything else (a path outside the root, a nested path, the session in use).
    """
    target = archive.confined(work_root, Path(folder))
    if target.parent != Path(work_root).resolve() or not _STORED.match(target.name):
        raise SessionError(f"{folder} is not a LongitudinalAL work folder.", "Pick one from the list of stored sessions.")
    if in_use is not None and Path(in_use).resolve() == target:
        raise SessionError(f"{target.name} is the session open in this scene.", "Close the scene first.")
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    shutil.rmtree(target)
    return size
