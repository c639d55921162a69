"""Run a heavy job (prepare, score, train) in a separate Python process.

Why: Slicer's GUI stays responsive, a crash or out-of-memory in PyTorch cannot
take the application down, and cancelling kills the process tree (see
:mod:`.process_tree`); jobs write their results atomically, so the last good model and every accepted
label survive. Protocol: the job spec is a JSON file; the worker writes one JSON
object per line on stdout: ``{"type": "progress", stage, fraction, message}``,
then ``{"type": "result", "result": {...}}`` or ``{"type": "error", kind,
problem, fix}``. Library prints go to stderr so they cannot break the protocol.
Slicer-free: the child imports no ``slicer``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from LongitudinalALLib.core.errors import (
    CancelledError,
    InputError,
    LongitudinalALError,
    RegistrationError,
    ResourceError,
    SessionError,
)
from LongitudinalALLib.core.progress import CancelToken, ProgressCallback, report
from LongitudinalALLib.jobs import process_tree

ERRORS = {cls.__name__: cls for cls in (InputError, SessionError, RegistrationError, ResourceError, CancelledError,
                                         LongitudinalALError)}
log = logging.getLogger(__name__)


def python_executable() -> str:
    """Slicer's PythonSlicer when running inside Slicer, else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def _library_root() -> str:
    return str(Path(__file__).resolve().parents[2])  # the folder holding LongitudinalALLib/


KEEP_LOGS = 50


def prune_logs(folder: Path, keep: int = KEEP_LOGS) -> None:
    """Delete all but the newest ``keep`` worker logs (the work root outlives Slicer sessions)."""
    logs = sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime)
    for old in logs[:max(0, len(logs) - keep)]:
        old.unlink(missing_ok=True)


def new_log_path(log_dir: str | Path | None, label: str) -> Path:
    """A fresh ``.log`` path for a worker process in ``log_dir`` (default: the temp folder's
    LongitudinalAL-logs), created if needed, older logs pruned."""
    folder = Path(log_dir) if log_dir else Path(tempfile.gettempdir()) / "LongitudinalAL-logs"
    folder.mkdir(parents=True, exist_ok=True)
    prune_logs(folder)
    return folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{label}.log"


def stopped_error(job: str, code: int, log_path: Path, tail: str) -> LongitudinalALError:
    """The one line for a worker process that ended without a result (crash, kill, a broken interpreter)."""
    return LongitudinalALError(f"The {job} worker process stopped (exit code {code}).",
                               f"Details: {tail.strip() or 'none'} (full log: {log_path})")


def spawn(python: str, args: list[str], log_file, messages: "queue.Queue[dict]",
          stdin: int | None = None, module: str = "LongitudinalALLib.jobs.worker") -> subprocess.Popen:
    """Start ``python -m MODULE ARGS`` (a one-job worker, or :mod:`.kept_worker`) in its own process group (so cancel ends
    its whole tree, see :mod:`.process_tree`); a thread puts each protocol line of its stdout into
    ``messages``, then ``{"type": "eof"}`` once the output closes (the process tree is gone)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_library_root(), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen([python, "-m", module, *args], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=log_file, env=env, **process_tree.popen_options())

    def pump() -> None:
        for raw in proc.stdout:
            try:
                messages.put(json.loads(raw))
            except json.JSONDecodeError:
                continue  # not a protocol line
        messages.put({"type": "eof"})

    threading.Thread(target=pump, daemon=True).start()
    return proc


def take_message(handle, msg: dict, progress: ProgressCallback | None) -> str:
    """Apply one protocol message to a job ``handle`` (its ``result`` or ``error``); returns its type."""
    kind = msg.get("type", "")
    if kind == "progress":
        report(progress, msg.get("stage", ""), msg.get("fraction", 0.0), msg.get("message", ""))
    elif kind == "result":
        handle.result = msg.get("result", {})
    elif kind == "error":
        cls = ERRORS.get(msg.get("kind", ""), LongitudinalALError)
        handle.error = (CancelledError() if cls is CancelledError
                        else cls(msg.get("problem", "The job failed."), msg.get("fix")))
    return kind


def drain(handle, messages: "queue.Queue[dict]", progress: ProgressCallback | None, ends: tuple[str, ...]) -> str | None:
    """Send SIGKILL to a cancelled job's tree once its grace ran out (``handle._force_at``), then apply the
    pending messages; the type of the one that ended the job (one of ``ends``), or None while it runs."""
    if handle._force_at is not None and time.monotonic() >= handle._force_at and not handle.finished:
        handle._force_at = None
        process_tree.signal_tree(handle._proc, force=True)  # it ignored the polite request
    while True:
        try:
            msg = messages.get_nowait()
        except queue.Empty:
            return None
        kind = take_message(handle, msg, progress)
        if kind in ends:
            return kind


class WorkerProcess:
    """One job in a child process; ``poll()`` is non-blocking so a Qt timer can drive it.

    The child's stderr (library output, tracebacks) is kept in ``log_path`` after
    the job ends, so "see the worker log" points at a file that exists.
    """

    def __init__(self, job: str, spec: dict[str, Any], python: str | None = None,
                 log_dir: str | Path | None = None) -> None:
        self.job, self.spec = job, spec
        self.python = python or python_executable()
        self.result: dict[str, Any] | None = None
        self.error: LongitudinalALError | None = None
        self._queue: queue.Queue[dict] = queue.Queue()
        self._proc: subprocess.Popen | None = None
        self.log_path = new_log_path(log_dir, f"{job}-{os.getpid()}-{id(self):x}")
        self._spec_path = self.log_path.with_suffix(".spec.json")
        self.cancelled = False
        self.finished = False  # the child closed its output: result or error is final
        self._force_at: float | None = None  # after a cancel: when the tree gets SIGKILL if still there

    def start(self) -> "WorkerProcess":
        self._spec_path.write_text(json.dumps({"job": self.job, "spec": self.spec}))
        self._stderr = open(self.log_path, "wb")
        self._proc = spawn(self.python, [str(self._spec_path)], self._stderr, self._queue)
        log.info("LongitudinalAL %s job started (pid %s, log %s)", self.job, self._proc.pid, self.log_path)
        return self

    def log_tail(self, max_chars: int = 20000) -> str:
        """The end of the child's log (what the module's log panel shows)."""
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def poll(self, progress: ProgressCallback | None = None) -> bool:
        """Handle pending messages; returns True once the job has finished (result or error set)."""
        if drain(self, self._queue, progress, ("eof",)) is None:
            return False
        self._finish()
        return True

    def _finish(self) -> None:
        assert self._proc is not None
        code = self._proc.wait()
        self.finished = True
        self._stderr.close()
        self._spec_path.unlink(missing_ok=True)
        if self.cancelled:
            self.result, self.error = None, CancelledError(f"The {self.job} job")
        elif self.result is None and self.error is None:
            self.error = stopped_error(self.job, code, self.log_path, self.log_tail(2000))
        outcome = "cancelled" if self.cancelled else "failed" if self.error else "finished"
        log.info("LongitudinalAL %s job %s (exit code %s)", self.job, outcome, code)

    def cancel(self, grace_s: float = 2.0) -> None:
        """Stop the child and everything it started (Slicer's PythonSlicer is a launcher whose
        interpreter child survives a plain terminate); results written atomically stay valid.

        Returns at once: ``poll`` reports the end when the tree is gone, and sends SIGKILL to what
        is still there ``grace_s`` later (the GUI thread never waits for an exit).
        """
        if self._proc is None or self.cancelled or self.finished:
            return
        self.cancelled = True
        self._force_at = time.monotonic() + grace_s
        process_tree.signal_tree(self._proc)

    def wait(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
             interval_s: float = 0.05) -> dict[str, Any]:
        """Block until the job ends; returns its result or raises its error."""
        while not self.poll(progress):
            if cancel is not None and cancel.cancelled:
                self.cancel()
            time.sleep(interval_s)
        if self.error is not None:
            raise self.error
        return self.result or {}


def run_in_worker(job: str, spec: dict[str, Any], progress: ProgressCallback | None = None,
                  cancel: CancelToken | None = None) -> dict[str, Any]:
    return WorkerProcess(job, spec).start().wait(progress, cancel)


def run_in_process(job: str, spec: dict[str, Any], progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None) -> dict[str, Any]:
    """Same job, same results, in this process (headless Logic, tests, debugging)."""
    from LongitudinalALLib.jobs.jobs import JOBS

    return JOBS[job](spec, progress, cancel)


Runner = Callable[[str, dict, "ProgressCallback | None", "CancelToken | None"], dict]


def protocol_sender() -> Callable[[dict], None]:
    """The child's one writer of protocol lines (its real stdout); ``print`` goes to stderr (the log) from here on."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # keep library prints off the protocol stream

    def send(msg: dict) -> None:
        out.write(json.dumps(msg, default=str) + "\n")
        out.flush()

    return send


def main(argv: list[str] | None = None) -> int:
    """Child entry point: ``python -m LongitudinalALLib.jobs.worker spec.json`` runs one job (the kept
    worker's entry point is :mod:`.kept_worker`)."""
    argv = sys.argv[1:] if argv is None else argv
    send = protocol_sender()
    return run_job(lambda: json.loads(Path(argv[0]).read_text()), send)


def run_job(read_payload: Callable[[], dict], send: Callable[[dict], None], jobs: dict | None = None) -> int:
    """Run the job ``read_payload()`` names (``{"job", "spec"}``), sending its progress, then one result or
    error message; returns the exit code the one-job child ends with."""

    def progress(stage: str, fraction: float, message: str = "") -> None:
        send({"type": "progress", "stage": stage, "fraction": fraction, "message": message})

    try:
        payload = read_payload()
        if jobs is None:
            from LongitudinalALLib.jobs.jobs import JOBS as jobs

        send({"type": "result", "result": jobs[payload["job"]](payload["spec"], progress, None)})
        return 0
    except LongitudinalALError as err:
        send({"type": "error", "kind": type(err).__name__, "problem": err.problem, "fix": err.fix})
        return 2
    except Exception as err:  # noqa: BLE001 - reported to the parent as one clear line
        import traceback

        traceback.print_exc()
        send({"type": "error", "kind": "LongitudinalALError",
              "problem": f"The job failed: {type(err).__name__}: {err}", "fix": "See the worker log for details."})
        return 1


if __name__ == "__main__":
    sys.exit(main())
