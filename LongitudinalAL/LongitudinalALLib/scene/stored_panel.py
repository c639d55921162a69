"""The panel's "Stored sessions" section: list the work folders, delete one after one confirmation.

Why: sessions stay in the work root across Slicer sessions (see :mod:`.persistence`)
and can grow large; the user sees them and frees space without a file manager.
The Widget only wires a list widget and a button to :func:`listing` and :func:`remove`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.scene.persistence import StoredSession
from LongitudinalALLib.scene.session_scene import get_value


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def describe(stored: StoredSession, open_folder: str = "") -> str:
    """One list line: name, date, rounds, labels, size; the session open in this scene is marked."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(stored.modified))
    mark = "  (open in this scene)" if open_folder and Path(open_folder).resolve() == stored.folder.resolve() else ""
    return (f"{stored.folder.name}   {when}   {stored.rounds} rounds   {stored.labels} labels   "
            f"{_size(stored.size_bytes)}{mark}")


def listing(logic) -> list[tuple[Path, str]]:
    """(folder, line) of every stored session, newest first."""
    param = logic.param
    open_folder = get_value(param, "sessionDir") if param is not None else ""
    return [(s.folder, describe(s, open_folder)) for s in logic.stored_sessions()]


def remove(logic, rows: list[tuple[Path, str]], index: int, confirm: Callable[[str], bool]) -> str:
    """Delete row ``index`` after ``confirm`` says yes (asked once); the status line, "" when declined.

    The session open in this scene is refused by the logic (one line) before anything is asked.
    """
    if not 0 <= index < len(rows):
        raise InputError("No stored session is selected.", "Click one in the Stored sessions list first.")
    folder, line = rows[index]
    current = get_value(logic.param, "sessionDir")
    if current and Path(current).resolve() == Path(folder).resolve():
        logic.remove_stored_session(folder)  # raises the logic's one-line refusal
    if not confirm(f"Delete the stored session {line.split('(open')[0].strip()}?\nThis cannot be undone."):
        return ""
    freed = logic.remove_stored_session(folder)
    return f"Deleted {Path(folder).name} ({_size(freed)} freed)."
