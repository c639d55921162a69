"""End to end on real MRML: run, view, label, accept, bad input, retrain, .mrb, reopen, continue.

Runs the real prepare/model/strategy/training code with small settings
(3 mm slices, 64 px, a tiny U-Net, one epoch) on the bundled sample pair.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")

import scene_testdata  # noqa: E402

from LongitudinalALLib.active import triage  # noqa: E402
from LongitudinalALLib.active.store import SessionStore  # noqa: E402
from LongitudinalALLib.core.errors import CancelledError, InputError  # noqa: E402
from LongitudinalALLib.jobs.worker import WorkerProcess  # noqa: E402
from LongitudinalALLib.scene import headless, labels, outputs, viewer, volumes  # noqa: E402
from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic, RunOptions  # noqa: E402

OPTIONS = RunOptions(spacing_mm=3.0, size=64, prepare={"n4": False}, strategy="entropy_mean", k=4,
                     model_config={"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1},
                     init_weights="scratch", device="cpu",
                     train={"epochs": 1, "batch_size": 4, "steps_per_epoch": 2, "crop_size": None,
                            "augment": None, "min_epochs": 1})


def _pair_files(tmp_path):
    found = scene_testdata.sample_pair_files()
    return found if found else scene_testdata.write_pair(tmp_path / "pair")


def _draw_on_slice(logic, suggestion, radius_vox: int = 3) -> np.ndarray:
    """Paint a small disk around the candidate point on the baseline grid (what a user does); returns (K,J,I)."""
    reference = logic.reference_volume()
    ijk = np.linalg.inv(volumes.ijk_to_ras(reference)) @ np.array([*suggestion.ras, 1.0])
    i, j, k = np.rint(ijk[:3]).astype(int)
    dims = reference.GetImageData().GetDimensions()
    mask = np.zeros(dims[::-1], np.uint8)
    jj, ii = np.mgrid[0:dims[1], 0:dims[0]]
    mask[k][(jj - j) ** 2 + (ii - i) ** 2 <= radius_vox ** 2] = 1
    current = labels.export_segment(logic.node("segmentation"), outputs.LESION_SEGMENT, reference)
    labels.write_segment(logic.node("segmentation"), outputs.LESION_SEGMENT, np.maximum(current, mask), reference)
    return mask


@pytest.fixture(scope="module")
def run_state(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("logic")
    files = _pair_files(tmp)
    hs = headless.create_headless_slicer(str(tmp / "cache"))
    baseline = volumes.load_volume(files[0], hs.scene, "baseline")
    followup = volumes.load_volume(files[1], hs.scene, "follow-up")
    logic = LongitudinalALSceneLogic(hs.scene, hs.app, work_root=tmp / "work")
    stages = []
    suggestions = logic.run(baseline, followup, OPTIONS, progress=lambda s, f, m="": stages.append(s))
    return {"hs": hs, "logic": logic, "suggestions": suggestions, "stages": stages, "tmp": tmp,
            "baseline": baseline, "followup": followup}


def test_the_prediction_segment_is_the_lesion_mask_step_of_the_probability_map(run_state):
    """What the user sees as "model prediction" is model.lesion_mask's step, not a raw voxel threshold."""
    from LongitudinalALLib.model.lesion_mask import lesion_mask_from_slices

    logic = run_state["logic"]
    session = logic._session()
    case = session.case(run_state["suggestions"][0].case_id)
    probs = sitk.GetArrayFromImage(sitk.ReadImage(str(logic.work_dir / "maps" / "probability.nrrd")))
    stored = sitk.GetArrayFromImage(sitk.ReadImage(str(logic.work_dir / "maps" / "lesion_mask.nrrd")))
    slices = case.geometry.to_slices(probs.astype(np.float32), order=1)
    np.testing.assert_array_equal(stored > 0, lesion_mask_from_slices(slices, case.foreground, case.geometry) > 0)
    shown = labels.export_segment(logic.node("segmentation"), outputs.PREDICTION_SEGMENT, logic.reference_volume())
    np.testing.assert_array_equal(shown > 0, stored > 0)


def test_run_creates_outputs_and_shows_the_first_suggestion(run_state):
    logic, hs, suggestions = run_state["logic"], run_state["hs"], run_state["suggestions"]
    assert len(suggestions) == OPTIONS.k and [s.rank for s in suggestions] == [1, 2, 3, 4]
    assert "Suggesting" in run_state["stages"]
    for role in ("transform", "registered", "difference", "score", "table", "points", "segmentation"):
        assert logic.node(role) is not None, role
    assert logic.node("difference").GetDisplayNode().GetColorNode().GetName() == outputs.DIVERGING_NAME
    assert logic.node("table").GetNumberOfRows() == OPTIONS.k
    # the table shows the pair's triage score (issue 15): the model's new-lesion probability of this follow-up
    table = logic.node("table").GetTable()
    column = list(outputs.TABLE_COLUMNS).index("pair P(new lesion)")
    shown = {table.GetValue(r, column).ToDouble() for r in range(OPTIONS.k)}
    session = logic._session()
    case = session.case(suggestions[0].case_id)
    probs = sitk.GetArrayFromImage(sitk.ReadImage(str(logic.work_dir / "maps" / "probability.nrrd")))
    expected = triage.pair_probability(case.geometry.to_slices(probs.astype(np.float32), order=1), case.foreground)
    assert len(shown) == 1 and 0.0 <= shown.pop() <= 1.0
    assert table.GetValue(0, column).ToDouble() == pytest.approx(expected, abs=0.05)
    assert logic.node("points").GetNumberOfControlPoints() == OPTIONS.k
    # the registered follow-up is on the (prepared) baseline grid
    prepared = sitk.ReadImage(str(logic.work_dir / "prepared" / "baseline.nrrd"))
    assert logic.node("registered").GetImageData().GetDimensions() == prepared.GetSize()
    first = suggestions[0]
    red = hs.app.GetSliceLogicByLayoutName("Red")
    assert red.GetSliceOffset() == pytest.approx(first.slice_ras[2], abs=1e-6)
    assert red.GetSliceCompositeNode().GetBackgroundVolumeID() == logic.node("registered").GetID()
    assert red.GetSliceCompositeNode().GetForegroundVolumeID() == logic.node("difference").GetID()
    # what the Red view shows is that slice of the registered follow-up
    red.GetSliceCompositeNode().SetForegroundOpacity(0.0)
    xy2ras = viewer.xy_to_ras(hs.app, "Red")
    corners = xy2ras @ np.array([[0, 0, 0, 1], [255, 0, 0, 1], [0, 255, 0, 1], [255, 255, 0, 1]], float).T
    np.testing.assert_allclose(corners[2], first.slice_ras[2], atol=1e-6)  # the view is that axial plane
    registered = volumes.node_to_sitk(logic.node("registered"))
    scene_testdata.assert_view_shows(hs.app, "Red", logic.node("registered"), registered)
    red.GetSliceCompositeNode().SetForegroundOpacity(0.5)
    # the candidate point lies on the suggested slice
    k = (np.linalg.inv(volumes.ijk_to_ras(logic.reference_volume())) @ [*first.ras, 1.0])[2]
    assert k == pytest.approx(first.slice_index, abs=1e-6)


def test_accept_stores_labels_and_survives_a_deleted_segmentation(run_state):
    logic = run_state["logic"]
    first = logic.show_suggestion(0)
    drawn = _draw_on_slice(logic, first)
    accepted = logic.accept_current()
    assert accepted.status == "accepted" and accepted.extra["lesion_pixels"] > 0
    assert logic.node("table").GetCellText(0, list(outputs.TABLE_COLUMNS).index("status")) == "accepted"
    assert logic.current_index == 1  # moved on to the next pending suggestion
    session = SessionStore.open_recovered(logic.work_dir / "session")[0]
    case = session.case(first.case_id)
    row = session.position(first.case_id, first.slice_index)
    stored = session.label(first.case_id, first.slice_index)
    np.testing.assert_array_equal(stored, (case.geometry.to_slices(drawn.astype(np.float32), order=0)[row] > 0.5))
    second = logic.accept_current()  # nothing drawn on that slice: "no new lesion"
    assert session.__class__.open(logic.work_dir / "session").label(second.case_id, second.slice_index).sum() == 0

    # the user deletes the segmentation mid-session: clear error, no label lost, recreated on demand
    run_state["hs"].scene.RemoveNode(logic.node("segmentation"))
    with pytest.raises(InputError, match="segmentation was deleted"):
        logic.accept_current()
    assert len(SessionStore.open_recovered(logic.work_dir / "session")[0].labels()) == 2
    logic.show_suggestion(0)
    again = labels.read_label_slice(logic.node("segmentation"), logic.reference_volume(), case.geometry, row)
    np.testing.assert_array_equal(again, stored)
    run_state["accepted"] = {(first.case_id, first.slice_index): stored, (second.case_id, second.slice_index): None}


def test_bad_inputs_are_clear_errors_before_any_work(run_state, tmp_path):
    logic, hs = run_state["logic"], run_state["hs"]
    calls = []
    guarded = LongitudinalALSceneLogic(hs.scene, hs.app, tmp_path, runner=lambda *a: calls.append(a) or {})
    label_map = volumes.sitk_to_node(sitk.Image(8, 8, 8, sitk.sitkUInt8), hs.scene, "mask", label_map=True)
    with pytest.raises(InputError, match="label map"):
        guarded.run(run_state["baseline"], label_map, OPTIONS)
    far = sitk.Image(20, 20, 20, sitk.sitkFloat32) + 1.0
    far.SetOrigin((900.0, 900.0, 900.0))
    with pytest.raises(InputError, match="do not overlap"):
        guarded.run(run_state["baseline"], volumes.sitk_to_node(far, hs.scene, "far"), OPTIONS)
    gone = volumes.sitk_to_node(volumes.node_to_sitk(run_state["followup"]), hs.scene, "copy")
    hs.scene.RemoveNode(gone)
    with pytest.raises(InputError, match="deleted"):
        guarded.run(run_state["baseline"], gone, OPTIONS)
    assert calls == []
    assert len(SessionStore.open_recovered(logic.work_dir / "session")[0].labels()) == 2  # nothing lost


def test_cancelled_training_in_the_worker_keeps_the_last_good_state(run_state, tmp_path):
    logic = run_state["logic"]
    work = tmp_path / "copy"
    shutil.copytree(logic.work_dir, work)
    spec = logic.train_spec() | {"work_dir": str(work), "train": dict(OPTIONS.train, epochs=200, steps_per_epoch=50)}
    proc = WorkerProcess("train", spec).start()
    seen = []
    while not proc.poll(lambda s, f, m="": seen.append(s)):
        if "Training" in seen:
            proc.cancel()
        time.sleep(0.05)
    assert isinstance(proc.error, CancelledError)
    session = SessionStore.open_recovered(work / "session")[0]
    assert session.rounds == [] and len(session.labels()) == 2
    assert not list((work / "session" / "checkpoints").glob("*.safetensors"))


def test_retrain_save_reopen_and_continue(run_state, tmp_path):
    logic = run_state["logic"]
    result = logic.retrain()
    assert result["train"]["epochs_run"] == 1 and result["round"] == 1
    new = logic.suggestions
    assert len(new) == OPTIONS.k and not ({(s.case_id, s.slice_index) for s in new} & set(run_state["accepted"]))
    mrb = logic.save_bundle(tmp_path / "session.mrb")

    fresh = headless.create_headless_slicer(str(tmp_path / "cache2"))
    reopened = LongitudinalALSceneLogic(fresh.scene, fresh.app, work_root=tmp_path / "work2")
    assert reopened.load_bundle(mrb) == new
    assert reopened.work_dir != logic.work_dir and reopened.work_dir.is_dir()
    session = SessionStore.open_recovered(reopened.work_dir / "session")[0]
    assert session.round_number == 1 and len(session.labels()) == 2
    for (case_id, index), label in run_state["accepted"].items():
        got = session.label(case_id, index)
        assert got.sum() == 0 if label is None else np.array_equal(got, label)
    # the labels are also in the reopened segmentation, on the baseline grid
    (case_id, index), label = next((k, v) for k, v in run_state["accepted"].items() if v is not None)
    case = session.case(case_id)
    seg = reopened.node("segmentation")
    got = labels.read_label_slice(seg, reopened.reference_volume(), case.geometry, session.position(case_id, index))
    np.testing.assert_array_equal(got, label)
    # continue: next suggestion, label it, accept
    shown = reopened.step(1)
    red = fresh.app.GetSliceLogicByLayoutName("Red")
    assert red.GetSliceOffset() == pytest.approx(shown.slice_ras[2], abs=1e-6)
    _draw_on_slice(reopened, shown)
    reopened.accept_current()
    assert len(SessionStore.open_recovered(reopened.work_dir / "session")[0].labels()) == 3
    # the restored session still scores (the maps left out of the bundle are rebuilt)
    labelled = {(s.case_id, s.slice_index) for s in reopened.suggestions if s.status == "accepted"}
    fresh_suggestions = reopened.resuggest()
    assert len(fresh_suggestions) == OPTIONS.k
    assert not ({(s.case_id, s.slice_index) for s in fresh_suggestions} & (labelled | set(run_state["accepted"])))
    assert (reopened.work_dir / "maps" / "uncertainty.nrrd").is_file()
