"""Session state in the scene: a parameter node plus the session directory as a zip.

The parameter node (``vtkMRMLScriptedModuleNode``, singleton tag
``LongitudinalAL``) holds the small state (session dir, current suggestion,
suggestions as JSON) and node references (which MRML renames safely on load).
The session directory itself (pool, labels, checkpoints, state.json) is zipped,
base64-encoded into a text node with a storage node, so it is written inside
the .mrb and unpacked again when the scene is reopened.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
import zipfile
from pathlib import Path

import slicer

from ..errors import SessionError
from .suggestions import Suggestion

MODULE_NAME = "LongitudinalAL"
ARCHIVE_NAME = "LongitudinalAL session archive"
ARCHIVE_ROLE = "lal.sessionArchive"
#: node reference roles used by the logic
ROLES = ("baseline", "followup", "registered", "difference", "score", "transform", "table", "points",
         "segmentation")


def parameter_node(scene, create: bool = True):
    """The module's singleton parameter node (the one Slicer's ScriptedLoadableModuleLogic uses)."""
    node = scene.GetSingletonNode(MODULE_NAME, "vtkMRMLScriptedModuleNode")
    if node is None and create:
        node = slicer.vtkMRMLScriptedModuleNode()
        node.SetSingletonTag(MODULE_NAME)
        node.SetName(MODULE_NAME)
        node.SetModuleName(MODULE_NAME)
        node = scene.AddNode(node)
    return node


def get_node(param, role: str):
    return param.GetNodeReference(f"lal.{role}")


def set_node(param, role: str, node) -> None:
    param.SetNodeReferenceID(f"lal.{role}", node.GetID() if node is not None else None)


def get_value(param, key: str, default: str = "") -> str:
    value = param.GetParameter(f"lal.{key}")
    return value if value else default


def set_value(param, key: str, value) -> None:
    param.SetParameter(f"lal.{key}", value if isinstance(value, str) else json.dumps(value))


def get_json(param, key: str, default=None):
    raw = get_value(param, key)
    return json.loads(raw) if raw else default


def store_suggestions(param, suggestions: list[Suggestion], current: int) -> None:
    set_value(param, "suggestions", [s.to_dict() for s in suggestions])
    set_value(param, "currentIndex", str(int(current)))


def load_suggestions(param) -> tuple[list[Suggestion], int]:
    items = [Suggestion.from_dict(d) for d in get_json(param, "suggestions", [])]
    return items, int(get_value(param, "currentIndex", "-1"))


def zip_directory(directory: Path, exclude: tuple[str, ...] = ()) -> bytes:
    """Deflated zip of the files under ``directory`` (relative names, sorted).

    Skips half-written atomic temporaries and relative paths starting with an ``exclude`` prefix.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            rel = path.relative_to(directory).as_posix()
            if ".tmp" in path.name or rel.startswith(exclude):  # temporaries are never part of the state
                continue
            zf.write(path, rel)
    return buf.getvalue()


def pack_session(scene, param, session_dir: Path, exclude: tuple[str, ...] = ()):
    """Copy the session directory into the archive text node (call before saving the scene).

    ``exclude``: relative path prefixes not worth storing (copies of what the scene holds anyway).
    """
    session_dir = Path(session_dir)
    if not (session_dir / "state.json").is_file() and not any(session_dir.glob("*")):
        raise SessionError(f"The session directory {session_dir} is empty or missing.",
                           "Run the module again to create a session.")
    node = param.GetNodeReference(ARCHIVE_ROLE)
    if node is None or node.GetScene() is None:
        node = scene.AddNewNodeByClass("vtkMRMLTextNode", ARCHIVE_NAME)
        node.SetForceCreateStorageNode(slicer.vtkMRMLTextNode.CreateStorageNodeAlways)
        node.AddDefaultStorageNode()
        node.SetHideFromEditors(True)
        param.SetNodeReferenceID(ARCHIVE_ROLE, node.GetID())
    node.SetText(base64.b64encode(zip_directory(session_dir, exclude)).decode("ascii"))
    node.SetAttribute("LongitudinalAL.sessionDirName", session_dir.name)
    return node


def unpack_session(param, work_root: Path | None = None) -> Path:
    """Extract the archived session into a fresh directory; record and return it."""
    node = param.GetNodeReference(ARCHIVE_ROLE)
    if node is None or not node.GetText():
        raise SessionError("This scene holds no LongitudinalAL session.",
                           "Run the module on a baseline/follow-up pair to start one.")
    work_root = Path(work_root) if work_root else Path(tempfile.mkdtemp(prefix="lal-session-"))
    target = work_root / (node.GetAttribute("LongitudinalAL.sessionDirName") or "session")
    try:
        data = base64.b64decode(node.GetText().encode("ascii"), validate=True)
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for name in zf.namelist():
                if name.startswith("/") or ".." in Path(name).parts:
                    raise SessionError(f"Unsafe path {name!r} in the stored session.", "Do not edit the archive.")
            zf.extractall(target)
    except (ValueError, zipfile.BadZipFile) as err:
        raise SessionError(f"The session stored in this scene is damaged ({err}).",
                           "Reopen an earlier copy of the scene or start a new session.") from None
    set_value(param, "sessionDir", str(target))
    return target
