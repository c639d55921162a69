"""Which names in a session folder this tool wrote, and the folder's shape (reliability review 2, N1/N2).

The tool deletes or overwrites only names it writes itself, and only inside the
session folder: a sub-folder or ``state.json`` that is a symlink would send a
write or a delete elsewhere, so it is refused in one line. Anything else found
where the tool keeps its files (a README, a backup, another model) is moved
aside into ``damaged/``, never deleted.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from LongitudinalALLib.core.errors import SessionError

#: the session's sub-folders (all written by the tool) and the files it writes at the top
SUBFOLDERS = ("pool", "labels", "checkpoints", "scores", "damaged")
TOP_FILES = ("state.json", ".lock")
DAMAGED = "damaged"

#: the names the tool writes in each folder ("" = the session folder itself)
OWN_NAMES = {
    "": re.compile(r"^state\.json$"),
    "pool": re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.(npz|json)$"),
    "labels": re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}_-?\d+\.npz$"),
    "checkpoints": re.compile(r"^round_\d+(_[0-9a-f]+)?\.(safetensors|json)$"),
    "scores": re.compile(r"^round_\d+_\d+\.npz$"),
}
#: an unfinished atomic write of one of those names (core.atomic: ``.<stem>.<8 random>.tmp<suffixes>``)
_TMP = re.compile(r"^\.(?P<stem>[^/]+?)\.[a-z0-9_]+\.tmp(?P<suffix>(\.[A-Za-z0-9]+)*)$")


def is_own(sub: str, name: str) -> bool:
    """Whether ``name`` in ``sub`` (a sub-folder, or "" for the top) is a name the tool writes there."""
    pattern = OWN_NAMES.get(sub)
    return bool(pattern and pattern.match(name))


#: the same with the whole name kept (``.<name>.tmp<random>``, as older writers and tests name them)
_TMP_NAMED = re.compile(r"^\.(?P<name>.+)\.tmp[A-Za-z0-9_]*$")


def is_own_temporary(sub: str, name: str) -> bool:
    """Whether ``name`` is an unfinished atomic write of a name the tool writes in ``sub``."""
    m, named = _TMP.match(name), _TMP_NAMED.match(name)
    return bool(m and is_own(sub, m.group("stem") + m.group("suffix"))) or bool(named and is_own(sub, named["name"]))


def check_layout(root: Path) -> None:
    """Refuse (one SessionError line) a session whose ``state.json``, ``.lock`` or a sub-folder is a symlink,
    or whose sub-folder is not a folder: every write and delete must stay inside ``root``."""
    root = Path(root)
    for name in (*TOP_FILES, *SUBFOLDERS):
        p = root / name
        if p.is_symlink():
            raise SessionError(f"{p} is a symbolic link; a session keeps its files inside its own folder.",
                               f"Replace the link by a real {'file' if name in TOP_FILES else 'folder'} "
                               f"(copy what it points to into {root}).")
        if name in SUBFOLDERS and p.exists() and not p.is_dir():
            raise SessionError(f"{p} is not a folder.", f"Move it away; the session keeps its {name} there.")
        if name in TOP_FILES and p.exists() and not p.is_file():
            raise SessionError(f"{p} is not a regular file.", "Move it away; the session writes that file itself.")


def foreign_entries(root: Path) -> list[str]:
    """Entries of ``root`` a fresh session must not replace: everything but ``.lock`` and empty sub-folders."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for entry in sorted(os.listdir(root)):
        p = root / entry
        if entry == ".lock" and p.is_file() and not p.is_symlink():
            continue
        if entry in SUBFOLDERS and p.is_dir() and not p.is_symlink() and not any(p.iterdir()):
            continue
        out.append(entry)
    return out


def move_aside(root: Path, path: Path) -> str:
    """Move ``path`` into ``root/damaged/`` under a new name (never over a file); returns its new relative name."""
    target_dir = Path(root) / DAMAGED
    target_dir.mkdir(exist_ok=True)
    base = f"{path.parent.name}_{path.name}"
    target, n = target_dir / base, 1
    while target.exists() or target.is_symlink():
        target, n = target_dir / f"{base}.{n}", n + 1
    os.replace(path, target)
    return f"{DAMAGED}/{target.name}"
