"""Read a JSON file that a user or an attacker may have written, failing with one line that names it.

Why: sessions, manifests, pool records, weights sidecars and simulation records are
all JSON a user can hand in or edit. Each reader needs the same guard: the file is a
regular file of sane size (``read_text`` on a link to ``/dev/zero`` or a 2 GB file
would hang or fill memory), it decodes, and deep nesting does not crash the parser.
The caller keeps its own error class and advice; this module only makes the checks one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from LongitudinalALLib.core.errors import LongitudinalALError

MAX_JSON_BYTES = 64 << 20  # a session state with thousands of labels is a few MB


def read_json(path: str | Path, fail: Callable[[str], LongitudinalALError]) -> Any:
    """The parsed content of ``path``; ``fail(why)`` is raised (from None) when it cannot be read.

    ``why`` is a short reason ("it is not a regular file", the decoder's message, ...),
    which the caller places into its own one-line message.
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise OSError("it is not a regular file" if path.exists() else "it does not exist")
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise OSError(f"it holds {size / 2**20:.0f} MB, more than the {MAX_JSON_BYTES >> 20} MB such a file can have")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        why = err.args[0] if isinstance(err, OSError) and len(err.args) == 1 else str(err)
        raise fail(str(why)[:200]) from None
