"""The session folder as a zip, and its safe extraction (the zip comes from a scene file: untrusted).

Packing writes a deterministic content digest beside the zip, so a folder can
later be compared with what a scene holds without unpacking it. Extraction
checks every entry name, the entry count, the total uncompressed size and the
free disk space *before* writing, writes into a new empty folder confined to
a root, counts the bytes it really writes, and removes the folder on any
failure (ENOSPC included). Every failure is one :class:`SessionError` line.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from LongitudinalALLib.core.errors import SessionError

#: plain folder names accepted from a scene (no dots: nothing like "..", no separators)
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: what a session file or folder name may look like (an allowlist: no "..", separators, drives, hidden files)
_SAFE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$")
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)
#: default caps for restoring a session from a scene (a real session is a few hundred MB)
MAX_TOTAL_BYTES = 4 * 1024**3
MAX_ENTRIES = 10_000
#: free space kept on the disk after extraction
DISK_RESERVE_BYTES = 256 * 1024**2
#: already-compressed files are stored as they are (repacking after every commit stays fast)
STORED_SUFFIXES = (".npz", ".safetensors", ".gz")
_CHUNK = 1 << 20
_DAMAGED_FIX = "Reopen an earlier copy of the scene or start a new session."
#: the only errors for which "free some disk space" is the right advice (review 2, N14)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps checked before anything is written; tests inject small ones."""

    max_total_bytes: int = MAX_TOTAL_BYTES
    max_entries: int = MAX_ENTRIES
    reserve_bytes: int = DISK_RESERVE_BYTES
    free_bytes: Callable[[Path], int] = lambda path: shutil.disk_usage(path).free


def max_encoded_length(limits: ArchiveLimits) -> int:
    """Longest base64 text a zip within ``limits`` can need: the stored bytes plus each entry's zip
    headers (two copies of a name of at most 255 x 16 characters, and fixed fields)."""
    zip_bytes = limits.max_total_bytes + limits.max_entries * (2 * 255 * 16 + 200) + 1024
    return 4 * (zip_bytes // 3 + 1)


def check_safe_name(name: str, what: str = "session folder name") -> str:
    """``name`` if it is a plain folder name (letters, digits, '_', '-'), else one SessionError line."""
    if not isinstance(name, str) or not SAFE_NAME.match(name):
        raise SessionError(f"The scene names its {what} {name!r}, which is not a plain folder name.",
                           "Open only scenes you trust; re-save the scene from LongitudinalAL to repair it.")
    return name


def confined(root: Path, path: Path) -> Path:
    """``path`` resolved, provided it lies strictly inside ``root`` (resolved); else SessionError."""
    root, resolved = Path(root).resolve(), Path(path).resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise SessionError(f"{path} lies outside the LongitudinalAL work folder {root}.",
                           "Open only scenes you trust; the session is restored into the work folder.")
    return resolved


def files(directory: Path, exclude: tuple[str, ...] = ()) -> list[tuple[str, Path]]:
    """(relative posix name, path) of the session's files, sorted; temporaries, hidden files (the writer's
    ``.lock``) and ``exclude`` prefixes left out."""
    out, directory = [], Path(directory)
    for folder, subfolders, names in os.walk(directory):  # os.walk: this runs on every Accept
        subfolders[:] = [d for d in subfolders if not os.path.islink(os.path.join(folder, d))]
        base = Path(folder).relative_to(directory).as_posix()
        for name in names:
            rel = name if base == "." else f"{base}/{name}"
            path = directory / rel
            if (".tmp" not in name and not name.startswith(".") and not rel.startswith(exclude)
                    and not path.is_symlink() and path.is_file()):
                out.append((rel, path))
    return sorted(out)


def _digest(items: Iterable[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for name, file_hash in items:
        h.update(f"{name}\0{file_hash}\n".encode())
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def files_digest(entries: list[tuple[str, Path]]) -> str:
    """sha256 over (name, sha256 of content) of ``entries`` (what :func:`pack_files` records)."""
    return _digest((rel, _file_sha256(path)) for rel, path in entries)


def folder_digest(directory: Path, exclude: tuple[str, ...] = ()) -> str:
    """sha256 over (name, sha256 of content) of what :func:`pack` would store from ``directory``."""
    return files_digest(files(Path(directory), exclude))


def signature(entries: list[tuple[str, Path]]) -> str:
    """sha256 over (name, size, mtime) of ``entries``: whether a part changed, without reading it.

    Every session file is written by an atomic replace, so a changed file has a new mtime.
    """
    h = hashlib.sha256()
    for rel, path in entries:
        st = path.stat()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def pack_files(entries: list[tuple[str, Path]]) -> tuple[bytes, str]:
    """(zip bytes, content digest) of ``entries``; compressed files stored, the rest deflated."""
    buf, hashes = io.BytesIO(), []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, path in entries:
            data = path.read_bytes()
            hashes.append((rel, hashlib.sha256(data).hexdigest()))
            method = zipfile.ZIP_STORED if path.name.endswith(STORED_SUFFIXES) else zipfile.ZIP_DEFLATED
            zf.writestr(zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0)), data, compress_type=method)
    return buf.getvalue(), _digest(hashes)


def pack(directory: Path, exclude: tuple[str, ...] = ()) -> tuple[bytes, str]:
    """(zip bytes, content digest) of ``directory``; compressed files stored, the rest deflated."""
    return pack_files(files(Path(directory), exclude))


def _check_entry(info: zipfile.ZipInfo) -> None:
    name = info.filename
    parts = name.rstrip("/").split("/")
    mode = info.external_attr >> 16
    unsafe = (not name or stat.S_ISLNK(mode)
              or not all(_SAFE_PART.match(p) and not p.endswith(".") and not _WINDOWS_RESERVED.match(p)
                         for p in parts))
    if unsafe:
        raise SessionError(f"Unsafe entry {name!r} in the session stored in this scene.",
                           "Open only scenes you trust; nothing was written.")


def check_archive(zfs: list[zipfile.ZipFile], limits: ArchiveLimits, target_parent: Path) -> int:
    """Refuse unsafe names, too many entries, too many bytes, or too little disk (all the parts of one
    session counted together); returns the total size."""
    infos = [info for zf in zfs for info in zf.infolist()]
    if len(infos) > limits.max_entries:
        raise SessionError(f"The session stored in this scene has {len(infos)} files (limit {limits.max_entries}).",
                           "Open only scenes you trust; nothing was written.")
    for info in infos:
        _check_entry(info)
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        raise SessionError(f"The session stored in this scene unpacks to {total} bytes "
                           f"(limit {limits.max_total_bytes}).", "Open only scenes you trust; nothing was written.")
    free = limits.free_bytes(target_parent)
    if total + limits.reserve_bytes > free:
        raise SessionError(f"Not enough disk space to restore the session: it needs {total} bytes, "
                           f"{free} are free in {target_parent}.", "Free some disk space and open the scene again.")
    return total


def _extract(zfs: list[zipfile.ZipFile], target: Path, budget: int) -> None:
    """Stream every entry into ``target``, never writing more than ``budget`` bytes in all (no file twice)."""
    written = 0
    for info, zf in ((info, zf) for zf in zfs for info in zf.infolist()):
        out = target / info.filename
        if info.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(out, "xb") as dst:
            for block in iter(lambda: src.read(_CHUNK), b""):
                written += len(block)
                if written > budget:
                    raise SessionError("The session stored in this scene is larger than it declares.",
                                       "Open only scenes you trust; nothing was kept.")
                dst.write(block)


def extract(data: bytes | list[bytes], root: Path, prefix: str = "restored-",
            limits: ArchiveLimits | None = None) -> Path:
    """Unpack zip ``data`` (or the parts of one session) into a new empty folder ``root/<prefix>XXXX``;
    returns it (removed on failure)."""
    limits = limits or ArchiveLimits()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if not _SAFE_PART.match(prefix):  # built from a checked name; never a path
        raise ValueError(f"bad folder prefix {prefix!r}")
    try:
        zfs = [zipfile.ZipFile(io.BytesIO(part)) for part in (data if isinstance(data, list) else [data])]
    except (zipfile.BadZipFile, ValueError) as err:
        raise SessionError(f"The session stored in this scene is damaged ({err}).", _DAMAGED_FIX) from None
    total = check_archive(zfs, limits, root)
    target = confined(root, Path(tempfile.mkdtemp(prefix=prefix, dir=root)))
    try:
        _extract(zfs, target, total)
    except SessionError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as err:
        shutil.rmtree(target, ignore_errors=True)
        code = err.errno if isinstance(err, OSError) else None
        detail = os.strerror(code) if code else str(err)
        fix = ("Free some disk space, or reopen an earlier copy of the scene." if code in _DISK_FULL
               else "Open only scenes you trust; reopen an earlier copy of the scene.")
        raise SessionError(f"The session stored in this scene could not be restored ({detail}); "
                           "nothing was kept.", fix) from None
    finally:
        for zf in zfs:
            zf.close()
    return target
