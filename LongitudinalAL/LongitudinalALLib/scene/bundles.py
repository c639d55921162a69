"""Saving and reopening a LongitudinalAL scene: the session travels inside the .mrb.

A collaborator that :class:`.logic.LongitudinalALSceneLogic` owns (``logic.bundles``):
it reads the logic's scene, parameter node, work folders and suggestions through
their public names, and opens the session for writing through the callable the
logic hands it. The scene is untrusted input: its archive is unpacked into a
fresh folder under the work root and checked before use.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from LongitudinalALLib.active.suggestions import Suggestion
from LongitudinalALLib.core.errors import InputError, LongitudinalALError, SessionError
from LongitudinalALLib.scene import persistence, session_scene
from LongitudinalALLib.scene.session_scene import get_value, set_value

#: work-directory files left out of the .mrb: inputs and maps are in the scene as nodes already,
#: and the jobs never read them again (suggest rewrites the maps)
ARCHIVE_EXCLUDE = ("inputs/", "maps/", "prepared/followup_registered")

if TYPE_CHECKING:
    from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic


class SceneBundles:
    """Pack the session into the scene, save/load .mrb bundles, restore and list stored sessions.

    ``open_writer()`` opens the logic's session for writing (with its crash recovery), as a context manager.
    """

    def __init__(self, logic: "LongitudinalALSceneLogic", open_writer: Callable[[], Any]) -> None:
        self.logic = logic
        self._open_writer = open_writer

    def persist(self) -> None:
        """Repack what changed of the session into the scene's archive nodes, so any .mrb written now carries it.

        Called after every commit (run, accept, retrain, resuggest): Slicer's File > Save
        writes the scene with ``vtkMRMLScene::WriteToMRB`` and fires no event we could pack on.
        Only the changed parts are packed (:data:`.session_scene.PARTS`): an Accept repacks the
        labels and state, kilobytes, never the slice pool or the model.
        """
        session_scene.pack_session(self.logic.scene, self.logic.param, self.logic.work_dir, ARCHIVE_EXCLUDE)

    def save_bundle(self, path: str | Path) -> Path:
        """Save the scene with the session inside as a .mrb (written atomically)."""
        path = Path(path)
        self.persist()
        path.parent.mkdir(parents=True, exist_ok=True)
        # WriteToMRB names the folder and scene inside after the file: the temporary copy has the final
        # name, in a temporary folder beside it (same disk, so the move is atomic)
        folder = Path(tempfile.mkdtemp(prefix=f".{path.stem}-saving-", dir=path.parent))
        tmp = folder / path.name
        try:
            if not self.logic.scene.WriteToMRB(str(tmp)):
                raise SessionError(f"Could not write the scene bundle {path}.", "Check free disk space and permissions.")
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return path

    def load_bundle(self, path: str | Path) -> list[Suggestion]:
        """Replace the scene by a saved .mrb and restore its session (work continues)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"Scene bundle not found: {path}.", "Check the path.")
        if not self.logic.scene.ReadFromMRB(str(path), True):
            raise InputError(f"Could not read the scene bundle {path}.", "Is it a Slicer .mrb file?")
        self.logic.ensure_session()
        return self.logic.suggestions

    def ensure_session(self) -> Path | None:
        """After a scene import: reuse the recorded folder only if it is ours and matches the archive, else unpack.

        The scene is untrusted: a ``sessionDir`` outside the work root, or whose content differs
        from the archive, is never opened (so never modified); a fresh copy is unpacked instead.
        """
        param = session_scene.parameter_node(self.logic.scene, create=False)
        if param is None or session_scene.archive_node(param) is None:
            return None
        reused = persistence.reusable_session_dir(param, self.logic.work_root, ARCHIVE_EXCLUDE)
        if reused is not None:
            self.logic.attach_session()  # a crash may have left unfinished writes there (no click pays it)
            return reused
        set_value(param, "sessionDir", "")  # never left pointing at a folder we did not vet, even if unpacking fails
        return self.logic.restore_session()

    def stored_sessions(self) -> list[persistence.StoredSession]:
        """Sessions kept in the work root (newest first), for the user to review and delete."""
        return persistence.stored_sessions(self.logic.work_root)

    def remove_stored_session(self, folder: str | Path) -> int:
        """Delete a stored session folder (never the one open in this scene); returns the bytes freed."""
        current = get_value(self.logic.param, "sessionDir")
        return persistence.remove_stored_session(self.logic.work_root, Path(folder), Path(current) if current else None)

    def restore_session(self) -> Path:
        """Unpack the session stored in the scene into a new folder under the work root, and check it."""
        param = self.logic.param
        work = session_scene.unpack_session(param, self.logic.work_root, self.logic.archive_limits)
        try:
            self._open_writer().close()  # validates it and recovers a copy saved mid-write
        except Exception as err:  # a scene file is untrusted: whatever is wrong, keep nothing, say one line
            shutil.rmtree(work, ignore_errors=True)
            set_value(param, "sessionDir", "")
            reason = err.problem if isinstance(err, LongitudinalALError) else f"{type(err).__name__}: {err}"
            raise SessionError(f"The session stored in this scene is not a valid LongitudinalAL session "
                               f"({reason})", "Reopen an earlier copy of the scene.") from None
        self.persist()  # the parts now describe this folder, so the next Accept repacks only what it changes
        self.logic.attach_session()  # recovered just above: this settles memory (gc_pause)
        return work
