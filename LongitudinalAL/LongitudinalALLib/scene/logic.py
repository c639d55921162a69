"""LongitudinalALSceneLogic: everything the Slicer module's Logic does, testable without Qt.

The module's Logic delegates here. Heavy work (registration, scoring, training)
goes through a runner: in-process for headless use and tests, or a
:class:`LongitudinalALLib.jobs.kept_worker.KeptWorker` for the GUI (``*_spec`` builds the job,
``apply_*`` puts its result into the scene). Scene state lives in the
parameter node and the work directory (see :mod:`.session_scene`), so saving
the scene as .mrb and reopening it continues the session.
"""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from LongitudinalALLib.active.store import SessionStore
from LongitudinalALLib.active.suggestions import ACCEPTED, PENDING, Suggestion
from LongitudinalALLib.core import atomic
from LongitudinalALLib.core.errors import InputError, LongitudinalALError, SessionError
from LongitudinalALLib.core.progress import CancelToken, ProgressCallback
from LongitudinalALLib.jobs.worker import Runner, run_in_process
from LongitudinalALLib.scene import (
    archive,
    background,
    gc_pause,
    labels,
    outputs,
    panel_options,
    persistence,
    run_options,
    session_scene,
    transform_review,
    viewer,
    volumes,
)
from LongitudinalALLib.scene.bundles import SceneBundles
from LongitudinalALLib.scene.run_options import RunOptions
from LongitudinalALLib.scene.session_scene import get_json, get_node, get_value, set_node, set_value

__all__ = ["LongitudinalALSceneLogic", "RunOptions"]
log = logging.getLogger(__name__)


#: how a suggestion is shown: the difference map over the registered follow-up at this opacity
FOREGROUND_OPACITY = 0.5


class _CloseCounter:
    """Scene StartCloseEvent observer holding the logic weakly (no logic-scene cycle; a scene
    destroyed during garbage collection or at exit never calls into a half-freed logic)."""

    def __init__(self, logic) -> None:
        self.logic = weakref.ref(logic)

    def __call__(self, caller=None, event=None) -> None:
        ref = getattr(self, "logic", None)  # gone while Python shuts down (the scene fires on exit)
        logic = ref() if ref is not None else None
        if logic is None:
            return
        logic.scene_closes += 1
        if getattr(logic, "_jobs", None) is not None:
            logic._jobs.shutdown()  # its result could only go into the next scene; the idle worker exits
        gc_pause.release()  # what the session froze may be collected now


class LongitudinalALSceneLogic:
    def __init__(self, scene, app, work_root: str | Path | None = None, runner: Runner | None = None) -> None:
        self.scene, self.app = scene, app
        self.work_root = Path(work_root) if work_root else persistence.default_work_root()
        self.runner: Runner = runner or run_in_process
        self.archive_limits = archive.ArchiveLimits()  # caps for sessions restored from scene files
        self.scene_closes = 0  # File > Close Scene count: a job started before a close is never applied
        self._recovered_folders: set[str] = set()  # session folders this logic already ran recovery on
        self._geometries: dict[tuple[str, str], Any] = {}  # (session folder, case) -> SliceGeometry
        self.bundles = SceneBundles(self, lambda: self._session(write=True))  # .mrb save/load, stored sessions
        scene.AddObserver(scene.StartCloseEvent, _CloseCounter(self))

    # ------------------------------------------------------------ state
    @property
    def param(self):
        return session_scene.parameter_node(self.scene)

    @property
    def work_dir(self) -> Path:
        """The session folder; only ever one inside the work root (a scene may name any folder)."""
        value = get_value(self.param, "sessionDir")
        if not value:
            raise SessionError("No LongitudinalAL session in this scene.", "Select a baseline and a follow-up and press Run.")
        if not Path(value).resolve().is_relative_to(self.work_root.resolve()):
            raise SessionError(f"This scene names the session folder {value}, outside the work folder {self.work_root}.",
                               "Reopen the scene so its stored session is restored, or press Run to start anew.")
        return Path(value)

    @property
    def devices(self) -> tuple[str, ...]:
        """Compute devices this machine offers, best first (read without torch: panel_options)."""
        return panel_options.available_devices(self.work_root)

    @property
    def options(self) -> RunOptions:
        """The run options now: the panel's ``run`` pack (as the user left it) and the session's overrides."""
        return run_options.read(self.param, self.devices, self._engine())

    def _engine(self) -> RunOptions:
        """Defaults plus the overrides the last run kept with the session (tests, demo)."""
        return RunOptions(**get_json(self.param, "engine", {}))

    def set_options(self, options: RunOptions) -> None:
        """Set the panel's fields as a user would (headless callers: demo, tests); overrides wait for Run."""
        run_options.write(self.param, options, self.devices)

    def reset_unavailable_options(self) -> list[str]:
        """After a scene import and before the panel binds: values this machine does not offer are reset."""
        return run_options.sanitize(session_scene.parameter_node(self.scene, create=False), self.devices)

    @property
    def suggestions(self) -> list[Suggestion]:
        return session_scene.load_suggestions(self.param)[0]

    @property
    def current_index(self) -> int:
        return session_scene.load_suggestions(self.param)[1]

    def node(self, role: str):
        node = get_node(self.param, role)
        return node if node is not None and node.GetScene() is not None else None

    # ------------------------------------------------------------ bundles (the collaborator's, one line each)
    def persist(self) -> None:
        self.bundles.persist()

    def save_bundle(self, path: str | Path) -> Path:
        return self.bundles.save_bundle(path)

    def load_bundle(self, path: str | Path) -> list[Suggestion]:
        return self.bundles.load_bundle(path)

    def ensure_session(self) -> Path | None:
        return self.bundles.ensure_session()

    def restore_session(self) -> Path:
        return self.bundles.restore_session()

    def stored_sessions(self) -> list[persistence.StoredSession]:
        return self.bundles.stored_sessions()

    def remove_stored_session(self, folder: str | Path) -> int:
        return self.bundles.remove_stored_session(folder)

    @property
    def jobs(self):
        """The panel's background job (start, poll, apply, cancel): :class:`.job_runner.JobRunner`."""
        if getattr(self, "_jobs", None) is None:
            from LongitudinalALLib.scene.job_runner import JobRunner

            self._jobs = JobRunner(self)
        return self._jobs

    # ------------------------------------------------------------ run
    def run_spec(self, baseline, followup, options: RunOptions | None = None) -> dict[str, Any]:
        """Check the inputs, export them to the work directory; the spec of the "prepare" job.

        ``options``: set into the panel's fields first (headless callers); the panel itself passes None.
        """
        if options is not None:
            self.set_options(options)
        base = options if options is not None else self._engine()
        options = run_options.read(self.param, self.devices, base)
        volumes.validate_scalar_volume(baseline, "baseline")
        volumes.validate_scalar_volume(followup, "follow-up")
        if baseline is followup:
            raise InputError("The baseline and follow-up are the same volume.", "Select the later scan as follow-up.")
        volumes.check_overlap(baseline, followup)
        work = persistence.new_work_folder(self.work_root)
        paths = {}
        for role, node in (("baseline", baseline), ("followup", followup)):
            path = work / "inputs" / f"{role}.nrrd"
            with atomic.atomic_path(path) as tmp:
                sitk.WriteImage(volumes.node_to_sitk(node, role), str(tmp), False)  # read once: gzip costs seconds
            paths[role] = str(path)
        scene_inputs = {"baseline": baseline.GetID(), "followup": followup.GetID(), "engine": options.engine()}
        return self._spec(work, options) | paths | {"prepare": options.prepare_options(), "case_id": options.case_id,
                                                    "scene_inputs": scene_inputs}  # written only when applied

    def _spec(self, work: Path, options: RunOptions) -> dict[str, Any]:
        """The job's arguments, built from the options as they are now (never a copy frozen at Run)."""
        return {"work_dir": str(work), "device": options.device,
                "devices_file": str(self.work_root / panel_options.DEVICES_FILE), "train": dict(options.train),
                "session": {"strategy": options.strategy, "k": options.k, "seed": options.seed,
                            "model_config": options.model_config, "init_weights": options.init_weights}}

    def apply_prepare_result(self, spec: dict[str, Any], result: dict[str, Any]) -> list[Suggestion]:
        """Create the output nodes from a finished "prepare" job and show the first suggestion."""
        work = Path(spec["work_dir"])
        scene, param = self.scene, self.param
        inputs = spec.get("scene_inputs", {})
        for role in ("baseline", "followup"):
            set_node(param, role, scene.GetNodeByID(inputs.get(role) or ""))
        set_value(param, "engine", inputs.get("engine", {}))
        set_value(param, "sessionDir", str(work))
        from LongitudinalALLib.imaging.io import read_image
        from LongitudinalALLib.imaging.prepare import SCENE_FILES  # the prepared folder's names

        prepared = work / "prepared"
        set_node(param, "transform", outputs.update_transform_node(
            sitk.ReadTransform(str(prepared / SCENE_FILES["transform"])), scene, node=self.node("transform")))
        set_node(param, "registered", outputs.update_registered_volume(
            read_image(prepared / SCENE_FILES["followup_registered"]), scene, node=self.node("registered")))
        set_node(param, "difference", outputs.update_difference_volume(
            read_image(prepared / SCENE_FILES["difference"]), scene, node=self.node("difference")))
        transform_review.apply_qc(self, result.get("qc"))
        suggestions = self._apply_suggest_result(result)
        self.attach_session()
        return suggestions

    def _apply_suggest_result(self, result: dict[str, Any], keep_view: bool = False) -> list[Suggestion]:
        scene, param = self.scene, self.param
        reference = self.reference_volume()
        uncertainty = sitk.GetArrayFromImage(sitk.ReadImage(result["maps"]["uncertainty"]))
        set_node(param, "score", outputs.update_score_volume(uncertainty, reference, scene, "Uncertainty",
                                                             node=self.node("score")))
        segmentation = self.segmentation()
        lesions = sitk.GetArrayFromImage(sitk.ReadImage(result["maps"]["lesion_mask"]))  # model.lesion_mask's step
        labels.write_segment(segmentation, outputs.PREDICTION_SEGMENT, lesions, reference)
        suggestions = [Suggestion.from_dict(d) for d in result["suggestions"]]
        set_value(param, "round", str(result.get("round", 0)))
        set_value(param, "device", result.get("device", ""))
        if keep_view:  # a background round: the slice being painted stays where it is
            suggestions, news = background.merge_batch(*session_scene.load_suggestions(param), suggestions,
                                                       self._session(), result)
            set_value(param, "roundNews", news)
        self._store(suggestions, 0 if suggestions else -1)
        self.persist()
        if suggestions and not keep_view:
            self.show_suggestion(0)
        return suggestions

    def run(self, baseline, followup, options: RunOptions | None = None, progress: ProgressCallback | None = None,
            cancel: CancelToken | None = None) -> list[Suggestion]:
        """Register, pair, score and show the first suggestion (blocking)."""
        spec = self.run_spec(baseline, followup, options)
        return self.apply_prepare_result(spec, self.runner("prepare", spec, progress, cancel))

    # ------------------------------------------------------------ navigation and labels
    def reference_volume(self):
        """A live node on the prepared baseline grid (our outputs first: never under a user transform)."""
        for role in ("registered", "difference", "score", "baseline"):
            node = self.node(role)
            if node is not None and node.GetImageData() is not None:
                return node
        raise InputError("The baseline volume and the outputs on its grid were deleted from the scene.",
                         "Reload the baseline and press Run again; accepted labels are kept in the session.")

    def segmentation(self):
        """The "New lesions" segmentation; recreated with every accepted label if it was deleted."""
        node = self.node("segmentation")
        if node is not None:
            return node
        node = outputs.ensure_segmentation(self.reference_volume(), self.scene)
        set_node(self.param, "segmentation", node)
        self._restore_labels(node)
        return node

    def _restore_labels(self, segmentation) -> None:
        session = self._session()
        reference = self.reference_volume()
        for rec in session.labels():
            labels.write_label_slice(segmentation, reference, session.geometry(rec.case_id),
                                     session.position(rec.case_id, rec.slice_index),
                                     session.label(rec.case_id, rec.slice_index))

    def read_session(self):
        """The session on disk, read-only (no lock, never changes a file)."""
        return self._session()

    def _session(self, write: bool = False):
        """The session on disk: read-only (no lock, never changes a file) unless ``write``.

        A writer takes the session lock for as long as the returned object lives, so
        a click in the GUI never races a worker that is writing the same session. Crash
        recovery (which reads every label file) runs once per folder, when the session is
        attached (:meth:`attach_session`), so no click pays it; a folder not attached yet
        is recovered here, before this logic's first write to it.
        """
        folder = self.work_dir / "session"
        if not write:
            return SessionStore.open(folder)
        if str(folder) in self._recovered_folders:
            return SessionStore.open(folder, write=True)
        store, notes = SessionStore.open_recovered(folder)
        self._recovered_folders.add(str(folder))
        for note in notes:
            log.warning("LongitudinalAL: session recovery: %s", note)
        return store

    def attach_session(self) -> None:
        """The scene's session is now this one (Run applied, a scene opened): recover it and settle memory.

        Why here: the user is waiting for the session anyway, so crash recovery (it reads every
        label file, once per folder) is paid now, not in a click; and the objects alive now are
        frozen, so no full garbage collection walks them during a click (:mod:`.gc_pause`). If the session is busy
        (another writer holds its lock) or cannot be recovered, nothing is lost: the first write
        recovers it, or reports the problem, as before.
        """
        try:
            self._session(write=True).close()
        except LongitudinalALError as err:
            log.warning("LongitudinalAL: session not recovered on attach (%s); the first write will", err)
        gc_pause.settle()

    def _geometry(self, case_id: str, session=None):
        """The case's SliceGeometry, read once per session folder (a pool never changes once written)."""
        key = (str(self.work_dir), case_id)
        if key not in self._geometries:
            self._geometries[key] = (session or self._session()).geometry(case_id)
        return self._geometries[key]

    def _store(self, suggestions: list[Suggestion], current: int) -> None:
        session_scene.store_suggestions(self.param, suggestions, current)
        set_node(self.param, "table", outputs.update_suggestions_table(suggestions, self.scene, node=self.node("table")))
        set_node(self.param, "points", outputs.update_suggestion_points(suggestions, self.scene, node=self.node("points")))

    def show_suggestion(self, index: int) -> Suggestion:
        """Move the slice views to suggestion ``index`` (0-based) and remember it."""
        suggestions = self.suggestions
        if not 0 <= index < len(suggestions):
            raise InputError(f"There is no suggestion {index + 1} (there are {len(suggestions)}).",
                             "Pick one from the table, or press Retrain for new suggestions.")
        suggestion = suggestions[index]
        foreground = self.node("difference")
        background = self.node("registered") or self.node("followup")
        axis = self._geometry(suggestion.case_id).axis
        viewer.show_suggestion(self.app, suggestion, axis, background.GetID() if background else None,
                               foreground.GetID() if foreground else None, FOREGROUND_OPACITY, self.segmentation())
        set_value(self.param, "currentIndex", str(index))
        return suggestion

    def step(self, delta: int = 1) -> Suggestion:
        """Show the next (``delta=1``) or previous (``-1``) suggestion, wrapping around."""
        index = viewer.next_index(self.current_index, len(self.suggestions), delta)
        return self.show_suggestion(index)

    def accept_current(self, persist: bool = True) -> Suggestion:
        """Store the current slice of the "new lesion" segment as its label (empty = no new lesion).

        ``persist=False``: the label is on disk when this returns, but the scene's archive is
        repacked by the caller later (the panel: its timer's next step, off the click).
        """
        suggestions, index = session_scene.load_suggestions(self.param)
        if not 0 <= index < len(suggestions):
            raise InputError("No suggestion is shown.", "Press Run, or pick a suggestion first.")
        if self.node("segmentation") is None:
            raise InputError("The 'New lesions' segmentation was deleted, so this slice's label cannot be read.",
                             "Show the suggestion again to recreate it (accepted labels are restored), "
                             "draw the new lesion, then Accept.")
        suggestion = suggestions[index]
        with self._session(write=True) as session:
            row = suggestion.pool_row(session)  # the model row of the baseline slice the user sees
            label = labels.read_label_slice(self.node("segmentation"), self.reference_volume(),
                                            self._geometry(suggestion.case_id, session), row)
            session.add_label(suggestion.case_id, suggestion.slice_index, label)  # atomic, on disk now
        suggestion.status = ACCEPTED
        suggestion.extra["lesion_pixels"] = int(label.sum())
        pending = [i for i, s in enumerate(suggestions) if s.status == PENDING]
        following = next((i for i in pending if i > index), pending[0] if pending else index)
        self._store(suggestions, index)
        if persist:
            self.persist()
        if following != index:
            self.show_suggestion(following)
        return suggestion

    # ------------------------------------------------------------ retrain
    def train_spec(self) -> dict[str, Any]:
        if not self._session().labels():
            raise SessionError("No slice is accepted yet.", "Label and accept some suggested slices, then Retrain.")
        return self._spec(self.work_dir, self.options)

    def apply_train_result(self, result: dict[str, Any], keep_view: bool = False) -> list[Suggestion]:
        """Put a finished round into the scene; ``keep_view``: a background round (see :mod:`.background`)."""
        set_value(self.param, "lastTraining", result.get("train", {}))
        return self._apply_suggest_result(result, keep_view)

    @property
    def model_in_use(self) -> str:
        """Which model the suggestions come from, and why: the round guard's sentence (active/round_guard.py)."""
        return session_scene.get_json(self.param, "lastTraining", {}).get("model_in_use", "")

    @property
    def round_news(self) -> dict[str, Any]:
        """What the last background round changed, for the panel: round, trained_on, new, kept, message."""
        return session_scene.get_json(self.param, "roundNews", {})

    def retrain(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> dict[str, Any]:
        """Train one round on all accepted labels and refresh suggestions; returns the job result."""
        spec = self.train_spec()
        result = self.runner("train", spec, progress, cancel)
        self.apply_train_result(result)
        return result

    def resuggest(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None
                  ) -> list[Suggestion]:
        """New suggestions from the current model without training (e.g. after reopening a scene)."""
        return self._apply_suggest_result(self.runner("suggest", self._spec(self.work_dir, self.options),
                                                      progress, cancel))

    def status(self) -> dict[str, Any]:
        """Small summary for the panel: device, round, number of suggestions, current index."""
        param = session_scene.parameter_node(self.scene, create=False)
        if param is None:
            return {}
        return {"device": get_value(param, "device"), "round": get_value(param, "round"),
                "suggestions": len(self.suggestions), "current": self.current_index,
                "registration_warning": transform_review.warning(self),
                "model_in_use": self.model_in_use}
