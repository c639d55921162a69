"""Where the bundled resources (weights, sample pair, UI) live.

The module's ``Resources/`` folder sits beside ``LongitudinalALLib/`` both in
this repository (editable install) and inside Slicer; ``LONGITUDINAL_AL_RESOURCES``
overrides it for unusual layouts.
"""

from __future__ import annotations

import os
from pathlib import Path


def resources_dir() -> Path:
    override = os.environ.get("LONGITUDINAL_AL_RESOURCES")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "Resources"


def sample_data_dir() -> Path:
    return resources_dir() / "SampleData"


def weights_dir() -> Path:
    return resources_dir() / "Weights"
