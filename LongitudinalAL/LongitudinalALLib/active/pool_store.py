"""Save and load a case's slice pool (CaseSlices) inside a session directory.

Each case is two files: ``<case>.npz`` (images (N,3,H,W) float32, foreground
(N,H,W) bool) and ``<case>.json`` (provenance per slice and the slice
geometry). The JSON is written second, and is what marks the case complete.
Ground-truth labels are never stored here: in a session, labels only come
from the annotator (or the oracle), through ``labels/``.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from LongitudinalALLib.core import atomic
from LongitudinalALLib.core.errors import InputError, SessionError

if TYPE_CHECKING:  # pragma: no cover
    from LongitudinalALLib.imaging.pairing import CaseSlices

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_case_id(case_id: str) -> str:
    """Case ids become file names: allow letters, digits, '.', '_' and '-' only."""
    if not isinstance(case_id, str) or not _SAFE_ID.match(case_id):
        raise InputError(
            f"Case id {case_id!r} cannot be used as a file name.",
            "Use letters, digits, '.', '_' or '-' only (e.g. sub-001), starting with a letter or digit.",
        )
    return case_id


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


def read_case_meta(directory: str | Path, case_id: str) -> dict[str, Any]:
    path = Path(directory) / f"{case_id}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SessionError(f"Pool record {path} is missing or damaged ({err}).",
                           "Re-create the session from the prepared pairs.") from err


def load_case(directory: str | Path, case_id: str) -> "CaseSlices":
    """Read a case written by :func:`save_case` back into a CaseSlices (labels=None)."""
    from LongitudinalALLib.imaging.pairing import CaseSlices, SliceGeometry, SliceProvenance

    directory = Path(directory)
    meta = read_case_meta(directory, case_id)
    path = directory / f"{case_id}.npz"
    try:
        with np.load(path) as z:
            images, fg = z["images"], z["foreground"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise SessionError(f"Pool file {path} is missing or damaged ({err}).",
                           "Re-create the session from the prepared pairs.") from err
    prov = [SliceProvenance(**{k: tuple(v) if isinstance(v, list) else v for k, v in p.items()})
            for p in meta["provenance"]]
    return CaseSlices(case_id=case_id, images=images, foreground=fg, provenance=prov,
                      geometry=SliceGeometry.from_dict(meta["geometry"]), labels=None)
