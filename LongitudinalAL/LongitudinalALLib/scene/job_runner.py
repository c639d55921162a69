"""The module's background job, owned by the Logic: start, poll, apply, cancel.

Why: the Widget only wires buttons to these calls and shows ``state()``, so the
path the panel takes is the path the tests take (SlicerNNUnet's split). Every
outcome ends the job, even when putting a result into the scene fails, so the
panel is never left busy; a cancel is an outcome of its own, not an error, and
commits nothing (a cancelled prepare leaves no session, a cancelled training
round stays in its staged copy, see :mod:`.staging`).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from LongitudinalALLib.active.suggestions import PENDING
from LongitudinalALLib.core.errors import CancelledError, LongitudinalALError
from LongitudinalALLib.core.progress import ProgressCallback, RemainingTime
from LongitudinalALLib.jobs import staging
from LongitudinalALLib.jobs.kept_worker import KeptWorker
from LongitudinalALLib.scene.pace import Pace
from LongitudinalALLib.scene.scene_rollback import SceneRollback

log = logging.getLogger(__name__)
DONE, FAILED, CANCELLED = "done", "failed", "cancelled"
LOG_LINES = 500  # progress lines kept for the log panel


def model_in_use_note(logic) -> str:
    """The round guard's sentence on which model is in use and why, to end a round's outcome line
    (empty when no guard ran, e.g. round 1 from scratch)."""
    reason = logic.model_in_use
    return f" {reason}" if reason else ""


@dataclass
class JobOutcome:
    job: str                  # "prepare" or "train"
    status: str               # DONE, FAILED or CANCELLED
    message: str              # one line for the status label or the error dialog
    error: Exception | None = None


@dataclass
class PanelState:
    """What the panel shows; the Widget copies it onto its buttons."""

    run_text: str             # "Run", or "Cancel" while a job runs
    run_enabled: bool
    labelling_enabled: bool   # Accept, Previous, Next (also while a round trains in the background)
    retrain_enabled: bool = False


Launcher = Callable[[str, dict], Any]  # (job, spec) -> started handle with poll/cancel/result/error/log_tail


class JobRunner:
    def __init__(self, scene_logic, launch: Launcher | None = None, worker: KeptWorker | None = None) -> None:
        """``launch``: starts a job and returns its handle; by default jobs go to ``worker``, one process
        kept for the session (:mod:`..jobs.kept_worker`: torch is imported once, not once a round)."""
        self.logic = scene_logic
        self.worker = worker
        self.launch = launch or self._launch_in_worker
        self._job: tuple[str, dict, Any] | None = None
        self._closes_at_start = 0  # the logic's scene-close count when the job started
        self._after_accept = False  # an Accept whose repack and round start wait for the timer's step
        self.pace = Pace()  # her pace: a background round trains for the time she still needs (scene/pace.py)
        self._started_at = 0.0
        self.lines: list[str] = []
        self.last_log = ""
        self.remaining = RemainingTime()

    @property
    def log_dir(self) -> Path:
        return Path(self.logic.work_root) / "logs"

    def _launch_in_worker(self, job: str, spec: dict):
        if self.worker is None:  # started with the first job (Run or round), reused by the next
            self.worker = KeptWorker(log_dir=self.log_dir)
        return self.worker.submit(job, spec)

    def shutdown(self) -> None:
        """The scene is closed or the module cleaned up: cancel the job and end the idle worker."""
        self.cancel()
        if self.worker is not None:
            self.worker.close()

    @property
    def busy(self) -> bool:
        return self._job is not None

    # ------------------------------------------------------------ start
    def start_run(self, baseline, followup, options=None) -> None:
        """Check and export the inputs (errors raise here, before anything starts), then prepare."""
        self._start("prepare", self.logic.run_spec(baseline, followup, options))

    def start_train(self, background: bool = False) -> None:
        """A training round in a staged copy; ``background``: started by Accept, labelling goes on meanwhile."""
        spec = self.logic.train_spec()
        spec["staged"] = str(Path(spec["work_dir"]) / "staging" / f"train-{uuid.uuid4().hex[:8]}")
        spec["background"] = background
        budget = self.pace.round_seconds(sum(s.status == PENDING for s in self.logic.suggestions))
        if background and budget is not None:  # the round's budget is her time on the batch
            spec["train"] = {**spec["train"], "max_seconds": min(budget, spec["train"].get("max_seconds") or budget)}
        if self.busy:
            raise LongitudinalALError(f"A {self._job[0]} job is already running.", "Wait for it, or press Cancel.")
        with self.logic._session(write=True):  # the round's labels: exactly those committed now (hard links, ms)
            staging.stage(Path(spec["work_dir"]) / "session", Path(spec["staged"]) / "session")
        spec["staged_by_parent"] = True
        try:
            self._start("train", spec)
        except BaseException:
            staging.discard(Path(spec["staged"]))
            raise

    def accept(self):
        """The panel's Accept: store the label (on disk when this returns) and show the next suggestion.

        The rest waits for the timer's next step (:meth:`idle_step`, within ``POLL_MS``): repacking
        the scene's archive and starting a round on the labels so far, so the click itself does
        only what the clinician sees (issue 25: every click answers within 0.1 s).
        """
        suggestion = self.logic.accept_current(persist=False)
        self._after_accept = True
        self.pace.accepted()
        return suggestion

    def idle_step(self) -> None:
        """After an Accept: repack the archive, then train on the labels so far unless a round is running."""
        if not self._after_accept:
            return
        self._after_accept = False
        self.logic.persist()
        self.keep_training()

    @property
    def has_idle_work(self) -> bool:
        """Whether the timer must still run :meth:`idle_step` (an Accept was not followed up yet)."""
        return self._after_accept

    def keep_training(self) -> bool:
        """Start a background round when none runs and some label is not trained on yet; True if started."""
        from LongitudinalALLib.scene.background import untrained_labels

        if self.busy or not untrained_labels(self.logic._session()):
            return False
        self.start_train(background=True)
        return True

    def _start(self, job: str, spec: dict) -> None:
        if self.busy:
            raise LongitudinalALError(f"A {self._job[0]} job is already running.", "Wait for it, or press Cancel.")
        self.lines = [f"{job} started"]
        self.remaining.restart()  # each job estimates afresh
        self._closes_at_start = getattr(self.logic, "scene_closes", 0)
        self._job = (job, spec, self.launch(job, spec))
        self._started_at = time.monotonic()
        log.info("LongitudinalAL: %s job started", job)

    # ------------------------------------------------------------ run
    def poll(self, progress: ProgressCallback | None = None) -> JobOutcome | None:
        """The timer's step: the work an Accept left (:meth:`idle_step`), then the job's messages; the
        outcome once the job ended (the job is then over), else None."""
        try:
            self.idle_step()
        except Exception as err:  # noqa: BLE001 - the panel shows it like any failed job
            log.exception("LongitudinalAL: starting a round after Accept failed")
            return self._outcome("train", FAILED, str(err) if isinstance(err, LongitudinalALError) else
                                 f"Could not start a training round ({type(err).__name__}: {err}).", err)
        if self._job is None:
            return None
        job, spec, handle = self._job

        def on_progress(stage: str, fraction: float, message: str = "") -> None:
            message = self.remaining.describe(stage, fraction, message)  # the panel shows the estimate
            self.lines = (self.lines + [f"{stage} {100 * fraction:3.0f}% {message}".rstrip()])[-LOG_LINES:]
            if progress is not None:
                progress(stage, fraction, message)

        if not handle.poll(on_progress):
            return None
        self._job = None  # whatever happens below, the panel is free again
        self.last_log = handle.log_tail() if hasattr(handle, "log_tail") else ""
        if getattr(self.logic, "scene_closes", 0) != self._closes_at_start:  # D16: never into the next scene
            self._discard(job, spec)
            return self._outcome(job, CANCELLED, f"The scene was closed while the {job} job ran, so its result "
                                 "was not applied. Press Run to start again in this scene.")
        if handle.error is not None:
            self._discard(job, spec)
            if isinstance(handle.error, CancelledError):
                return self._outcome(job, CANCELLED, f"The {job} job was cancelled; nothing was changed.")
            return self._outcome(job, FAILED, str(handle.error), handle.error)
        rollback = SceneRollback(self.logic.scene, self.logic.param)
        try:
            if job == "prepare":
                self.logic.apply_prepare_result(spec, handle.result)
            else:
                self.logic.apply_train_result(self._commit_train(spec, handle.result), bool(spec.get("background")))
        except Exception as err:  # noqa: BLE001 - any failure to apply must still end the job
            rollback.undo()  # no half-made nodes; the scene keeps pointing at the last good session
            self._discard(job, spec)
            self._repack_previous()
            log.exception("LongitudinalAL: applying the %s result failed", job)
            detail = " ".join(str(err).split())[:300]
            message = str(err) if isinstance(err, LongitudinalALError) else (
                f"Could not put the {job} result into the scene ({type(err).__name__}: {detail}). "
                "Press Run again; the details are in the log panel and the Python console.")
            return self._outcome(job, FAILED, message, err)
        self.pace.batch_shown()
        if job == "train":
            self.pace.round_ended(time.monotonic() - self._started_at, spec["train"].get("max_seconds"))
        in_use = model_in_use_note(self.logic) if job == "train" else ""
        if spec.get("background"):  # the next round takes the labels accepted meanwhile
            news = self.logic.round_news.get("message", f"The {job} job finished.")
            return self._outcome(job, DONE, news + in_use +
                                 (" Training on the newer labels." if self.keep_training() else ""))
        return self._outcome(job, DONE, f"The {job} job finished.{in_use}")

    def _outcome(self, job: str, status: str, message: str, error: Exception | None = None) -> JobOutcome:
        self.lines = (self.lines + [message])[-LOG_LINES:]
        log.info("LongitudinalAL: %s", message)
        return JobOutcome(job, status, message, error)

    def cancel(self) -> None:
        """Stop the running job and its process tree; the next ``poll`` reports it as cancelled."""
        if self._job is not None:
            self.lines.append("cancelling...")
            self._job[2].cancel()

    def wait(self, progress: ProgressCallback | None = None, interval_s: float = 0.05) -> JobOutcome:
        """Poll until the job ends (the module's self-test; the panel polls from a timer)."""
        while (outcome := self.poll(progress)) is None:
            if not self.busy:
                raise LongitudinalALError("No job is running.", "Press Run first.")
            time.sleep(interval_s)
        return outcome

    def state(self, has_suggestions: bool) -> PanelState:
        training = self.busy and self._job[0] == "train"  # labels accepted meanwhile join the next round
        return PanelState("Cancel" if self.busy else "Run", True, has_suggestions and (training or not self.busy),
                          has_suggestions and not self.busy)

    def log_text(self) -> str:
        """Progress lines of the current or last job, then the end of its worker log."""
        text = "\n".join(self.lines)
        return text + ("\n--- worker log ---\n" + self.last_log if self.last_log.strip() else "")

    # ------------------------------------------------------------ commit
    def _commit_train(self, spec: dict, result: dict) -> dict:
        """Move a staged training round into the session and its maps into the work directory."""
        staged = result.get("staged")
        if not staged:
            return result
        work, staged = Path(spec["work_dir"]), Path(staged)
        staging.merge_round(staged / "session", work / "session")
        maps = {}
        for name, path in result["maps"].items():
            maps[name] = str(work / "maps" / Path(path).name)
            Path(maps[name]).parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, maps[name])
        os.replace(staged / "suggestions.json", work / "suggestions.json")
        staging.discard(staged)
        return {**result, "maps": maps}

    def _discard(self, job: str, spec: dict) -> None:
        """Remove what an unfinished job wrote: the staged round, or the new session's folder."""
        if job == "train":
            staging.discard(Path(spec["staged"]) if spec.get("staged") else None)
        elif job == "prepare" and Path(spec["work_dir"]) != self._current_work_dir():
            shutil.rmtree(spec["work_dir"], ignore_errors=True)

    def _repack_previous(self) -> None:
        """The scene's archive may already hold the failed result: pack the last good session again."""
        if self._current_work_dir() is None:
            return
        try:
            self.logic.persist()
        except Exception:  # noqa: BLE001 - the failure itself is what the user is told about
            log.exception("LongitudinalAL: repacking the previous session failed")

    def _current_work_dir(self) -> Path | None:
        try:
            return self.logic.work_dir
        except LongitudinalALError:
            return None
