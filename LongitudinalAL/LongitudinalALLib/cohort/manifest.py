"""Reading a cohort manifest: pairs of a split and their files as absolute paths."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from LongitudinalALLib.core.case_ids import check_case_id
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.core.json_file import read_json

FORMAT = "longitudinal-al-cohort"
SPLITS = ("train", "val", "test")


#: files every pair must name (simulate reads all three)
REQUIRED_FILES = ("baseline", "followup", "new_lesions")


def load_manifest(path: str | Path) -> dict:
    """Read and check a cohort manifest (a file, or a folder holding ``manifest.json``).

    The manifest is untrusted input, like a session's state.json: its shape, every
    pair's id (it becomes a file name), split and files (plain relative paths inside
    the cohort folder) are checked here, before anything is prepared; one line naming
    the file otherwise.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    if not path.is_file():
        raise InputError(f"No cohort manifest at {path}.", "Run `longitudinal-al make-cohort --out DIR` first.")
    data = read_json(path, lambda why: InputError(f"Cohort manifest {path} cannot be read ({why}).",
                                                  "Regenerate the cohort."))
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("pairs"), list):
        raise InputError(f"{path} is not a LongitudinalAL cohort manifest.", "Point to the manifest.json "
                         "written by `longitudinal-al make-cohort`.")
    root = path.resolve().parent
    seen = set()
    for i, pair in enumerate(data["pairs"]):
        _check_pair(pair, i, path, root)
        if pair["pair_id"] in seen:
            raise _bad(path, f"pair_id {pair['pair_id']!r} appears twice")
        seen.add(pair["pair_id"])
    data["_path"] = str(path.resolve())
    return data


def _bad(path: Path, what: str) -> InputError:
    return InputError(f"Cohort manifest {path} is damaged: {what}.", "Regenerate the cohort with "
                      "`longitudinal-al make-cohort`, or fix the entry.")


def _check_pair(pair, i: int, path: Path, root: Path) -> None:
    if not isinstance(pair, dict):
        raise _bad(path, f"pair {i} is not an object")
    try:
        check_case_id(pair.get("pair_id"))
    except InputError:
        raise _bad(path, f"pair {i} has pair_id {str(pair.get('pair_id'))[:80]!r}, not a plain name "
                   "(letters, digits, '.', '_', '-')") from None
    if pair.get("split") not in SPLITS:
        raise _bad(path, f"pair {pair['pair_id']} has split {str(pair.get('split'))[:40]!r}, not one of {SPLITS}")
    files = pair.get("files")
    if not isinstance(files, dict) or any(k not in files for k in REQUIRED_FILES):
        raise _bad(path, f"pair {pair['pair_id']} does not name its {', '.join(REQUIRED_FILES)} files")
    for key, rel in files.items():
        if not isinstance(rel, str) or not rel or "\\" in rel or "\0" in rel:
            raise _bad(path, f"pair {pair['pair_id']}: file {key} is not a relative path")
        p = PurePosixPath(rel)
        if p.is_absolute() or ".." in p.parts or not (root / p).resolve().is_relative_to(root):
            raise _bad(path, f"pair {pair['pair_id']}: file {key} {rel[:120]!r} lies outside the cohort folder")


def pairs_in_split(manifest: dict, split: str) -> list[dict]:
    """The pair entries of one split ('train', 'val' or 'test'), in manifest order."""
    if split not in SPLITS:
        raise InputError(f"Unknown split {split!r}.", f"Use one of {', '.join(SPLITS)}.")
    return [p for p in manifest["pairs"] if p["split"] == split]


def pair_files(manifest: dict, pair: dict) -> dict[str, Path]:
    """Absolute paths of a pair's files (they are stored relative to the manifest)."""
    root = Path(manifest["_path"]).parent
    return {k: root / v for k, v in pair["files"].items()}
