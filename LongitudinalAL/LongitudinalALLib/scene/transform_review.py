"""A registration the QC flags, reviewed in Slicer: warn, let the user correct it, re-pair from it.

Why: the CLI stops a flagged pair (exit 2) and offers ``--initial-transform``;
in Slicer the same pair is shown with a warning, the follow-up is put under the
"Follow-up to baseline" transform node so that editing the node in the
Transforms module moves it visibly, and "Re-pair" saves the edited node (MRML's
own transform storage: Slicer's RAS/LPS and resampling conventions) and runs
prepare from it without registering again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.scene.session_scene import get_value, set_value

WARNING_PARAM = "registrationWarning"


def qc_warning(qc: dict[str, Any] | None) -> str:
    """The panel's warning for a prepare job's QC record; "" when the registration passed."""
    if not qc or not qc.get("failed"):
        return ""
    problems = "; ".join(qc.get("problems") or []) or qc.get("message", "the QC flagged it")
    return (f"Registration looks wrong: {problems}. Correct the 'Follow-up to baseline' transform in the "
            "Transforms module (the follow-up moves with it), then press Re-pair.")


def save_transform(node, path: str | Path) -> Path:
    """Write a (possibly user-edited) transform node as an ITK file with MRML's own storage node."""
    import slicer

    if node is None:
        raise InputError("The 'Follow-up to baseline' transform was deleted from the scene.",
                         "Press Run to register the pair again.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = slicer.vtkMRMLTransformStorageNode()
    storage.SetFileName(str(path))
    if not storage.WriteData(node):
        raise InputError(f"The transform could not be written to {path}.", "Check that the folder can be written.")
    return path


class detached:
    """Context: ``volume`` temporarily without its parent transform (export the original geometry)."""

    def __init__(self, volume) -> None:
        self.volume, self.parent_id = volume, None

    def __enter__(self):
        if self.volume is not None:
            self.parent_id = self.volume.GetTransformNodeID()
            self.volume.SetAndObserveTransformNodeID(None)
        return self.volume

    def __exit__(self, *exc: Any) -> None:
        if self.volume is not None:
            self.volume.SetAndObserveTransformNodeID(self.parent_id)


def apply_qc(logic, qc: dict[str, Any] | None) -> str:
    """Store the panel warning of a finished prepare job; under a flag, the follow-up is put under
    the transform node, so that an edit in the Transforms module moves it visibly."""
    warning = qc_warning(qc)
    set_value(logic.param, WARNING_PARAM, warning)
    followup, transform = logic.node("followup"), logic.node("transform")
    if warning and followup is not None and transform is not None:
        followup.SetAndObserveTransformNodeID(transform.GetID())
    return warning


def warning(logic) -> str:
    return get_value(logic.param, WARNING_PARAM) or ""


def start_repair(logic) -> Path:
    """Save the (edited) transform node and start prepare from it, without registering; returns the .tfm."""
    baseline, followup = logic.node("baseline"), logic.node("followup")
    if baseline is None or followup is None:
        raise InputError("The baseline or follow-up volume of the last run is gone from the scene.",
                         "Load them again and press Run.")
    path = save_transform(logic.node("transform"), logic.work_dir / "inputs" / "edited_transform.tfm")
    options = logic.options
    options.prepare = {**options.prepare, "initial_transform": str(path)}
    with detached(followup):  # the export must be the original follow-up: prepare applies the transform
        logic.jobs.start_run(baseline, followup, options)
    return path
