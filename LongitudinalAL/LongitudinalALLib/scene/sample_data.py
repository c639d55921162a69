"""How the bundled sample pair is offered in Slicer's Sample Data module.

Why: ``"file://" + path`` puts a Windows path in the URL host and the download
fails; generic cache names (``baseline.nii.gz``) collide with other extensions'
files and, without a checksum, a stale cached copy is reused. Slicer's own test
builds local URIs with ``urljoin("file:", pathname2url(path))``.
"""

from __future__ import annotations

import hashlib
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

CATEGORY = "LongitudinalAL"
SAMPLE_NAME = "LongitudinalALSamplePair"
NODE_NAMES = ("LongitudinalAL baseline", "LongitudinalAL follow-up")
MR_BRAIN_TUMOR = (  # Slicer's own longitudinal pair (same patient, two time points)
    ("MRBrainTumor1", "RegLib_C01_1.nrrd", "998cb522173839c78657f4bc0ea907cea09fd04e44601f17c82ea27927937b95"),
    ("MRBrainTumor2", "RegLib_C01_2.nrrd", "1a64f3f422eb3d1c9b093d1a18da354b13bcf307907c66317e2463ee530b7a97"),
)


def sample_pair_files() -> tuple[str, str] | None:
    """(baseline, follow-up) files of the bundled sample pair, or None when it is absent."""
    from LongitudinalALLib.core.resources import sample_data_dir

    found: dict[str, str] = {}
    for path in sorted(sample_data_dir().glob("*")):
        for role in ("baseline", "followup"):
            if path.name.lower().startswith(role) and path.suffix in (".nrrd", ".gz", ".mha", ".nii"):
                found.setdefault(role, str(path))
    return (found["baseline"], found["followup"]) if len(found) == 2 else None


def file_uri(path: str, pathname2url: Callable[[str], str] = urllib.request.pathname2url) -> str:
    """A ``file:`` URI that urllib opens on every platform (``file:///C:/...`` on Windows)."""
    return urllib.parse.urljoin("file:", pathname2url(str(path)))


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sample_source(files: tuple[str, str], thumbnail: str,
                  pathname2url: Callable[[str], str] = urllib.request.pathname2url) -> dict:
    """Keyword arguments of ``SampleDataLogic.registerCustomSampleDataSource`` for the pair."""
    return {"category": CATEGORY, "sampleName": SAMPLE_NAME, "thumbnailFileName": thumbnail,
            "uris": [file_uri(f, pathname2url) for f in files],
            "fileNames": [f"LongitudinalAL-{Path(f).name}" for f in files],  # unique in the shared cache
            "nodeNames": list(NODE_NAMES), "checksums": [f"SHA256:{sha256(f)}" for f in files]}


def mr_brain_tumor_source(testing_data_url: str, thumbnail: str) -> dict:
    """Slicer's MRBrainTumor1/2, from its testing-data store by SHA256 (as core Sample Data does)."""
    return {"category": CATEGORY, "sampleName": "MRBrainTumor pair", "thumbnailFileName": thumbnail,
            "uris": [f"{testing_data_url}SHA256/{sha}" for _, _, sha in MR_BRAIN_TUMOR],
            "fileNames": [f for _, f, _ in MR_BRAIN_TUMOR], "nodeNames": [n for n, _, _ in MR_BRAIN_TUMOR],
            "checksums": [f"SHA256:{sha}" for _, _, sha in MR_BRAIN_TUMOR]}
