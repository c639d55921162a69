"""The choices every front door shares: default strategy, training seed, case id.

Why one module: the CLI commands, the Slicer jobs, ``simulate`` and the
bundled-weights script used to pick these each in their own way (four default
strategies, three seed rules, four case-id rules), so the same user intent
gave different sessions. Torch-free: the Slicer panel imports it.
"""

from __future__ import annotations

import re
from pathlib import Path

#: ClaSP-PE-style selection: beat foreground-aware random on both benchmark families (issue 15)
DEFAULT_STRATEGY = "clasp_pe"


def training_seed(session_seed: int, round_number: int) -> int:
    """Seed of the training run that makes round ``round_number`` (1, 2, ...; 0 = full supervision)."""
    return int(session_seed) * 1000 + int(round_number)


def case_id_from_path(path: str | Path) -> str:
    """A case id from a scan's file name: suffix dropped, characters unsafe in file names replaced by '_'."""
    from .io import image_suffix  # here, not at import: the Slicer panel imports this module

    name = Path(path).name
    name = name[: len(name) - len(image_suffix(name))]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._-")
    return name[:128] or "case"
