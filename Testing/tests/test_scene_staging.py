"""Staged training copies: unchanged files are shared; a finished round is merged into the live session."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from LongitudinalALLib.core import atomic
from LongitudinalALLib.jobs import staging


def _session(root):
    """A real session (one small case, one label) with a stranger's lock file, as the live folder."""
    import SimpleITK as sitk

    from LongitudinalALLib.active.store import SessionStore
    from LongitudinalALLib.imaging.pairing import pair_slices

    image = sitk.GetImageFromArray(np.pad(np.ones((6, 12, 12), np.float32), 2))
    case = pair_slices(image, image, sitk.Cast(image > 0, sitk.sitkUInt8), "case", size=16, spacing_mm=1.0)
    with SessionStore.create(root, [case], init_weights="scratch") as store:
        store.add_label("case", 3, np.zeros((16, 16), np.uint8))
    (root / ".lock").write_text("pid 1 (the live session's writer)")
    return root


def _train_in(staged):
    """What a finished round leaves in its staged copy: a checkpoint and its record, plus a relabel."""
    from LongitudinalALLib.active.store import SessionStore

    with SessionStore.open(staged, write=True) as store:
        store.add_label("case", 3, np.ones((16, 16), np.uint8))  # atomic replace: a new inode
        store.commit_round(lambda path: atomic.write_bytes(path, b"weights"))


def test_stage_shares_files_and_merge_moves_only_the_new_round(tmp_path):
    session = _session(tmp_path / "session")
    staged = staging.stage(session, tmp_path / "staging" / "session")
    assert os.path.samefile(staged / "pool" / "case.npz", session / "pool" / "case.npz")
    assert not (staged / ".lock").exists()  # a lock is per folder: the staged writer takes its own
    _train_in(staged)
    assert (staged / ".lock").exists()
    live_label = (session / "labels" / "case_3.npz").read_bytes()
    assert not list((session / "checkpoints").glob("*"))  # the live session is untouched
    moved = staging.merge_round(staged, session)
    assert [p.parts[0] for p in moved] == ["checkpoints"]  # never a label: the live answers are the truth
    assert (session / moved[0]).read_bytes() == b"weights"
    assert (session / "labels" / "case_3.npz").read_bytes() == live_label
    assert (session / ".lock").read_text().startswith(f"pid {os.getpid()} ")  # the merger held the live lock,
    # and the worker's lock file was not copied over it
    staging.discard(staged)
    assert (session / "pool" / "case.npz").is_file()  # shared file survives the discard


def test_merge_waits_for_the_live_sessions_writer(tmp_path):
    """A CLI `label` holding the live session: the staged round is not merged in under it."""
    from LongitudinalALLib.active.store import SessionStore
    from LongitudinalALLib.core.errors import SessionError

    session, staged = _session(tmp_path / "live"), tmp_path / "staged"
    staging.stage(session, staged)
    _train_in(staged)
    before = (session / "state.json").read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path[:0] = sys.argv[2:]; from LongitudinalALLib.active.session_lock import SessionLock; "
        "l = SessionLock(sys.argv[1]); print('held', flush=True); time.sleep(30)"), str(session), *sys.path],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SessionError, match="in use by another process"):
            staging.merge_round(staged, session, wait=0.2)
        assert (session / "state.json").read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
    staging.merge_round(staged, session, wait=5)
    assert SessionStore.open(session).round_number == 1
