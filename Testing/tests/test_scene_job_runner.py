"""The Logic's background job, the path the panel takes: start, poll, apply, cancel (real worker processes).

Covers review D3 (a cancelled round commits nothing), D6 (a failing apply never
leaves the panel busy), D14 (a cancel is an outcome, not an error), D16 (a job
that ends after File > Close Scene is not applied to the next scene), "Run
becomes Cancel while a job runs", and the runner gaps left by slicer-app: a
cancelled Run leaves the session's inputs and overrides as they were, a failed apply leaves no new node.

Every Run starts from the run's shared registration of the pair (conftest ``registered_sample_pair``, as
``initial_transform``): they test the runner, not registration. A Run that registers for real in a worker
process is the module self-test's (test_scene_module_selftest), in-process test_scene_logic's (issue 23).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from scene_testdata import with_registration  # noqa: E402
from test_scene_logic import OPTIONS  # noqa: E402

from LongitudinalALLib.active.loop import ActiveLoop
from LongitudinalALLib.active.store import SessionStore  # noqa: E402
from LongitudinalALLib.scene import headless, labels, volumes  # noqa: E402
from LongitudinalALLib.scene.job_runner import CANCELLED, DONE, FAILED  # noqa: E402
from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic  # noqa: E402
from LongitudinalALLib.scene.session_scene import get_json, get_node  # noqa: E402


@pytest.fixture(scope="module")
def ran(tmp_path_factory, registered_sample_pair):
    tmp = tmp_path_factory.mktemp("runner")
    *files, tfm = registered_sample_pair
    hs = headless.create_headless_slicer(str(tmp / "cache"))
    baseline = volumes.load_volume(files[0], hs.scene, "baseline")
    followup = volumes.load_volume(files[1], hs.scene, "follow-up")
    logic = LongitudinalALSceneLogic(hs.scene, hs.app, work_root=tmp / "work")
    jobs = logic.jobs
    jobs.start_run(baseline, followup, with_registration(OPTIONS, tfm))
    during = jobs.state(has_suggestions=False)
    outcome = jobs.wait()
    return {"hs": hs, "logic": logic, "jobs": jobs, "during": during, "outcome": outcome,
            "baseline": baseline, "followup": followup}


def _finished_in_child(jobs) -> None:
    """Block until the worker has sent the job's result (waiting, not yet applied by the runner)."""
    handle, deadline = jobs._job[2], time.monotonic() + 600
    while not handle.poll():
        assert time.monotonic() < deadline, "the worker never finished the job"
        time.sleep(0.05)


def _accept_one(logic) -> None:
    first = logic.suggestions[0]
    session = logic._session()
    case = session.case(first.case_id)
    label = np.zeros(case.images.shape[2:], np.uint8)
    label[20:26, 20:26] = 1
    labels.write_label_slice(logic.node("segmentation"), logic.reference_volume(), case.geometry,
                             session.position(first.case_id, first.slice_index), label)
    logic.show_suggestion(0)
    logic.accept_current()


@pytest.mark.slow
def test_run_applies_its_result_and_the_panel_returns_to_run(ran):
    assert ran["during"].run_text == "Cancel" and ran["during"].run_enabled  # Run became Cancel
    assert ran["outcome"].status == DONE, ran["outcome"].message
    logic, jobs = ran["logic"], ran["jobs"]
    assert len(logic.suggestions) == OPTIONS.k and logic.node("segmentation") is not None
    after = jobs.state(has_suggestions=True)
    assert (after.run_text, after.run_enabled, after.labelling_enabled) == ("Run", True, True)
    assert "registration" in jobs.log_text() and "Mapping 100%" in jobs.log_text()  # progress reached the log
    assert "prepare job" in jobs.last_log  # the worker log is kept and names the job
    assert logic.status()["device"] == "cpu"  # the device used is shown in the panel
    assert json.loads((logic.work_root / "devices.json").read_text())["devices"][-1] == "cpu"  # for the next start


@pytest.mark.slow
def test_a_failing_apply_ends_the_job_and_keeps_the_previous_session(ran, registered_sample_pair):
    logic, jobs = ran["logic"], ran["jobs"]
    before = logic.work_dir
    jobs.start_run(ran["baseline"], ran["followup"], with_registration(OPTIONS, registered_sample_pair[2]))
    work = jobs._job[1]["work_dir"]
    _finished_in_child(jobs)
    shutil.rmtree(f"{work}/prepared")  # e.g. the temp folder was cleaned while the job ran
    outcome = jobs.wait()
    assert outcome.status == FAILED and "prepare" in outcome.message and "\n" not in outcome.message
    assert not jobs.busy and jobs.state(True).run_text == "Run"  # usable again (D6)
    assert logic.work_dir == before and not shutil.os.path.exists(work)  # nothing half-made is kept


def test_a_cancelled_run_leaves_the_inputs_and_overrides_of_the_last_run(ran):
    """The panel's options are the user's (kept as set); the session's inputs and overrides stay the last run's."""
    logic, jobs = ran["logic"], ran["jobs"]
    before = get_json(logic.param, "engine")
    other = dataclasses.replace(OPTIONS, k=OPTIONS.k + 3, strategy="random", seed=7)
    jobs.start_run(ran["followup"], ran["baseline"], other)  # swapped inputs, other options
    jobs.cancel()
    assert jobs.wait().status == CANCELLED
    assert get_json(logic.param, "engine") == before and logic.options.seed == OPTIONS.seed
    assert logic.options.k == OPTIONS.k + 3 and logic.options.strategy == "random"  # what the panel now shows
    assert get_node(logic.param, "baseline") is ran["baseline"]
    logic.set_options(OPTIONS)


@pytest.mark.slow
def test_a_failed_prepare_apply_leaves_no_new_node_in_the_scene(ran, registered_sample_pair):
    logic, jobs, scene = ran["logic"], ran["jobs"], ran["hs"].scene
    scene.RemoveNode(logic.node("transform"))  # e.g. the user deleted it: the next apply makes a new one
    before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
    jobs.start_run(ran["baseline"], ran["followup"], with_registration(OPTIONS, registered_sample_pair[2]))
    work = jobs._job[1]["work_dir"]
    _finished_in_child(jobs)
    shutil.os.remove(f"{work}/prepared/followup_registered.nrrd")  # fails after the transform node was made
    outcome = jobs.wait()
    assert outcome.status == FAILED
    assert {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())} == before
    assert logic.node("registered") is not None and len(logic.suggestions) == OPTIONS.k  # the last run stays


def test_a_job_that_ends_after_the_scene_was_closed_is_not_applied(tmp_path, registered_sample_pair):
    *files, tfm = registered_sample_pair
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    logic = LongitudinalALSceneLogic(hs.scene, hs.app, work_root=tmp_path / "work")
    jobs = logic.jobs
    jobs.start_run(*(volumes.load_volume(f, hs.scene, r) for f, r in zip(files, ("baseline", "follow-up"))),
                   with_registration(OPTIONS, tfm))
    work = jobs._job[1]["work_dir"]
    hs.scene.Clear(0)  # File > Close Scene while the job runs
    outcome = jobs.wait()
    assert outcome.status == CANCELLED and outcome.error is None
    assert "scene was closed" in outcome.message and "\n" not in outcome.message
    assert logic.suggestions == [] and logic.node("segmentation") is None  # nothing in the new scene
    assert not shutil.os.path.exists(work) and jobs.state(False).run_text == "Run"


@pytest.mark.slow
def test_a_train_round_cancelled_before_it_was_applied_commits_nothing(ran):
    logic, jobs = ran["logic"], ran["jobs"]
    _accept_one(logic)
    session_dir = logic.work_dir / "session"
    state_before = (session_dir / "state.json").read_bytes()
    jobs.start_train()
    staged = jobs._job[1]["staged"]
    _finished_in_child(jobs)  # the child trained and wrote its round: only the parent may commit it
    jobs.cancel()
    outcome = jobs.wait()
    assert outcome.status == CANCELLED and outcome.error is None  # not shown as an error (D14)
    assert (session_dir / "state.json").read_bytes() == state_before
    assert SessionStore.open_recovered(session_dir)[0].rounds == []
    assert not list((session_dir / "checkpoints").glob("*.safetensors"))
    assert not shutil.os.path.exists(staged)
    assert jobs.state(True).run_text == "Run"


@pytest.mark.slow
def test_a_finished_train_round_is_committed_and_applied(ran):
    logic, jobs = ran["logic"], ran["jobs"]
    jobs.start_train()
    staged = jobs._job[1]["staged"]
    outcome = jobs.wait()
    assert outcome.status == DONE, outcome.message
    session = SessionStore.open_recovered(logic.work_dir / "session")[0]
    assert session.round_number == 1 and ActiveLoop(session).current_model() is not None
    assert (logic.work_dir / "maps" / "probability.nrrd").is_file()
    assert not shutil.os.path.exists(staged)
    assert len(logic.suggestions) == OPTIONS.k
    assert get_json(logic.param, "lastTraining")["device"] == "cpu"  # the round record names where it ran
