"""The worker process protocol: JSON progress/result/error lines, errors keep their type and message."""

from __future__ import annotations

import sys

import pytest

from LongitudinalALLib.errors import SessionError
from LongitudinalALLib.scene.worker import WorkerProcess, run_in_process, run_in_worker


def test_device_job_runs_in_a_child_process_and_matches_in_process():
    child = run_in_worker("device", {"prefer_cpu": True})
    here = run_in_process("device", {"prefer_cpu": True})
    assert child == here and child["device"] == "cpu"
    import torch

    assert child["torch"] == torch.__version__


def test_user_error_in_the_child_arrives_as_the_same_error(tmp_path):
    with pytest.raises(SessionError, match="not an active-learning session") as info:
        run_in_worker("suggest", {"work_dir": str(tmp_path / "nowhere")})
    assert info.value.fix  # the fix travels too


def test_a_crashing_child_or_unknown_job_is_reported_not_hung():
    from LongitudinalALLib.errors import LongitudinalALError

    with pytest.raises(LongitudinalALError, match="stopped \\(exit code 1\\)"):
        WorkerProcess("device", {}, python="false").start().wait()  # the interpreter dies at once
    with pytest.raises(LongitudinalALError, match="no-such-job"):
        WorkerProcess("no-such-job", {}, python=sys.executable).start().wait()
