"""A registration the QC flags, reviewed in the module: warning, edit in place, re-pair without registering (issue 12).

Real MRML and the Logic's job runner with real worker processes, the path the panel takes.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")

from scene_testdata import with_registration  # noqa: E402
from test_scene_logic import OPTIONS  # noqa: E402

from LongitudinalALLib.scene import headless, transform_review, volumes  # noqa: E402
from LongitudinalALLib.scene.job_runner import DONE  # noqa: E402
from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic  # noqa: E402


def _shift(node, dx_mm: float) -> None:
    """Move the transform node in place, as the Transforms module's sliders do."""
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetMatrixTransformToParent(m)
    m.SetElement(0, 3, m.GetElement(0, 3) + dx_mm)
    node.SetMatrixTransformToParent(m)


@pytest.mark.slow
def test_an_edited_transform_is_saved_and_paired_from_without_registering(tmp_path, registered_sample_pair):
    """The first Run starts from the session's shared registration of the pair (conftest
    ``registered_sample_pair``): what is under test is the review and the re-pair, not registration."""
    *files, tfm = registered_sample_pair
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    baseline = volumes.load_volume(files[0], hs.scene, "baseline")
    followup = volumes.load_volume(files[1], hs.scene, "follow-up")
    logic = LongitudinalALSceneLogic(hs.scene, hs.app, work_root=tmp_path / "work")
    logic.jobs.start_run(baseline, followup, with_registration(OPTIONS, tfm))
    assert logic.jobs.wait().status == DONE
    assert logic.status()["registration_warning"] == "" and followup.GetTransformNodeID() is None
    good = sitk.ReadTransform(str(logic.work_dir / "prepared" / "transform.tfm"))

    _shift(logic.node("transform"), 9.0)  # the user's edit (here: a wrong one, 9 mm off)
    first_work = logic.work_dir
    path = transform_review.start_repair(logic)
    assert followup.GetTransformNodeID() is None  # the export saw the original follow-up, and it is restored
    outcome = logic.jobs.wait()
    assert outcome.status == DONE, outcome.message
    assert logic.work_dir != first_work and path.parent.parent == first_work
    used = sitk.ReadTransform(str(logic.work_dir / "prepared" / "transform.tfm"))
    given = sitk.ReadTransform(str(path))
    for p in ((10.0, -20.0, 30.0), (-40.0, 5.0, -12.0)):
        np.testing.assert_allclose(used.TransformPoint(p), given.TransformPoint(p), atol=1e-4)  # not re-registered
        assert np.linalg.norm(np.subtract(used.TransformPoint(p), good.TransformPoint(p))) == pytest.approx(9.0, abs=0.2)
    # 9 mm off: the QC flags it, the panel shows the warning and the follow-up now moves with the transform
    warning = logic.status()["registration_warning"]
    assert warning.startswith("Registration looks wrong: ") and "press Re-pair" in warning
    assert followup.GetTransformNodeID() == logic.node("transform").GetID()


def test_the_warning_is_empty_for_a_passing_qc_and_names_the_problems_otherwise():
    assert transform_review.qc_warning({"failed": False, "problems": ["x"]}) == ""
    assert transform_review.qc_warning(None) == ""
    text = transform_review.qc_warning({"failed": True, "problems": ["mask Dice 0.41 < 0.85", "NCC 0.2 < 0.5"]})
    assert text.startswith("Registration looks wrong: mask Dice 0.41 < 0.85; NCC 0.2 < 0.5.")
