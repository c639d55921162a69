"""The session lives in every .mrb the application writes, and a scene never points us at foreign folders.

- Slicer issue 11 / slicer-app review D2: File > Save is ``vtkMRMLScene::WriteToMRB`` and fires no
  StartSaveEvent, so the archive must already be current: saved with exactly that call, reopened
  with ``ReadFromMRB`` (the import observer, no panel), the labels and rounds come back.
- Reliability review D10: the scene's ``sessionDir`` is reused only inside the work root and
  only when its content matches the archive; a foreign folder is never modified.
- Reliability observation on ``run_spec``: new work folders never reuse an existing one.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

import scene_sessions  # noqa: E402
from test_scene_archive import open_like_slicer  # noqa: E402

from LongitudinalALLib.active.store import SessionStore  # noqa: E402
from LongitudinalALLib.core.errors import InputError, SessionError  # noqa: E402
from LongitudinalALLib.imaging.pairing import pair_slices  # noqa: E402
from LongitudinalALLib.jobs import jobs  # noqa: E402
from LongitudinalALLib.scene import archive, headless, labels, outputs, session_scene, volumes
from LongitudinalALLib.scene.bundles import ARCHIVE_EXCLUDE  # noqa: E402


def _small_session(folder, axis="axial"):
    """A real session store (pool on disk, no model needed) in ``folder``/session."""
    baseline, followup = scene_sessions.volume_pair()
    import SimpleITK as sitk

    case = pair_slices(baseline, followup, sitk.Cast(baseline > 0, sitk.sitkUInt8), "case", axis=axis, size=32,
                       spacing_mm=2.0)
    session = SessionStore.create(folder / "session", [case], init_weights="scratch")
    session.add_label("case", case.provenance[5].slice_index, np.zeros(case.images.shape[2:], np.uint8))
    return session


def _mrb_pointing_at(tmp, session_dir, packed_dir):
    """A real .mrb whose archive holds ``packed_dir`` and whose sessionDir names ``session_dir``."""
    hs = headless.create_headless_slicer(str(tmp / "cache-write"))
    param = session_scene.parameter_node(hs.scene)
    session_scene.pack_session(hs.scene, param, packed_dir)
    session_scene.set_value(param, "sessionDir", str(session_dir))
    mrb = tmp / "scene.mrb"
    assert hs.scene.WriteToMRB(str(mrb))
    return mrb


def _packed_and_foreign(tmp):
    """(a session to pack, someone's copy of it with an extra backup file, that copy's file tree)."""
    packed, foreign = tmp / "packed", tmp / "someone-else"
    _small_session(packed)
    shutil.copytree(packed, foreign)
    (foreign / "session" / "checkpoints").mkdir(exist_ok=True)
    (foreign / "session" / "checkpoints" / "my_backup.safetensors").write_bytes(b"precious")
    return packed, foreign, scene_sessions.tree(foreign)


def test_a_foreign_session_folder_named_by_the_scene_is_never_touched(tmp_path):
    packed, foreign, before = _packed_and_foreign(tmp_path)
    work_root = tmp_path / "work"
    logic, errors = open_like_slicer(tmp_path, _mrb_pointing_at(tmp_path, foreign, packed), work_root)
    assert errors == []
    assert logic.work_dir.parent == work_root and logic.work_dir.name.startswith("restored-packed-")
    logic._session()  # what every later action does (it reconciles the folder it opens)
    logic.ensure_session()  # a second import observer (the panel's) changes nothing either
    assert scene_sessions.tree(foreign) == before


def test_a_folder_inside_the_work_root_is_reused_only_when_it_matches_the_archive(tmp_path):
    work_root = tmp_path / "work"
    ours = work_root / "session-001"
    _small_session(ours)
    mrb = _mrb_pointing_at(tmp_path, ours, ours)
    logic, errors = open_like_slicer(tmp_path, mrb, work_root)
    assert errors == [] and logic.work_dir == ours.resolve()  # same content: reused, nothing unpacked
    assert sorted(p.name for p in work_root.iterdir()) == ["session-001"]

    SessionStore.open_recovered(ours / "session")[0].add_label("case", 7, np.ones((32, 32), np.uint8))  # now it differs
    before = scene_sessions.tree(ours)
    logic, errors = open_like_slicer(tmp_path, mrb, work_root)
    assert errors == [] and logic.work_dir != ours.resolve() and logic.work_dir.parent == work_root
    assert scene_sessions.tree(ours) == before
    assert len(SessionStore.open_recovered(logic.work_dir / "session")[0].labels()) == 1  # the archive's state


def test_new_runs_never_reuse_an_existing_work_folder(tmp_path):
    work_root = tmp_path / "work"
    kept = work_root / "session-002"  # session-001 was deleted by the user
    _small_session(kept)
    before = scene_sessions.tree(kept)
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    baseline, followup = scene_sessions.volume_pair()
    nodes = [volumes.sitk_to_node(image, hs.scene, name) for image, name in ((baseline, "b"), (followup, "f"))]
    from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic

    logic = LongitudinalALSceneLogic(hs.scene, hs.app, work_root=work_root)
    specs = [logic.run_spec(*nodes, scene_sessions.options("axial")) for _ in range(2)]
    folders = [spec["work_dir"] for spec in specs]
    assert len(set(folders)) == 2 and str(kept) not in folders
    assert scene_sessions.tree(kept) == before
    # and the prepare job refuses a folder that holds a session, before any work
    with pytest.raises(SessionError, match="already holds a session"):
        jobs.job_prepare(specs[0] | {"work_dir": str(kept), "baseline": "/nonexistent.nrrd"})
    assert scene_sessions.tree(kept) == before


def _paint_current(logic):
    """Paint a 3x3 patch on the baseline slice of the current suggestion; returns the suggestion."""
    s = logic.suggestions[logic.current_index]
    reference = logic.reference_volume()
    ijk = np.rint(np.linalg.inv(volumes.ijk_to_ras(reference)) @ np.array([*s.ras, 1.0])).astype(int)
    mask = np.zeros(reference.GetImageData().GetDimensions()[::-1], np.uint8)
    mask[ijk[2], ijk[1] - 1:ijk[1] + 2, ijk[0] - 1:ijk[0] + 2] = 1
    labels.write_segment(logic.node("segmentation"), outputs.LESION_SEGMENT, mask, reference)
    return s


def test_plain_write_to_mrb_carries_the_session_after_every_commit(tmp_path):
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    saves = []
    hs.scene.AddObserver(hs.scene.StartSaveEvent, lambda *a: saves.append(a))
    logic = scene_sessions.start_session(hs, tmp_path / "work", "axial", k=3)
    s = _paint_current(logic)
    logic.accept_current()
    label = SessionStore.open_recovered(logic.work_dir / "session")[0].label(s.case_id, s.slice_index)
    assert label.sum() > 0

    first = tmp_path / "after-accept.mrb"
    assert hs.scene.WriteToMRB(str(first))  # exactly what File > Save runs
    reopened, errors = open_like_slicer(tmp_path / "a", first, tmp_path / "work-a")
    assert errors == [] and reopened.work_dir.parent == tmp_path / "work-a"
    session = SessionStore.open_recovered(reopened.work_dir / "session")[0]
    np.testing.assert_array_equal(session.label(s.case_id, s.slice_index), label)
    assert reopened.suggestions == logic.suggestions and session.rounds == []

    logic.retrain()
    second = tmp_path / "after-retrain.mrb"
    assert hs.scene.WriteToMRB(str(second))
    reopened, errors = open_like_slicer(tmp_path / "b", second, tmp_path / "work-b")
    session = SessionStore.open_recovered(reopened.work_dir / "session")[0]
    assert errors == [] and session.round_number == 1 == SessionStore.open_recovered(logic.work_dir / "session")[0].round_number
    np.testing.assert_array_equal(session.label(s.case_id, s.slice_index), label)
    assert reopened.suggestions == logic.suggestions
    assert saves == []  # no save event was needed (Slicer fires none)


def test_work_root_is_stable_in_slicer_and_shared_elsewhere(tmp_path, monkeypatch):
    """Slicer-app review D13: no temporary folder per Logic; in Slicer, beside the user settings."""
    from types import SimpleNamespace

    from LongitudinalALLib.scene import persistence
    from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic

    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    monkeypatch.delenv(persistence.WORK_ROOT_ENV, raising=False)
    monkeypatch.delattr(slicer, "app", raising=False)
    first, second = (LongitudinalALSceneLogic(hs.scene, hs.app) for _ in range(2))
    assert first.work_root == second.work_root  # one root per process, not one per panel reload
    settings = tmp_path / "settings" / "Slicer.ini"  # what qSlicerCoreApplication.slicerUserSettingsFilePath gives
    monkeypatch.setattr(slicer, "app", SimpleNamespace(slicerUserSettingsFilePath=str(settings)), raising=False)
    assert LongitudinalALSceneLogic(hs.scene, hs.app).work_root == tmp_path / "settings" / "LongitudinalAL" / "sessions"
    monkeypatch.setenv(persistence.WORK_ROOT_ENV, str(tmp_path / "mine"))
    assert LongitudinalALSceneLogic(hs.scene, hs.app).work_root == tmp_path / "mine"


def test_stored_sessions_are_listed_and_removable_but_only_ours(tmp_path):
    from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic

    work_root = tmp_path / "work"
    old, current = work_root / "session-001", work_root / "session-002"
    _small_session(old)
    _small_session(current)
    foreign = tmp_path / "elsewhere" / "session-009"
    _small_session(foreign)
    before = scene_sessions.tree(foreign)
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    logic = LongitudinalALSceneLogic(hs.scene, hs.app, work_root=work_root)
    session_scene.set_value(logic.param, "sessionDir", str(current))
    listed = logic.stored_sessions()
    assert {s.folder.name for s in listed} == {"session-001", "session-002"}
    assert all(s.labels == 1 and s.rounds == 0 and s.size_bytes > 1000 for s in listed)
    for bad, words in ((current, "open in this scene"), (foreign, "outside"), (old / "session", "not a LongitudinalAL")):
        with pytest.raises(SessionError, match=words):
            logic.remove_stored_session(bad)
    assert logic.remove_stored_session(old) == listed[[s.folder for s in listed].index(old)].size_bytes
    assert [s.folder.name for s in logic.stored_sessions()] == ["session-002"]
    assert scene_sessions.tree(foreign) == before and (current / "session" / "state.json").is_file()


def test_a_refused_archive_leaves_no_pointer_to_the_foreign_folder(tmp_path):
    """D10 on the failure path: the bomb is refused, and later actions still never open the named folder."""
    packed, foreign, before = _packed_and_foreign(tmp_path)
    mrb = _mrb_pointing_at(tmp_path, foreign, packed)
    logic, errors = open_like_slicer(tmp_path, mrb, tmp_path / "work", archive.ArchiveLimits(max_entries=1))
    assert len(errors) == 1 and "limit 1" in errors[0]
    for action in (logic._session, logic.train_spec, logic.accept_current, logic.persist):
        with pytest.raises((SessionError, InputError)):
            action()
    session_scene.set_value(logic.param, "sessionDir", str(foreign))  # however it got there
    with pytest.raises(SessionError, match="outside the work folder"):
        logic._session()
    assert scene_sessions.tree(foreign) == before


def test_the_save_event_hook_is_harmless_and_never_packs_a_foreign_folder(tmp_path):
    from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic

    packed, foreign, before = _packed_and_foreign(tmp_path)
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    logic = LongitudinalALSceneLogic(hs.scene, hs.app, work_root=tmp_path / "work")
    assert logic.pack_for_save() is False  # no session
    session_scene.set_value(logic.param, "sessionDir", str(foreign))
    assert logic.pack_for_save() is False and session_scene.archive_node(logic.param) is None
    ours = tmp_path / "work" / "session-001"
    _small_session(ours)
    session_scene.set_value(logic.param, "sessionDir", str(ours))
    assert logic.pack_for_save() is True
    assert session_scene.archive_digest(logic.param) == session_scene.session_digest(ours, ARCHIVE_EXCLUDE)
    assert scene_sessions.tree(foreign) == before
