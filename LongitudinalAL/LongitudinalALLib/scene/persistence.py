"""Where sessions live on disk, and when a folder named by a scene may be trusted.

A scene file is untrusted input: the ``sessionDir`` it names is reused only when
it lies inside this logic's work root *and* its content is exactly what the
scene's archive holds (same content digest); otherwise a fresh copy is
unpacked. New work folders never reuse an existing name, so no run can ever
overwrite someone's session.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ..errors import SessionError
from . import archive, session_scene

#: environment variable naming a fixed work root (all sessions of this user go there)
WORK_ROOT_ENV = "LONGITUDINALAL_WORK_ROOT"
_FOLDER = re.compile(r"^session-(\d+)$")
_process_root: Path | None = None


def default_work_root() -> Path:
    """``$LONGITUDINALAL_WORK_ROOT``, else one temporary root shared by every logic of this process."""
    global _process_root
    if os.environ.get(WORK_ROOT_ENV):
        return Path(os.environ[WORK_ROOT_ENV])
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
    if not (folder / "session" / "state.json").is_file():
        return None
    return folder if archive.folder_digest(folder, exclude) == digest else None
