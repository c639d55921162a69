"""Start a worker so that it and everything it starts can be stopped together.

Why: inside Slicer the worker is started through ``PythonSlicer``, a CTK
launcher that runs the real interpreter as a child and forwards no signals, so
terminating the launcher leaves the interpreter running (holding the GPU and
the output pipe). POSIX: the worker leads a new session, and cancel signals
the whole process group (SIGTERM, then SIGKILL after a grace period). Windows:
``taskkill /T /F`` ends the tree, and no console window is opened per job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

WINDOWS = sys.platform == "win32"


def popen_options() -> dict[str, Any]:
    """Extra ``subprocess.Popen`` arguments: own process group, no console window on Windows."""
    if WINDOWS:
        return {"creationflags": subprocess.CREATE_NO_WINDOW | subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def group_alive(pgid: int) -> bool:
    """True while any process of the group exists (zombies of already reaped parents do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(_member_running(pid, pgid) for pid in _pids()) if os.path.isdir("/proc") else True


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _member_running(pid: int, pgid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return False
    return int(fields[2]) == pgid and fields[0] != b"Z"  # state, ppid, pgrp


def kill_tree(proc: subprocess.Popen, grace_s: float = 2.0) -> None:
    """End ``proc`` and its descendants; returns once they are gone (or were sent SIGKILL)."""
    if WINDOWS:
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(proc.pid)], capture_output=True,
                       creationflags=subprocess.CREATE_NO_WINDOW, check=False)
        proc.wait()
        return
    pgid = proc.pid  # start_new_session: the worker leads its own group
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            proc.poll()  # reap our direct child so it stops counting
            if not group_alive(pgid):
                return
            time.sleep(0.02)
    proc.poll()
