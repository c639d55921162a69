"""One worker process kept for the session's jobs (issue 25, item 3): real processes, quick jobs (kept_jobs).

Jobs after the first reuse the process (torch would be imported once); cancel still ends the
whole tree; a worker that was cancelled, crashed or was killed between jobs is replaced by the
next job; an idle worker exits when it is closed.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from LongitudinalALLib.core.errors import CancelledError, InputError, LongitudinalALError
from LongitudinalALLib.jobs.kept_worker import KeptWorker

from test_scene_worker import _alive  # noqa: E402 - reads /proc

pytestmark = pytest.mark.skipif(sys.platform == "win32" or not Path("/proc").is_dir(), reason="reads /proc")


@pytest.fixture
def worker(tmp_path, monkeypatch):
    here = str(Path(__file__).resolve().parent)  # the worker imports kept_jobs from here
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    kept = KeptWorker(python=sys.executable, log_dir=tmp_path / "logs", jobs="kept_jobs:JOBS")
    yield kept
    kept.close()


def _wait(handle, progress=None, limit_s: float = 30.0):
    deadline = time.monotonic() + limit_s
    while not handle.poll(progress):
        assert time.monotonic() < deadline, "the job never ended"
        time.sleep(0.01)
    return handle


def test_later_jobs_run_in_the_same_process_and_errors_keep_their_type(worker):
    seen = []
    first = _wait(worker.submit("pid", {"echo": 1}), lambda stage, fraction, message="": seen.append(stage))
    assert first.error is None and first.result["echo"] == 1 and seen == ["Working"]
    failed = _wait(worker.submit("fail", {}))
    assert isinstance(failed.error, InputError) and failed.error.fix == "Load a 3D scan."
    second = _wait(worker.submit("pid", {"echo": 2}))
    assert second.result["pid"] == first.result["pid"] and second.result["echo"] == 2 and worker.starts == 1


def test_the_worker_yields_the_processor_to_the_clicks(worker):
    from LongitudinalALLib.jobs.kept_worker import WORKER_NICENESS

    assert _wait(worker.submit("pid", {})).result["nice"] == os.nice(0) + WORKER_NICENESS


def test_only_one_job_at_a_time(worker, tmp_path):
    running = worker.submit("sleep", {"pid_file": str(tmp_path / "pids")})
    with pytest.raises(LongitudinalALError, match="already running"):
        worker.submit("pid", {})
    running.cancel()
    _wait(running)


def test_cancel_ends_the_whole_tree_at_once_and_the_next_job_starts_a_new_worker(worker, tmp_path):
    first = _wait(worker.submit("pid", {}))
    pid_file = tmp_path / "pids"
    job = worker.submit("sleep", {"pid_file": str(pid_file)})
    deadline = time.monotonic() + 30
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.01)
    pids = [int(p) for p in pid_file.read_text().split()]
    assert pids[0] == first.result["pid"] and all(map(_alive, pids))
    started = time.monotonic()
    job.cancel()
    assert time.monotonic() - started < 0.1  # the GUI thread never waits for the exit
    _wait(job, limit_s=10)
    assert isinstance(job.error, CancelledError) and job.result is None
    assert not any(map(_alive, pids)), "cancel left a process of the tree running"
    after = _wait(worker.submit("pid", {}))
    assert after.error is None and after.result["pid"] not in pids and worker.starts == 2


def test_a_worker_that_crashes_or_is_killed_between_jobs_is_replaced_by_the_next_job(worker):
    crashed = _wait(worker.submit("exit", {}))
    assert "stopped (exit code 3)" in str(crashed.error) and str(worker.log_path) in str(crashed.error)
    first = _wait(worker.submit("pid", {}))
    assert first.error is None and worker.starts == 2
    os.kill(first.result["pid"], signal.SIGKILL)  # e.g. the out-of-memory killer, while idle
    deadline = time.monotonic() + 10
    while _alive(first.result["pid"]):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    again = _wait(worker.submit("pid", {}))
    assert again.error is None and again.result["pid"] != first.result["pid"] and worker.starts == 3


def test_close_ends_an_idle_worker(worker):
    pid = _wait(worker.submit("pid", {})).result["pid"]
    worker.close()
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, "the idle worker outlived close()"
        time.sleep(0.01)
