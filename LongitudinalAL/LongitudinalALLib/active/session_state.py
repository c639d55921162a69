"""The shape of ``state.json``, checked on every open: it is untrusted input.

A session folder can come from a colleague or from a scene file, so every
field is checked before use: types, case ids (plain safe names), and every
file a record points to must be a relative path inside its own sub-folder of
the session. A wrong shape gives one :class:`SessionError` line instead of a
``KeyError`` deep inside a command.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath
from typing import Any

from LongitudinalALLib.active.pool_store import check_case_id
from LongitudinalALLib.core.errors import InputError, SessionError

STATE_VERSION = 1


def _bad(path: Path, what: str) -> SessionError:
    return SessionError(f"{path} is damaged: {what}.",
                        "Restore state.json from a backup, or roll back with `longitudinal-al rollback`.")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def confined(root: Path, rel: Any, sub: str) -> Path:
    """``root/rel`` when ``rel`` is a plain relative path inside ``root/sub``; else SessionError."""
    if not isinstance(rel, str) or not rel or "\\" in rel:
        raise _bad(root / "state.json", f"file entry {rel!r} is not a relative path")
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or len(p.parts) != 2 or p.parts[0] != sub:
        raise _bad(root / "state.json", f"file entry {rel!r} points outside {sub}/")
    return root / sub / p.parts[1]


def validate_state(state: Any, root: Path) -> dict[str, Any]:
    """Check ``state`` (parsed state.json of the session at ``root``); returns it unchanged."""
    path = root / "state.json"
    if not isinstance(state, dict):
        raise _bad(path, "it is not a JSON object")
    missing = [k for k in ("version", "seed", "strategy", "init_weights", "cases", "labels", "rounds", "suggestions")
               if k not in state]
    if missing:
        raise _bad(path, f"missing fields {missing}")
    if not _is_int(state["version"]):
        raise _bad(path, "version is not an integer")
    if state["version"] > STATE_VERSION:
        raise SessionError(f"{path} was written by a newer LongitudinalAL.", "Update LongitudinalAL.")
    if not _is_int(state["seed"]) or not isinstance(state["strategy"], str) or not isinstance(state["init_weights"], str):
        raise _bad(path, "seed, strategy or init_weights has the wrong type")
    init = state["init_weights"]
    if init not in ("bundled", "scratch") and (not init.endswith(".safetensors") or "\0" in init or len(init) > 4096):
        raise _bad(path, f"init_weights {init[:200]!r} is not bundled, scratch or a .safetensors file")
    vf = state.get("val_fraction", 0.2)
    if not isinstance(vf, (int, float)) or isinstance(vf, bool) or not (0 <= vf < 1) or math.isnan(vf):
        raise _bad(path, f"val_fraction {vf!r} is not in [0, 1)")
    if state.get("model_config") is not None and not isinstance(state["model_config"], dict):
        raise _bad(path, "model_config is not an object")
    if not _is_int(state.get("generation", 0)):
        raise _bad(path, "generation is not an integer")
    _check_cases(state["cases"], path)
    _check_labels(state["labels"], state["cases"], root)
    _check_rounds(state["rounds"], root)
    _check_suggestions(state["suggestions"], root)
    return state


def _check_cases(cases: Any, path: Path) -> None:
    if not isinstance(cases, dict) or not cases:
        raise _bad(path, "cases is empty or not an object")
    for cid, c in cases.items():
        try:
            check_case_id(cid)
        except InputError:
            raise _bad(path, f"case id {cid!r} is not a plain name") from None
        if not isinstance(c, dict) or not _is_int(c.get("n_slices")) or c["n_slices"] < 1:
            raise _bad(path, f"case {cid} has no slice count")
        idx = c.get("slice_indices")
        if not isinstance(idx, list) or len(idx) != c["n_slices"] or not all(_is_int(i) for i in idx):
            raise _bad(path, f"case {cid} has a wrong slice list")


def _check_labels(labels: Any, cases: dict, root: Path) -> None:
    path = root / "state.json"
    if not isinstance(labels, dict):
        raise _bad(path, "labels is not an object")
    for key, rec in labels.items():
        if not isinstance(rec, dict) or rec.get("case_id") not in cases or not _is_int(rec.get("slice_index")):
            raise _bad(path, f"label {key!r} names no known case and slice")
        if rec["slice_index"] not in cases[rec["case_id"]]["slice_indices"] or key != f"{rec['case_id']}:{rec['slice_index']}":
            raise _bad(path, f"label {key!r} names a slice that is not in its case")
        if not _is_int(rec.get("lesion_pixels")) or rec.get("split") not in ("train", "val") or not _is_int(rec.get("round")):
            raise _bad(path, f"label {key!r} has wrong fields")
        confined(root, rec.get("file"), "labels")


def _check_rounds(rounds: Any, root: Path) -> None:
    for i, r in enumerate(_list(rounds, "rounds", root), 1):
        if not isinstance(r, dict) or r.get("round") != i:
            raise _bad(root / "state.json", f"round {i} is missing or out of order")
        confined(root, r.get("checkpoint"), "checkpoints")


def _check_suggestions(suggestions: Any, root: Path) -> None:
    for s in _list(suggestions, "suggestions", root):
        if not isinstance(s, dict) or not _is_int(s.get("round")) or not isinstance(s.get("slices"), list):
            raise _bad(root / "state.json", "a suggestion record has the wrong shape")
        if s.get("scores"):
            confined(root, s["scores"], "scores")


def _list(value: Any, field: str, root: Path) -> list:
    if not isinstance(value, list):
        raise _bad(root / "state.json", f"{field} is not a list")
    return value
