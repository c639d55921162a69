"""Reading a cohort manifest: pairs of a split and their files as absolute paths."""

from __future__ import annotations

import json
from pathlib import Path

from LongitudinalALLib.core.errors import InputError

FORMAT = "longitudinal-al-cohort"
SPLITS = ("train", "val", "test")


def load_manifest(path: str | Path) -> dict:
    """Read and check a cohort manifest (a file, or a folder holding ``manifest.json``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    if not path.is_file():
        raise InputError(f"No cohort manifest at {path}.", "Run `longitudinal-al make-cohort --out DIR` first.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"Cohort manifest {path} cannot be read ({err}).", "Regenerate the cohort.") from None
    if data.get("format") != FORMAT or "pairs" not in data:
        raise InputError(f"{path} is not a LongitudinalAL cohort manifest.", "Point to the manifest.json "
                         "written by `longitudinal-al make-cohort`.")
    data["_path"] = str(path.resolve())
    return data


def pairs_in_split(manifest: dict, split: str) -> list[dict]:
    """The pair entries of one split ('train', 'val' or 'test'), in manifest order."""
    if split not in SPLITS:
        raise InputError(f"Unknown split {split!r}.", f"Use one of {', '.join(SPLITS)}.")
    return [p for p in manifest["pairs"] if p["split"] == split]


def pair_files(manifest: dict, pair: dict) -> dict[str, Path]:
    """Absolute paths of a pair's files (they are stored relative to the manifest)."""
    root = Path(manifest["_path"]).parent
    return {k: root / v for k, v in pair["files"].items()}
