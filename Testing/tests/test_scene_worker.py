"""The worker process protocol: JSON progress/result/error lines, errors keep their type and message."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from LongitudinalALLib.core.errors import CancelledError, LongitudinalALError, SessionError
from LongitudinalALLib.jobs.worker import WorkerProcess, run_in_process, run_in_worker


def test_device_job_runs_in_a_child_process_and_matches_in_process():
    child = run_in_worker("device", {"device": "cpu"})
    here = run_in_process("device", {"device": "cpu"})
    assert child == here and child["device"] == "cpu"
    import torch

    assert child["torch"] == torch.__version__


def test_user_error_in_the_child_arrives_as_the_same_error(tmp_path):
    with pytest.raises(SessionError, match="not an active-learning session") as info:
        run_in_worker("suggest", {"work_dir": str(tmp_path / "nowhere")})
    assert info.value.fix  # the fix travels too


def test_a_crashing_child_or_unknown_job_is_reported_not_hung():
    with pytest.raises(LongitudinalALError, match="stopped \\(exit code 1\\)"):
        WorkerProcess("device", {}, python="false").start().wait()  # the interpreter dies at once
    with pytest.raises(LongitudinalALError, match="no-such-job"):
        WorkerProcess("no-such-job", {}, python=sys.executable).start().wait()


LAUNCHER = '''#!{python}
"""Like Slicer's PythonSlicer (CTK AppLauncher): runs the interpreter as a child, forwards no signal."""
import subprocess, sys
child = subprocess.Popen([{python!r}] + sys.argv[1:])  # stdout/stderr inherited (ForwardedChannels)
open({pid_file!r}, "w").write(str(child.pid))
sys.exit(child.wait())
'''


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _start_script(tmp_path, name: str, template: str, pid_file) -> WorkerProcess:
    """A worker whose 'interpreter' is ``template`` (a script told where to write its pid or mark)."""
    script = tmp_path / name
    script.write_text(template.format(python=sys.executable, pid_file=str(pid_file)))
    script.chmod(0o755)
    return WorkerProcess("device", {"device": "cpu"}, python=str(script), log_dir=tmp_path / "logs").start()


@pytest.mark.skipif(sys.platform == "win32" or not Path("/proc").is_dir(), reason="reads /proc")
def test_cancel_kills_the_interpreter_behind_a_launcher_that_forwards_no_signal(tmp_path):
    pid_file = tmp_path / "child.pid"
    worker = _start_script(tmp_path, "PythonSlicer", LAUNCHER, pid_file)
    deadline = time.monotonic() + 30
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the launcher never started its child"
        time.sleep(0.01)
    child = int(pid_file.read_text())
    assert _alive(child)  # still importing torch: the job is running
    started = time.monotonic()
    worker.cancel()
    while not worker.poll():  # the output pipe closes with the tree, so the panel frees at once
        assert time.monotonic() - started < 10, "the job still looks busy after cancel"
        time.sleep(0.01)
    assert not _alive(child), "cancel left the interpreter running behind the launcher"
    assert isinstance(worker.error, CancelledError) and worker.result is None
    worker.cancel()  # a second cancel is harmless


STUBBORN = '''#!{python}
"""A worker that ignores SIGTERM (e.g. busy in native code), so only SIGKILL ends it."""
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open({pid_file!r}, "w").write("ready")
time.sleep(60)
'''


@pytest.mark.skipif(sys.platform == "win32" or not Path("/proc").is_dir(), reason="reads /proc")
def test_cancel_returns_without_waiting_and_the_poll_forces_a_stubborn_worker(tmp_path):
    """Cancel runs on Slicer's GUI thread: it signals and returns; the timer's poll escalates and reports."""
    ready = tmp_path / "ready"
    worker = _start_script(tmp_path, "stubborn", STUBBORN, ready)
    deadline = time.monotonic() + 30
    while not ready.is_file():
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.01)
    pid = worker._proc.pid
    worker.cancel(grace_s=0.3)
    assert _alive(pid), "cancel waited for the worker to die instead of returning"
    assert not worker.poll()  # still there: the panel keeps polling
    while not worker.poll():
        assert time.monotonic() < deadline, "the poll never forced the worker to stop"
        time.sleep(0.01)
    assert not _alive(pid) and isinstance(worker.error, CancelledError)


def test_the_worker_log_outlives_the_job_and_is_named_in_a_crash_report(tmp_path):
    script = tmp_path / "crash"
    script.write_text(f"#!{sys.executable}\nimport sys\nprint('boom from the child', file=sys.stderr)\nsys.exit(3)\n")
    script.chmod(0o755)
    worker = WorkerProcess("device", {}, python=str(script), log_dir=tmp_path / "logs").start()
    with pytest.raises(LongitudinalALError, match="exit code 3") as info:
        worker.wait()
    assert "boom from the child" in worker.log_tail()
    assert worker.log_path.is_file() and str(worker.log_path) in str(info.value)


def test_popen_options_put_the_worker_in_its_own_group_and_hide_windows_consoles(monkeypatch):
    from LongitudinalALLib.jobs import process_tree

    if sys.platform != "win32":
        assert process_tree.popen_options() == {"start_new_session": True}
    monkeypatch.setattr(process_tree, "WINDOWS", True)
    monkeypatch.setattr(subprocess, "CREATE_NO_WINDOW", 0x08000000, raising=False)
    monkeypatch.setattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x00000200, raising=False)
    flags = process_tree.popen_options()["creationflags"]
    assert flags & 0x08000000 and flags & 0x00000200


def test_old_worker_logs_are_pruned(tmp_path):
    import os

    from LongitudinalALLib.jobs import worker as worker_module

    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(worker_module.KEEP_LOGS + 5):
        path = logs / f"old-{i:03d}.log"
        path.write_text("x")
        os.utime(path, (1000 + i, 1000 + i))
    WorkerProcess("device", {}, log_dir=logs)  # a new job prunes before it writes its own log
    left = sorted(p.name for p in logs.glob("*.log"))
    assert len(left) == worker_module.KEEP_LOGS and left[0] == "old-005.log"
