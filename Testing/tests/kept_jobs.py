"""Quick jobs for the kept-worker tests: the real worker process and protocol, without torch."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from LongitudinalALLib.core.errors import InputError


def job_pid(spec, progress, cancel):
    progress("Working", 0.5, "half way")
    return {"pid": os.getpid(), "echo": spec.get("echo"), "nice": os.nice(0) if hasattr(os, "nice") else None}


def job_sleep(spec, progress, cancel):
    """Starts a grandchild (as torch's helpers or a launcher would), says who they are, then works on."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(spec["pid_file"], "w") as fh:
        fh.write(f"{os.getpid()} {child.pid}")
    time.sleep(60)
    return {}


def job_fail(spec, progress, cancel):
    raise InputError("The scan is not a volume.", "Load a 3D scan.")


def job_exit(spec, progress, cancel):
    os._exit(3)  # a crash in native code: no error line, the output just closes


JOBS = {"pid": job_pid, "sleep": job_sleep, "fail": job_fail, "exit": job_exit}
