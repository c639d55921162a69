"""Where the bundled resources (UI, requirements, weights, sample pair, icon) live.

Two layouts hold them. In this repository the module's own ``LongitudinalAL/Resources/``
has the UI and requirements, and the extension-level assets (icon, screenshots,
weights, sample pair) sit in the top-level ``Resources/``. Inside Slicer, CMake
installs both into one ``Resources/`` beside ``LongitudinalALLib/`` (the module's
``resourcePath``). The module folder is looked at first, then the top-level one;
``LONGITUDINAL_AL_RESOURCES`` overrides both for unusual layouts.
"""

from __future__ import annotations

import os
from pathlib import Path

_LIB = Path(__file__).resolve().parents[1]  # LongitudinalALLib/ (this file is in core/)


def resources_dir() -> Path:
    """The module's Resources/ (UI, requirements.txt)."""
    override = os.environ.get("LONGITUDINAL_AL_RESOURCES")
    return Path(override) if override else _LIB.parent / "Resources"


def asset_dir(name: str) -> Path:
    """An extension-level asset folder (``Weights``, ``SampleData``, ``Icons``) in either layout."""
    override = os.environ.get("LONGITUDINAL_AL_RESOURCES")
    if override:
        return Path(override) / name
    installed, source_tree = _LIB.parent / "Resources" / name, _LIB.parents[1] / "Resources" / name
    return installed if installed.is_dir() else source_tree


def sample_data_dir() -> Path:
    return asset_dir("SampleData")


def weights_dir() -> Path:
    return asset_dir("Weights")


def icon_path() -> Path:
    return asset_dir("Icons") / "LongitudinalAL.png"
