"""Staged training copies: unchanged files are shared, only new or replaced files move back, state.json last."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from LongitudinalALLib.core import atomic
from LongitudinalALLib.jobs import staging


def _session(root):
    atomic.write_json(root / "state.json", {"rounds": []})
    atomic.write_bytes(root / "pool" / "case.npz", b"pool")
    atomic.write_bytes(root / "labels" / "case_3.npz", b"label")
    (root / ".lock").write_text("pid 1 (the live session's writer)")
    return root


def test_stage_shares_files_and_commit_moves_only_the_new_round(tmp_path):
    session = _session(tmp_path / "session")
    staged = staging.stage(session, tmp_path / "staging" / "session")
    assert os.path.samefile(staged / "pool" / "case.npz", session / "pool" / "case.npz")
    assert not (staged / ".lock").exists()  # a lock is per folder: the staged writer takes its own
    (staged / ".lock").write_text("pid 2 (the worker)")
    atomic.write_bytes(staged / "checkpoints" / "round_1.safetensors", b"weights")
    atomic.write_bytes(staged / "labels" / "case_3.npz", b"relabelled")  # atomic replace: a new inode
    atomic.write_json(staged / "state.json", {"rounds": [1]})
    assert (session / "labels" / "case_3.npz").read_bytes() == b"label"  # the live session is untouched
    assert not (session / "checkpoints").exists()
    moved = staging.commit(staged, session)
    assert sorted(p.as_posix() for p in moved) == ["checkpoints/round_1.safetensors", "labels/case_3.npz"]
    assert (session / "checkpoints" / "round_1.safetensors").read_bytes() == b"weights"
    assert (session / "state.json").read_text().replace(" ", "").replace("\n", "") == '{"rounds":[1]}'
    assert (session / ".lock").read_text().startswith(f"pid {os.getpid()} ")  # the committer held the live lock,
    # and the worker's lock file was not copied over it
    staging.discard(staged)
    assert (session / "pool" / "case.npz").read_bytes() == b"pool"  # shared file survives the discard


def test_commit_waits_for_the_live_sessions_writer(tmp_path):
    """A CLI `label` holding the live session: the staged round is not copied in under it."""
    from LongitudinalALLib.core.errors import SessionError

    session, staged = _session(tmp_path / "live"), tmp_path / "staged"
    staging.stage(session, staged)
    (staged / "state.json").write_text('{"rounds": [1]}')
    before = (session / "state.json").read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path[:0] = sys.argv[2:]; from LongitudinalALLib.active.session_lock import SessionLock; "
        "l = SessionLock(sys.argv[1]); print('held', flush=True); time.sleep(30)"), str(session), *sys.path],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SessionError, match="in use by another process"):
            staging.commit(staged, session, wait=0.2)
        assert (session / "state.json").read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
    staging.commit(staged, session, wait=5)
    assert (session / "state.json").read_text().strip().startswith('{"rounds"')
