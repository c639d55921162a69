"""One writer per session: an OS-level lock on ``<session>/.lock``.

The lock is an ``flock`` (POSIX) or ``msvcrt.locking`` (Windows) on an open
file, so the kernel drops it when the holding process dies: a crashed
``train`` never leaves a stale lock behind. The holder writes its pid, program
and start time into the file so a second writer can say who is in the way.

Within one process the lock is re-entrant (a count per session folder): code
in one process runs one step at a time, and a stale in-process copy of the
state is caught by the session's generation check instead (see
:meth:`SessionStore._commit`).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

from LongitudinalALLib.core.errors import SessionError

LOCK_NAME = ".lock"

_held: dict[str, list] = {}          # resolved folder -> [file object, count]
_held_guard = threading.Lock()


def _try_lock(fh) -> bool:
    """Take the exclusive lock on ``fh`` without blocking; False when another process holds it."""
    try:
        if os.name == "nt":
            import msvcrt
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _unlock(fh) -> None:
    try:
        if os.name == "nt":
            import msvcrt
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()


def holder(folder: str | Path) -> str:
    """Who holds the lock, as written by the holder (``"unknown"`` when unreadable)."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return "unknown"
    return text or "unknown"


class SessionLock:
    """The exclusive writer lock of one session folder; release with :meth:`release` (or process exit)."""

    def __init__(self, folder: str | Path, wait: float = 0.0) -> None:
        self.folder = Path(folder)
        self._key = str(self.folder.resolve())
        self._released = False
        with _held_guard:
            if self._key in _held:
                _held[self._key][1] += 1
                return
        fh = self._acquire(wait)
        with _held_guard:
            _held[self._key] = [fh, 1]

    def _acquire(self, wait: float):
        path = self.folder / LOCK_NAME
        if path.is_symlink():  # the holder truncates and rewrites the lock file: never one outside the folder
            raise SessionError(f"{path} is a symbolic link; a session keeps its files inside its own folder.",
                               "Delete the link (a new lock file is made).")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
            fh = os.fdopen(fd, "a+", encoding="utf-8")
        except OSError as err:
            raise SessionError(f"Cannot lock session {self.folder} ({err.strerror or err}).",
                               "Check that the folder exists and that you may write to it.") from err
        deadline = time.monotonic() + max(0.0, float(wait))
        while not _try_lock(fh):
            if time.monotonic() >= deadline:
                fh.close()
                raise SessionError(
                    f"Session {self.folder} is in use by another process ({holder(self.folder)}).",
                    "Wait for it to finish and run again, or pass --wait SECONDS to queue behind it.")
            time.sleep(0.1)
        fh.seek(0)
        fh.truncate()
        prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}, {prog}, since {time.strftime('%H:%M:%S')}\n")
        fh.flush()
        return fh

    def release(self) -> None:
        """Drop this holder's share; the OS lock goes when the last share in the process is released."""
        if self._released:
            return
        self._released = True
        with _held_guard:
            entry = _held.get(self._key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _held[self._key]
        _unlock(entry[0])

    def __del__(self) -> None:  # a forgotten session object must not keep the folder locked
        try:
            self.release()
        except Exception:
            pass
