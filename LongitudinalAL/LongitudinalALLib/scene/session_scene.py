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
import hashlib
import json
import re
from pathlib import Path

import slicer

from LongitudinalALLib.active.suggestions import Suggestion
from LongitudinalALLib.core.errors import SessionError
from LongitudinalALLib.scene import archive

MODULE_NAME = "LongitudinalAL"
ARCHIVE_NAME = "LongitudinalAL session archive"
ARCHIVE_ROLE = "lal.sessionArchive"
#: archive node attributes: the packed folder's name (untrusted on load) and its content digest
DIR_NAME_ATTRIBUTE = "LongitudinalAL.sessionDirName"
DIGEST_ATTRIBUTE = "LongitudinalAL.contentSha256"
_RESTORED = re.compile(r"^restored-(.+)-[a-z0-9_]{8}$")  # unpack_session's folders (tempfile.mkdtemp suffix)

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


#: the archive in parts, each in its own text node and repacked only when its files change, so an
#: Accept repacks the labels and state (kilobytes), never the slice pool (tens of MB) or the model:
#: (part, node reference role, path prefixes); the last part takes every file the others leave
PARTS = (("pool", "lal.sessionArchive.pool", ("session/pool/", "prepared/")),
         ("model", "lal.sessionArchive.model", ("session/checkpoints/",)),
         ("state", ARCHIVE_ROLE, ()))
PART_DIGEST_ATTRIBUTE = "LongitudinalAL.partSha256"
PART_SIGNATURE_ATTRIBUTE = "LongitudinalAL.partSignature"  # names, sizes and mtimes packed (no reading)


def _current_checkpoint(session_dir: Path) -> str | None:
    """Stem of the current model's checkpoint in ``session_dir/session`` ("" at round 0), None if unknown.

    Only compared with file names (never opened as a path), so state.json is read without the
    store's validation, which costs more than the whole repack of an Accept.
    """
    try:
        rounds = json.loads((session_dir / "session" / "state.json").read_text(encoding="utf-8"))["rounds"]
        return str(rounds[-1]["checkpoint"]).split("/")[-1].split(".")[0] if rounds else ""
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None  # no session or a damaged state: keep every checkpoint


def session_parts(session_dir: Path, exclude: tuple[str, ...] = ()) -> dict[str, list[tuple[str, Path]]]:
    """part -> (relative name, path) of the files it stores; only the current round's checkpoint is kept.

    Why: every round's checkpoint would grow the scene by one model per round (older rounds'
    weights stay in the work folder on this machine).
    """
    current = _current_checkpoint(Path(session_dir))
    parts: dict[str, list[tuple[str, Path]]] = {name: [] for name, _, _ in PARTS}
    for rel, path in archive.files(Path(session_dir), exclude):
        if current is not None and rel.startswith("session/checkpoints/") and path.name.split(".")[0] != current:
            continue
        name = next(n for n, _, prefixes in PARTS if not prefixes or rel.startswith(prefixes))
        parts[name].append((rel, path))
    return parts


def _combined(part_digests: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{n}:{part_digests[n]}\n" for n, _, _ in PARTS).encode()).hexdigest()


def session_digest(session_dir: Path, exclude: tuple[str, ...] = ()) -> str:
    """The digest :func:`pack_session` records for ``session_dir`` (read from the files themselves)."""
    return _combined({name: archive.files_digest(entries) for name, entries in session_parts(session_dir,
                                                                                              exclude).items()})


def _part_node(scene, param, name: str, role: str):
    node = param.GetNodeReference(role)
    if node is None or node.GetScene() is None:
        node = scene.AddNewNodeByClass("vtkMRMLTextNode", ARCHIVE_NAME if role == ARCHIVE_ROLE
                                       else f"{ARCHIVE_NAME} ({name})")
        node.SetForceCreateStorageNode(slicer.vtkMRMLTextNode.CreateStorageNodeAlways)
        node.AddDefaultStorageNode()
        node.SetHideFromEditors(True)
        param.SetNodeReferenceID(role, node.GetID())
    return node


def pack_session(scene, param, session_dir: Path, exclude: tuple[str, ...] = ()):
    """Copy the session directory into the archive text nodes, with its name and content digest.

    Only the parts whose files changed since they were packed are packed again (:data:`PARTS`).
    ``exclude``: relative path prefixes not worth storing (copies of what the scene holds anyway).
    Returns the main archive node (the one that carries the folder name and the digest).
    """
    session_dir = Path(session_dir)
    if not (session_dir / "state.json").is_file() and not any(session_dir.glob("*")):
        raise SessionError(f"The session directory {session_dir} is empty or missing.",
                           "Run the module again to create a session.")
    digests = {}
    for (name, role, _), entries in zip(PARTS, session_parts(session_dir, exclude).values()):
        node, sig = _part_node(scene, param, name, role), archive.signature(entries)
        if node.GetAttribute(PART_SIGNATURE_ATTRIBUTE) != sig or not node.GetText():
            # new mtimes but the same content (a folder just restored from this node): keep the text,
            # which saves packing and encoding the pool and model again on every scene open
            if not node.GetText() or archive.files_digest(entries) != node.GetAttribute(PART_DIGEST_ATTRIBUTE):
                data, digest = archive.pack_files(entries)
                node.SetText(base64.b64encode(data).decode("ascii"))
                node.SetAttribute(PART_DIGEST_ATTRIBUTE, digest)
            node.SetAttribute(PART_SIGNATURE_ATTRIBUTE, sig)
        digests[name] = node.GetAttribute(PART_DIGEST_ATTRIBUTE)
    node = param.GetNodeReference(ARCHIVE_ROLE)
    node.SetAttribute(DIR_NAME_ATTRIBUTE, original_name(session_dir.name))
    node.SetAttribute(DIGEST_ATTRIBUTE, _combined(digests))
    return node


def original_name(folder_name: str) -> str:
    """``session-001`` for ``restored-session-001-k3j_x9ab`` (and for itself): names never grow on re-saves."""
    while (match := _RESTORED.match(folder_name)) is not None:
        folder_name = match.group(1)
    return folder_name


def archive_node(param):
    """The scene's session archive node, or None."""
    node = param.GetNodeReference(ARCHIVE_ROLE) if param is not None else None
    return node if node is not None and node.GetText() else None


def archive_digest(param) -> str:
    """Content digest recorded with the scene's archive ("" when none)."""
    node = archive_node(param)
    return (node.GetAttribute(DIGEST_ATTRIBUTE) or "") if node is not None else ""


def unpack_session(param, work_root: Path, limits: archive.ArchiveLimits | None = None) -> Path:
    """Extract the archived session into a new folder confined to ``work_root``; record and return it.

    The folder name stored in the scene is untrusted: only a plain name is accepted, and
    only as a prefix of a fresh folder. Size, entry count and disk space are checked first.
    """
    node = archive_node(param)
    if node is None:
        raise SessionError("This scene holds no LongitudinalAL session.",
                           "Run the module on a baseline/follow-up pair to start one.")
    name = archive.check_safe_name(node.GetAttribute(DIR_NAME_ATTRIBUTE) or "session")
    nodes = [n for n in (param.GetNodeReference(role) for _, role, _ in PARTS) if n is not None and n.GetText()]
    length = sum(len(n.GetText()) for n in nodes)
    most = archive.max_encoded_length(limits or archive.ArchiveLimits())
    if length > most:  # before decoding, which would cost about 2x the text again (review 2, N17)
        raise SessionError(f"The session stored in this scene is {length} characters long, more than a session "
                           f"within the limits can be ({most}).", "Open only scenes you trust; nothing was written.")
    try:  # a scene saved before the parts holds everything in the main node
        data = [base64.b64decode(n.GetText().encode("ascii"), validate=True) for n in nodes]
    except (ValueError, UnicodeEncodeError) as err:
        raise SessionError(f"The session stored in this scene is damaged ({err}).",
                           "Reopen an earlier copy of the scene or start a new session.") from None
    target = archive.extract(data, Path(work_root), prefix=f"restored-{name}-", limits=limits)
    set_value(param, "sessionDir", str(target))
    return target
