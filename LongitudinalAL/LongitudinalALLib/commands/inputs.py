"""Checks and loading shared by the commands that read a scan pair (prepare, suggest).

Why its own module: ``prepare`` and ``suggest`` each needed one helper of the other,
an import loop between sibling commands.
"""

from __future__ import annotations

import sys

#: largest --size: a pool holds slices x 3 x size^2 float32 (2048: ~12 GiB for 256 slices)
MAX_SIZE = 2048
#: the bundled network halves the slice four times, so its side must be a multiple of 16
SIZE_STEP = 16


def check_size(size: int) -> int:
    """Refuse slice sizes that cannot be allocated or that the model cannot take, before any work is done."""
    from LongitudinalALLib.core.errors import InputError

    if not SIZE_STEP <= size <= MAX_SIZE or size % SIZE_STEP:
        raise InputError(f"--size {size} cannot be used: the model takes a multiple of {SIZE_STEP} pixels "
                         f"from {SIZE_STEP} to {MAX_SIZE}.", "Use e.g. --size 256; --spacing sets the pixel size in mm.")
    return size


def load_scans(baseline: str, followup: str, series: list[str] | None):
    """Both scans, checked, with any DICOM series choice printed (to stderr: stdout may be JSON)."""
    from LongitudinalALLib.imaging.io import load_scan
    from LongitudinalALLib.imaging.prepare_checks import check_grid

    notes: list[str] = []
    images = [load_scan(p, series=series or (), notes=notes) for p in (baseline, followup)]
    for path, image in zip((baseline, followup), images):
        check_grid(image, str(path))  # named by its path here (load_scan did the label-map check)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return images
