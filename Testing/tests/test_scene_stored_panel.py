"""The "Stored sessions" section: list work folders, delete one after one confirmation, never the open one.

Real MRML (slicer-core): the open session is the one the scene's parameter node names.
"""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

import scene_sessions  # noqa: E402

from LongitudinalALLib.active.store import SessionStore  # noqa: E402
from LongitudinalALLib.core.errors import InputError, SessionError  # noqa: E402
from LongitudinalALLib.imaging.pairing import pair_slices  # noqa: E402
from LongitudinalALLib.scene import headless, persistence, stored_panel  # noqa: E402
from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic  # noqa: E402
from LongitudinalALLib.scene.session_scene import set_value  # noqa: E402


def _stored(root, labels: int, rounds: int):
    """A real session folder with ``labels`` answers and ``rounds`` committed rounds (dummy weights)."""
    import SimpleITK as sitk

    folder = persistence.new_work_folder(root)
    baseline, followup = scene_sessions.volume_pair()
    case = pair_slices(baseline, followup, sitk.Cast(baseline > 0, sitk.sitkUInt8), "case", size=32, spacing_mm=2.0)
    with SessionStore.create(folder / "session", [case], init_weights="scratch") as store:
        store.add_labels(("case", p.slice_index, np.zeros((32, 32), np.uint8)) for p in case.provenance[:labels])
        for _ in range(rounds):
            store.commit_round(lambda path: path.write_bytes(b"\0" * 3000))
    return folder


@pytest.fixture
def logic(tmp_path):
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    logic = LongitudinalALSceneLogic(hs.scene, hs.app, work_root=tmp_path / "work")
    logic.older, logic.opened = _stored(logic.work_root, 14, 2), _stored(logic.work_root, 3, 0)
    set_value(logic.param, "sessionDir", str(logic.opened))
    return logic


def test_the_list_shows_name_date_rounds_labels_size_and_marks_the_open_session(logic):
    rows = stored_panel.listing(logic)
    assert {folder for folder, _ in rows} == {logic.older, logic.opened}
    older = next(line for folder, line in rows if folder == logic.older)
    assert older.startswith("session-001") and "2 rounds" in older and "14 labels" in older and "KB" in older
    assert "open in this scene" not in older
    assert "open in this scene" in next(line for folder, line in rows if folder == logic.opened)


def test_removal_asks_once_and_deletes_only_after_yes(logic):
    rows = stored_panel.listing(logic)
    index = [folder for folder, _ in rows].index(logic.older)
    asked = []
    assert stored_panel.remove(logic, rows, index, lambda text: asked.append(text) or False) == ""
    assert logic.older.is_dir() and len(asked) == 1 and "session-001" in asked[0]
    message = stored_panel.remove(logic, rows, index, lambda text: asked.append(text) or True)
    assert not logic.older.exists() and len(asked) == 2 and "session-001" in message and "freed" in message


def test_the_open_session_and_no_selection_are_refused_in_one_line_without_asking(logic):
    rows = stored_panel.listing(logic)
    index = [folder for folder, _ in rows].index(logic.opened)
    asked = []
    with pytest.raises(SessionError) as info:
        stored_panel.remove(logic, rows, index, lambda text: asked.append(text) or True)
    assert "open in this scene" in str(info.value) and "\n" not in str(info.value)
    assert logic.opened.is_dir() and asked == []
    with pytest.raises(InputError):
        stored_panel.remove(logic, rows, -1, lambda text: True)
