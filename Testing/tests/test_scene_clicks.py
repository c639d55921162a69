"""What a panel click may do on the GUI thread (issue 25, item 1; timings: benchmarks/panel/bench_clicks.py).

- Show, Next, Previous and Accept never open the slice pool's arrays (tens of MB decompressed for
  one geometry value the pool's JSON holds).
- Accept repacks only what it changed (labels, state) into the scene, yet a plain ``WriteToMRB``
  right after it carries the new label.
- The archive holds the current round's checkpoint only, so it stays bounded over the rounds.
- Run writes the inputs for the worker uncompressed.
- The panel's Accept stores the label and returns; the timer's next step repacks the archive and
  starts the round on the labels so far.
- Crash recovery (it reads every label file) runs when a session is attached (Run applied, a scene
  opened), never in a click, and still repairs what a crash left before the first write.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import types

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

import scene_sessions  # noqa: E402
from test_scene_archive import open_like_slicer  # noqa: E402
from test_scene_logic import _draw_on_slice  # noqa: E402

from LongitudinalALLib.active import pool_store, store  # noqa: E402
from LongitudinalALLib.scene import headless, session_scene  # noqa: E402


@pytest.fixture()
def logic(tmp_path):
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    logic = scene_sessions.start_session(hs, tmp_path / "work", "axial", k=4)
    yield logic
    hs.close()


def _paint_current(logic) -> None:
    """A disk on the shown suggestion's baseline slice, as a user paints it."""
    _draw_on_slice(logic, logic.suggestions[logic.current_index])


def _fake_round(logic, payload: bytes) -> None:
    """A committed round with a checkpoint of ``payload`` (what a training round leaves), then persisted."""
    with logic._session(write=True) as session:
        session.commit_round(lambda path: path.write_bytes(payload))
    logic.persist()


def _archive_chars(logic) -> int:
    """Characters of every session archive text node (what a .mrb carries of the session)."""
    scene = logic.scene
    nodes = (scene.GetNthNodeByClass(i, "vtkMRMLTextNode") for i in range(scene.GetNumberOfNodesByClass("vtkMRMLTextNode")))
    return sum(len(node.GetText() or "") for node in nodes if node.GetName().startswith(session_scene.ARCHIVE_NAME))


def test_clicks_never_open_the_slice_pool(logic, monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("a click decompressed the slice pool")

    monkeypatch.setattr(pool_store, "load_case", no_pool)
    logic.show_suggestion(1)
    logic.step(1)
    logic.step(-1)
    _paint_current(logic)
    accepted = logic.accept_current()
    assert accepted.extra["lesion_pixels"] > 0  # the painted slice was read, from the JSON's geometry


def test_accept_repacks_only_what_it_changed_and_a_plain_write_to_mrb_carries_it(logic, tmp_path):
    pool = logic.param.GetNodeReference("lal.sessionArchive.pool")
    assert pool is not None and pool.GetText()
    pool_mtime = pool.GetMTime()
    _paint_current(logic)
    accepted = logic.accept_current()
    assert pool.GetMTime() == pool_mtime, "Accept repacked the slice pool"
    mrb = tmp_path / "plain.mrb"
    assert logic.scene.WriteToMRB(str(mrb))  # File > Save: no event, no save_bundle
    reopened, errors = open_like_slicer(tmp_path, mrb, tmp_path / "elsewhere")
    assert errors == []
    label = reopened._session().label(accepted.case_id, accepted.slice_index)
    assert label.sum() == accepted.extra["lesion_pixels"] > 0


def test_the_archive_keeps_the_current_checkpoint_only_and_stays_bounded(logic, tmp_path):
    rng = np.random.default_rng(0)
    sizes = []
    for _ in range(4):
        _fake_round(logic, rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes())  # incompressible
        sizes.append(_archive_chars(logic))
    assert max(sizes) - min(sizes) < 100_000, f"the archive grows with the rounds: {sizes}"
    mrb = tmp_path / "rounds.mrb"
    logic.save_bundle(mrb)
    reopened, errors = open_like_slicer(tmp_path, mrb, tmp_path / "elsewhere")
    assert errors == []
    session = reopened._session()
    assert session.round_number == 4
    kept = sorted(p.name for p in (reopened.work_dir / "session" / "checkpoints").iterdir())
    assert kept == [session.rounds[-1].checkpoint.split("/")[-1]]  # the model the session continues from


def test_a_scene_saved_with_the_whole_session_in_one_node_still_opens(logic, tmp_path):
    """Scenes written before the archive was split hold every file in the main node."""
    from LongitudinalALLib.scene import archive
    from LongitudinalALLib.scene.bundles import ARCHIVE_EXCLUDE

    data, digest = archive.pack(logic.work_dir, ARCHIVE_EXCLUDE)
    main = logic.param.GetNodeReference(session_scene.ARCHIVE_ROLE)
    main.SetText(__import__("base64").b64encode(data).decode("ascii"))
    main.SetAttribute(session_scene.DIGEST_ATTRIBUTE, digest)
    for _, role, _ in session_scene.PARTS[:-1]:
        logic.scene.RemoveNode(logic.param.GetNodeReference(role))
    mrb = tmp_path / "old.mrb"
    assert logic.scene.WriteToMRB(str(mrb))
    reopened, errors = open_like_slicer(tmp_path, mrb, tmp_path / "elsewhere")
    assert errors == [] and reopened.suggestions == logic.suggestions
    assert reopened._session().case_ids == logic._session().case_ids
    reopened.show_suggestion(0)


def test_run_writes_the_inputs_uncompressed(logic):
    spec = logic.run_spec(logic.node("baseline"), logic.node("followup"), scene_sessions.options("axial"))
    try:
        for role in ("baseline", "followup"):
            header = open(spec[role], "rb").read(400).split(b"\n\n")[0]
            assert b"encoding: raw" in header, header
    finally:
        shutil.rmtree(spec["work_dir"], ignore_errors=True)


def _count_recoveries(monkeypatch) -> list[str]:
    """Each crash recovery the session store runs from now on, by folder."""
    calls, reconcile = [], store.reconcile

    def counted(root, *args, **kwargs):
        calls.append(str(root))
        return reconcile(root, *args, **kwargs)

    monkeypatch.setattr(store, "reconcile", counted)
    return calls


def test_accept_never_runs_crash_recovery_after_run_or_a_scene_open(logic, tmp_path, monkeypatch):
    recoveries = _count_recoveries(monkeypatch)
    _paint_current(logic)
    logic.accept_current()  # the first write after Run
    assert recoveries == [], "Accept ran crash recovery"
    mrb = tmp_path / "saved.mrb"
    assert logic.scene.WriteToMRB(str(mrb))
    reopened, errors = open_like_slicer(tmp_path, mrb, logic.work_root)  # same work root: the folder is reused
    assert errors == [] and reopened.work_dir == logic.work_dir and len(recoveries) == 1  # on open
    _paint_current(reopened)
    reopened.accept_current()
    assert len(recoveries) == 1, "the first Accept after opening the scene ran crash recovery"


def test_a_label_half_written_before_a_crash_is_cleared_when_the_scene_opens(logic, tmp_path):
    _paint_current(logic)
    accepted = logic.accept_current()
    mrb = tmp_path / "saved.mrb"
    assert logic.scene.WriteToMRB(str(mrb))
    folder = logic.work_dir / "session" / "labels"
    written = (folder / f"{accepted.case_id}_{accepted.slice_index}.npz").read_bytes()
    fd, half = tempfile.mkstemp(prefix=".case_99.", suffix=".tmp.npz", dir=folder)  # killed mid-write
    with open(fd, "wb") as fh:
        fh.write(written[: len(written) // 2])
    reopened, errors = open_like_slicer(tmp_path, mrb, logic.work_root)
    assert errors == [] and reopened.work_dir == logic.work_dir
    assert not os.path.exists(half), "the unfinished write is still there after the scene opened"
    assert len(reopened.read_session().labels()) == 1  # the label committed before the crash is kept


def test_the_panels_accept_leaves_the_repack_and_the_round_to_the_timers_next_step(logic, tmp_path):
    launched = []
    logic.jobs.launch = lambda job, spec: launched.append(job) or types.SimpleNamespace(
        poll=lambda progress=None: False, cancel=lambda: None)  # a round that keeps running
    state = logic.param.GetNodeReference(session_scene.ARCHIVE_ROLE)  # labels and state.json
    packed = state.GetMTime()
    _paint_current(logic)
    accepted = logic.jobs.accept()  # the Widget's click
    assert logic.read_session().label(accepted.case_id, accepted.slice_index).sum() > 0  # on disk already
    assert launched == [] and state.GetMTime() == packed, "the click repacked the scene or started the round"
    assert logic.jobs.has_idle_work
    assert logic.jobs.poll() is None  # the panel's timer, within 200 ms
    assert launched == ["train"] and state.GetMTime() != packed and not logic.jobs.has_idle_work
    mrb = tmp_path / "after-the-step.mrb"
    assert logic.scene.WriteToMRB(str(mrb))  # File > Save after the step carries the label
    reopened, errors = open_like_slicer(tmp_path, mrb, tmp_path / "elsewhere")
    assert errors == [] and reopened.read_session().label(accepted.case_id, accepted.slice_index).sum() > 0


def test_a_background_round_trains_for_the_time_she_still_needs_for_the_batch(logic):
    from LongitudinalALLib.model.training import TrainConfig
    from LongitudinalALLib.scene import pace

    assert pace.RECIPE_CAP_S == TrainConfig().max_seconds
    launched = []
    logic.jobs.launch = lambda job, spec: launched.append(spec) or types.SimpleNamespace(
        poll=lambda progress=None: False, cancel=lambda: None)
    clock = [100.0]
    logic.jobs.pace = pace.Pace(clock=lambda: clock[0])
    logic.jobs.pace.batch_shown()
    clock[0] += 20.0  # she spends 20 s on the first suggestion
    _paint_current(logic)
    logic.jobs.accept()
    logic.jobs.poll()
    pending = sum(s.status == "pending" for s in logic.suggestions)
    assert pending == len(logic.suggestions) - 1
    assert launched[-1]["train"]["max_seconds"] == pytest.approx(pace.TRAIN_SHARE * 20.0 * pending, abs=0.1)
    logic.jobs.pace.round_ended(wall_s=50.0, capped_s=36.0)  # 14 s besides its capped steps
    clock[0] += 10.0
    logic.jobs.pace.batch_shown()  # a batch landing mid-label does not restart her clock
    clock[0] += 8.0
    logic.jobs.pace.accepted()  # gaps 20 s and 18 s: her pace is 19 s
    assert logic.jobs.pace.round_seconds(5) == pytest.approx(19.0 * 5 - 14.0)
