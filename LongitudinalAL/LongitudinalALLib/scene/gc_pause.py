"""Keep Python's full garbage collections off the panel's clicks.

Why: Slicer's process holds about half a million long-lived Python objects (modules,
MRML and VTK wrappers, the scene's nodes); a full (generation-2) collection walks all
of them, 0.35 s on the benchmark machine, and it fires whenever enough new objects
have piled up, which is during some click (``panel/bench_clicks.py``: the slowest
Accept, 0.35 of its 0.44 s). When a session is attached (Run applied, a scene
opened) the objects alive are frozen (``gc.freeze``, no walk: it costs nothing): later
full collections walk only what was made since, a few milliseconds. Frozen objects are
never collected; they are the long-lived ones, which the application keeps anyway, and
any garbage among them waits for the scene to close, when they are released
(``gc.unfreeze``) and what the closed session held can be collected. No collection is
forced at attach: it would cost every Run and scene open (and every test that starts a
session) the same 0.35 s.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Freeze the objects alive now (see module docstring)."""
    gc.freeze()


def release() -> None:
    """Give the frozen objects back to the collector (the scene closed: its session's objects may die)."""
    gc.unfreeze()
