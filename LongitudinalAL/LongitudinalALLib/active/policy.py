"""The choices every front door shares: default strategy and training seed.

Why one module: the CLI commands, the Slicer jobs, ``simulate`` and the
bundled-weights script used to pick these each in their own way (four default
strategies, three seed rules, four case-id rules), so the same user intent
gave different sessions. Torch-free: the Slicer panel imports it. The case-id
rule is a file-name rule and lives with the file readers:
:func:`LongitudinalALLib.imaging.io.case_id_from_path`.
"""

from __future__ import annotations

#: ClaSP-PE-style selection: beat foreground-aware random on both benchmark families (issue 15)
DEFAULT_STRATEGY = "clasp_pe"


def training_seed(session_seed: int, round_number: int) -> int:
    """Seed of the training run that makes round ``round_number`` (1, 2, ...; 0 = full supervision)."""
    return int(session_seed) * 1000 + int(round_number)
