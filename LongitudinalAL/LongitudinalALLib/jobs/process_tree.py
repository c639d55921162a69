"""Start a worker so that it and everything it starts can be stopped together.

Why: inside Slicer the worker is started through ``PythonSlicer``, a CTK
launcher that runs the real interpreter as a child and forwards no signals, so
terminating the launcher leaves the interpreter running (holding the GPU and
the output pipe). POSIX: the worker leads a new session, and cancel signals
the whole process group (SIGTERM, then SIGKILL after a grace period, sent
from the poll that watches for the exit: nothing here waits). Windows:
``taskkill /T /F`` ends the tree, and no console window is opened per job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

WINDOWS = sys.platform == "win32"


def popen_options() -> dict[str, Any]:
    """Extra ``subprocess.Popen`` arguments: own process group, no console window on Windows."""
    if WINDOWS:
        return {"creationflags": subprocess.CREATE_NO_WINDOW | subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def signal_tree(proc: subprocess.Popen, force: bool = False) -> None:
    """Ask ``proc`` and its descendants to stop (SIGTERM, or SIGKILL with ``force``) and return at once.

    Why: this runs on Slicer's GUI thread; the caller polls for the exit (the output pipe closes when
    the whole tree is gone) and forces it after a grace period. Windows: ``taskkill /T /F`` ends the tree.
    """
    if WINDOWS:
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(proc.pid)], capture_output=True,
                       creationflags=subprocess.CREATE_NO_WINDOW, check=False)
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL if force else signal.SIGTERM)  # start_new_session: it leads its group
    except ProcessLookupError:
        pass
