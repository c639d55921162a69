"""The one rule for case ids: they become file names (pool files, labels, cache folders), so only
plain names pass. Kept in ``core`` so the cohort manifest checks them as early as the session does."""

from __future__ import annotations

import re

from LongitudinalALLib.core.errors import InputError

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_case_id(case_id: str) -> str:
    """Case ids become file names: allow letters, digits, '.', '_' and '-' only."""
    if not isinstance(case_id, str) or not _SAFE_ID.match(case_id):
        raise InputError(
            f"Case id {case_id!r} cannot be used as a file name.",
            "Use letters, digits, '.', '_' or '-' only (e.g. sub-001), starting with a letter or digit.",
        )
    return case_id
