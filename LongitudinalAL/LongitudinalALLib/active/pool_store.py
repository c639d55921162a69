"""Save and load a case's slice pool (CaseSlices) inside a session directory.

Each case is two files: ``<case>.npz`` (images (N,3,H,W) float32, foreground
(N,H,W) bool) and ``<case>.json`` (provenance per slice and the slice
geometry). The JSON is written second, and is what marks the case complete.
Ground-truth labels are never stored here: in a session, labels only come
from the annotator (or the oracle), through ``labels/``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from LongitudinalALLib.core import atomic
from LongitudinalALLib.core.case_ids import check_case_id  # noqa: F401  (re-exported: the session's rule)
from LongitudinalALLib.core.errors import InputError, SessionError
from LongitudinalALLib.core.json_file import read_json
from LongitudinalALLib.core.npz_header import load_checked

if TYPE_CHECKING:  # pragma: no cover
    from LongitudinalALLib.imaging.pairing import CaseSlices

def save_case(directory: str | Path, case: "CaseSlices") -> None:
    """Write ``case`` (without its labels) into ``directory``."""
    check_case_id(case.case_id)
    directory = Path(directory)
    images = np.asarray(case.images, dtype=np.float32)
    fg = np.asarray(case.foreground, dtype=bool)
    if images.ndim != 4 or fg.shape != (images.shape[0], *images.shape[2:]) or len(case.provenance) != len(images):
        raise InputError(
            f"Case {case.case_id} has images {images.shape}, foreground {fg.shape} and "
            f"{len(case.provenance)} provenance records, which do not match.",
            "Prepare the pair again (prepare_pair) to get a consistent slice set.",
        )
    atomic.write_npz(directory / f"{case.case_id}.npz", images=images, foreground=fg)
    atomic.write_json(directory / f"{case.case_id}.json", {
        "case_id": case.case_id,
        "n_slices": int(len(images)),
        "size": list(images.shape[2:]),
        "provenance": [asdict(p) for p in case.provenance],
        "geometry": case.geometry.to_dict(),
    })


#: largest baseline grid a pool record may name (voxels): 2^30 is 4 GiB as float32, above any real scan
MAX_GRID_VOXELS = 1 << 30
#: largest slice side (pixels), as ``prepare --size`` allows
MAX_SLICE_SIDE = 2048
_PROVENANCE_KEYS = {"case_id", "slice_index", "center_ras", "normal_ras", "foreground_fraction"}


def _damaged(path: Path, what: str) -> SessionError:
    return SessionError(f"Pool record {path} is damaged: {what}.", "Re-create the session from the prepared pairs.")


def _finite(values: Any, n: int) -> bool:
    return (isinstance(values, list) and len(values) == n and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values))


def _ints(values: Any, n: int, low: int, high: int) -> bool:
    return (isinstance(values, list) and len(values) == n and all(
        isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in values))


def validate_case_meta(meta: Any, path: Path, case_id: str) -> dict[str, Any]:
    """Check a pool record (untrusted, like state.json) before anything is allocated from it; returns it."""
    if not isinstance(meta, dict) or meta.get("case_id") != case_id:
        raise _damaged(path, f"it is not the record of case {case_id}")
    n = meta.get("n_slices")
    if not _ints([n], 1, 1, 1 << 20) or not _ints(meta.get("size"), 2, 1, MAX_SLICE_SIDE):
        raise _damaged(path, "n_slices or size is missing or out of range")
    prov = meta.get("provenance")
    if not isinstance(prov, list) or len(prov) != n:
        raise _damaged(path, f"it lists {len(prov) if isinstance(prov, list) else 'no'} slices, not {n}")
    for p in prov:
        if not isinstance(p, dict) or set(p) != _PROVENANCE_KEYS or p["case_id"] != case_id \
                or not _ints([p["slice_index"]], 1, 0, 1 << 20) or not _finite(p["center_ras"], 3) \
                or not _finite(p["normal_ras"], 3) or not _finite([p["foreground_fraction"]], 1):
            raise _damaged(path, "a slice's provenance has wrong fields")
    g = meta.get("geometry")
    if not isinstance(g, dict) or g.get("axis") not in ("axial", "coronal", "sagittal") \
            or g.get("size") != meta["size"] or not _ints(g.get("shape"), 3, 1, MAX_GRID_VOXELS) \
            or sorted(g.get("perm") or []) != [0, 1, 2] or not _finite(g.get("voxel_spacing"), 3) \
            or not _finite(g.get("origin"), 3) or not _finite(g.get("direction"), 9) \
            or not _finite(g.get("start"), 2) or not _finite([g.get("spacing_mm")], 1) \
            or not (isinstance(g.get("flips"), list) and len(g["flips"]) == 3 and all(isinstance(f, bool) for f in g["flips"])):
        raise _damaged(path, "its slice geometry is incomplete or has wrong fields")
    if math.prod(g["shape"]) > MAX_GRID_VOXELS or min(g["voxel_spacing"]) <= 0 or g["spacing_mm"] <= 0:
        raise _damaged(path, f"its baseline grid {g['shape']} is larger than {MAX_GRID_VOXELS} voxels or has no spacing")
    depth = g["shape"][g["perm"][0]]
    if n > depth or any(p["slice_index"] >= depth for p in prov):
        raise _damaged(path, f"its slices do not fit the {depth} slices of the baseline grid")
    return meta


def read_case_meta(directory: str | Path, case_id: str) -> dict[str, Any]:
    """The checked pool record of ``case_id`` (SessionError naming the file when missing or damaged)."""
    path = Path(directory) / f"{case_id}.json"
    meta = read_json(path, lambda why: SessionError(f"Pool record {path} is missing or damaged ({why}).",
                                                    "Re-create the session from the prepared pairs."))
    return validate_case_meta(meta, path, case_id)


def load_case(directory: str | Path, case_id: str) -> "CaseSlices":
    """Read a case written by :func:`save_case` back into a CaseSlices (labels=None).

    The record is checked first, and the arrays' declared shapes against it before they are loaded.
    """
    from LongitudinalALLib.imaging.pairing import CaseSlices, SliceGeometry, SliceProvenance

    directory = Path(directory)
    meta = read_case_meta(directory, case_id)
    path = directory / f"{case_id}.npz"
    n, (h, w) = meta["n_slices"], meta["size"]
    try:
        arrays = load_checked(path, {"images": (n, 3, h, w), "foreground": (n, h, w)})
    except (OSError, ValueError) as err:
        raise SessionError(f"Pool file {path} is missing or damaged ({err}).",
                           "Re-create the session from the prepared pairs.") from err
    prov = [SliceProvenance(**{k: tuple(v) if isinstance(v, list) else v for k, v in p.items()})
            for p in meta["provenance"]]
    return CaseSlices(case_id=case_id, images=arrays["images"], foreground=arrays["foreground"], provenance=prov,
                      geometry=SliceGeometry.from_dict(meta["geometry"]), labels=None)
