"""One worker process kept for the session's jobs: torch is imported once, not once a round.

Why: a background round must show its batch within seconds of the clinician's last
Accept, and starting a Python that imports torch costs 12-17 s on a loaded 2-core
machine, more than a short round itself. So the first job (Run or the first round)
starts the worker, and later jobs are sent to it over its stdin, one JSON line each
(``{"job", "spec"}``); it answers on stdout with the one-job protocol of :mod:`.worker`
(progress lines, then exactly one result or error line per job) and waits for the next.

What still holds from the one-job worker: cancel ends the worker's whole process tree
at once (Slicer's PythonSlicer launcher forwards no signal, :mod:`.process_tree`), the
poll forces it after a grace period, and jobs write atomically in staged copies, so a
killed worker loses nothing; the next job simply starts a new worker. A worker that
died between jobs is restarted the same way. ``close()`` (scene closed, module
cleaned up) ends an idle worker by closing its stdin; a parent that dies closes it too.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import queue
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Callable, TextIO

from LongitudinalALLib.core.errors import CancelledError, LongitudinalALError
from LongitudinalALLib.core.progress import ProgressCallback
from LongitudinalALLib.jobs import process_tree
from LongitudinalALLib.jobs.worker import (
    drain,
    new_log_path,
    protocol_sender,
    python_executable,
    run_job,
    spawn,
    stopped_error,
)

log = logging.getLogger(__name__)
#: the job table the worker serves unless told another (tests hand in quick jobs: real processes, no torch)
DEFAULT_JOBS = "LongitudinalALLib.jobs.jobs:JOBS"
#: how much the worker lowers its priority (POSIX nice increment): the GUI thread's clicks come first
WORKER_NICENESS = 5


class KeptWorker:
    """The parent's side: ``submit(job, spec)`` returns a :class:`KeptJob` handle (poll, cancel,
    result, error, log_tail: what :class:`..scene.job_runner.JobRunner` drives); one job at a time."""

    def __init__(self, python: str | None = None, log_dir: str | Path | None = None,
                 jobs: str = DEFAULT_JOBS) -> None:
        self.python = python or python_executable()
        self.log_dir = log_dir
        self.jobs = jobs
        self.starts = 0  # worker processes started so far (a restart after a cancel or a crash counts)
        self._proc: subprocess.Popen | None = None
        self._messages: queue.Queue[dict] = queue.Queue()
        self._job: KeptJob | None = None
        self._finalizer: weakref.finalize | None = None
        self.log_path: Path | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def submit(self, job: str, spec: dict[str, Any]) -> "KeptJob":
        """Send ``job`` to the worker, starting one first if none is alive."""
        if self._job is not None and not self._job.finished:
            raise LongitudinalALError(f"A {self._job.job} job is already running.", "Wait for it, or press Cancel.")
        if not self.alive:
            self._start()
        self._job = KeptJob(self, job, self._proc, self._messages)
        try:
            self._proc.stdin.write((json.dumps({"job": job, "spec": spec}) + "\n").encode())
            self._proc.stdin.flush()
        except OSError:  # it died just now: the handle reports it when the output closes
            log.warning("LongitudinalAL: the worker (pid %s) was gone when a %s job was sent", self.pid, job)
        return self._job

    def _start(self) -> None:
        self.retire(self._proc)
        self.log_path = new_log_path(self.log_dir, f"worker-{os.getpid()}-{id(self):x}")
        self._messages = queue.Queue()  # one queue per process: a dead one's last lines never reach the next
        with open(self.log_path, "wb") as log_file:  # the child holds its own copy of the descriptor
            self._proc = spawn(self.python, ["--serve", self.jobs], log_file, self._messages, stdin=subprocess.PIPE,
                               module="LongitudinalALLib.jobs.kept_worker")
        self.starts += 1
        self._finalizer = weakref.finalize(self, _end, self._proc)  # a forgotten worker never outlives its owner
        log.info("LongitudinalAL worker started (pid %s, log %s)", self._proc.pid, self.log_path)

    def retire(self, proc: "subprocess.Popen | None") -> None:
        """Stop sending jobs to ``proc`` (cancelled, or gone): the next job starts a new worker."""
        if proc is not None and proc is self._proc:
            self._proc = None
            if self._finalizer is not None:
                self._finalizer.detach()
            _end(proc)

    def close(self) -> None:
        """End the worker (scene closed, module cleaned up): a running job is cancelled, an idle worker exits."""
        if self._job is not None and not self._job.finished:
            self._job.cancel()
        self.retire(self._proc)

    def log_tail(self, max_chars: int = 20000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:] if self.log_path else ""
        except OSError:
            return ""


def _end(proc: subprocess.Popen) -> None:
    """Close the worker's stdin: idle, it exits; busy, it was signalled by whoever cancelled its job."""
    try:
        proc.stdin.close()
    except OSError:
        pass


class KeptJob:
    """One job in the kept worker, with the one-job handle's interface (``poll`` never blocks)."""

    def __init__(self, worker: KeptWorker, job: str, proc: subprocess.Popen, messages: "queue.Queue[dict]") -> None:
        self.worker, self.job, self._proc, self._messages = worker, job, proc, messages
        self.result: dict[str, Any] | None = None
        self.error: LongitudinalALError | None = None
        self.cancelled = False
        self.finished = False
        self._force_at: float | None = None

    def poll(self, progress: ProgressCallback | None = None) -> bool:
        """Handle pending messages; True once the job has ended (its result or error set)."""
        if self.finished:
            return True
        # a cancelled job ends when its tree is gone (the output closes), not with a last result line
        kind = drain(self, self._messages, progress, ("eof",) if self.cancelled else ("eof", "result", "error"))
        return kind is not None and self._finish(kind)

    def _finish(self, kind: str) -> bool:
        self.finished = True
        if self.cancelled:
            self.result, self.error = None, CancelledError(f"The {self.job} job")
        elif kind == "eof":
            self.worker.retire(self._proc)
            self.error = stopped_error(self.job, self._proc.wait(), self.worker.log_path, self.worker.log_tail(2000))
        log.info("LongitudinalAL %s job %s", self.job, "cancelled" if self.cancelled else
                 "failed" if self.error else "finished")
        return True

    def cancel(self, grace_s: float = 2.0) -> None:
        """End the worker's tree (the caller discards the job's staged work; the next job starts a new
        worker); returns at once, ``poll`` forces it ``grace_s`` later and reports the end."""
        if self.cancelled:
            return
        self.cancelled = True
        if self.finished:  # it ended in the worker but was not applied: dropped, and the worker stays
            self.result, self.error = None, CancelledError(f"The {self.job} job")
            return
        self._force_at = time.monotonic() + grace_s
        self.worker.retire(self._proc)
        process_tree.signal_tree(self._proc)

    def log_tail(self, max_chars: int = 20000) -> str:
        return self.worker.log_tail(max_chars)


def serve(stdin: TextIO, send: Callable[[dict], None], jobs: str | None = None) -> int:
    """The worker's side: run each ``{"job", "spec"}`` line of ``stdin`` until it closes (see module docstring).

    The worker lowers its own priority first (POSIX ``nice``): it trains while the clinician
    labels, and on a machine with few cores her clicks must get the processor before it.
    """
    if hasattr(os, "nice"):
        try:
            os.nice(WORKER_NICENESS)
        except OSError:
            pass
    module, _, name = (jobs or DEFAULT_JOBS).partition(":")
    table = None
    for line in stdin:
        if not line.strip():
            continue
        if table is None:  # imported with the first job, so a worker started early costs nothing until used
            table = getattr(importlib.import_module(module), name)
        try:
            job = json.loads(line).get("job")
        except (ValueError, AttributeError):
            job = "unreadable"
        print(f"--- {time.strftime('%H:%M:%S')} {job} job (worker pid {os.getpid()})", file=sys.stderr, flush=True)
        run_job(lambda: json.loads(line), send, table)
    return 0


if __name__ == "__main__":  # python -m LongitudinalALLib.jobs.kept_worker --serve [module:TABLE]
    _args = sys.argv[1:]
    sys.exit(serve(sys.stdin, protocol_sender(), _args[1] if len(_args) > 1 and _args[0] == "--serve" else None))
