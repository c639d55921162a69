"""Test data made once per pytest run and shared by every xdist worker (issue 23).

A session fixture runs once per worker process; with ``-n 2`` an expensive input (a registration, a cohort)
was made twice. ``shared_dir`` builds it once, under a file lock in the folder the workers share
(the parent of each worker's base temp), and the other worker waits and reuses it. Tests must treat the
folder as read-only: write only under their own ``tmp_path``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

DONE = ".complete"


def run_root(tmp_path_factory) -> Path:
    """The folder every worker of this run shares (one run's base temp without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared_dir(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """``<run root>/shared-<name>``, filled by ``build(folder)`` exactly once per run (an earlier worker's
    half-built folder, left by a crash, is built again)."""
    from filelock import FileLock

    folder = run_root(tmp_path_factory) / f"shared-{name}"
    with FileLock(str(folder) + ".lock"):
        if not (folder / DONE).is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            (folder / DONE).touch()
    return folder
