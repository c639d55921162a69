"""Issue 24 item 2: after a round the panel says which model is in use and why (the round guard's record)."""

import pytest

slicer = pytest.importorskip("slicer")

from LongitudinalALLib.scene import headless, session_scene  # noqa: E402
from LongitudinalALLib.scene.job_runner import model_in_use_note  # noqa: E402
from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic  # noqa: E402


def test_the_status_and_the_outcome_line_name_the_model_the_guard_kept(tmp_path):
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    logic = LongitudinalALSceneLogic(hs.scene, hs.app, work_root=tmp_path / "work")
    assert model_in_use_note(logic) == ""  # no round yet: nothing to say
    kept = ("Round 2's retrained model was worse than round 1's on 3 held-out labels (Dice 0.31 vs 0.35); "
            "round 1's model stays in use.")
    session_scene.set_value(logic.param, "lastTraining", {"model_in_use": kept, "guard": {"kept": "previous"}})
    assert logic.status()["model_in_use"] == kept
    assert model_in_use_note(logic) == f" {kept}"
